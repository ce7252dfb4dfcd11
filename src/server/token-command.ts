import { SignJWT } from 'jose';

/** `herald token --ttl` unless told. */
export const DEFAULT_TOKEN_TTL = '1h';

export interface TokenOptions {
  readonly secret: string;
  readonly tenant?: string;
  readonly subscribe?: readonly string[];
  readonly publish?: readonly string[];
  readonly permission?: readonly string[];
  readonly admin?: boolean;
  readonly subject?: string;
  /** Lifetime, ms. */
  readonly ttlMs: number;
  readonly audience?: string;
  readonly issuer?: string;
}

/** `herald token`: an HS256 token for development and tests, signed with the hub's secret. */
export async function mintToken(options: TokenOptions): Promise<string> {
  const herald: Record<string, unknown> = {};
  if (options.tenant !== undefined) herald.tenant = options.tenant;
  if (options.subscribe?.length) herald.subscribe = options.subscribe;
  if (options.publish?.length) herald.publish = options.publish;
  if (options.permission?.length) herald.permissions = options.permission;
  if (options.admin) herald.admin = true;
  const now = Math.floor(Date.now() / 1000);
  const jwt = new SignJWT({ herald })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setIssuedAt(now)
    .setExpirationTime(now + Math.max(1, Math.round(options.ttlMs / 1000)));
  if (options.subject !== undefined) jwt.setSubject(options.subject);
  if (options.audience !== undefined) jwt.setAudience(options.audience);
  if (options.issuer !== undefined) jwt.setIssuer(options.issuer);
  return jwt.sign(new TextEncoder().encode(options.secret));
}
