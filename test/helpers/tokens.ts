import { SignJWT } from 'jose';

/** The HS256 secret the security tests configure their hubs with. */
export const SECRET = 'a-test-secret-long-enough-for-hs256-and-nothing-else';

export interface TokenClaims {
  readonly tenant?: string;
  readonly subscribe?: readonly string[];
  readonly publish?: readonly string[];
  readonly permissions?: readonly string[];
  readonly admin?: boolean;
  readonly sub?: string;
  /** Seconds from now; negative for an expired token. Default 3600. */
  readonly expiresIn?: number;
  readonly notBefore?: number;
  readonly audience?: string;
  readonly secret?: string;
}

/** An HS256 token with a `herald` claim, signed as a hub's issuer would. */
export async function token(claims: TokenClaims = {}): Promise<string> {
  const { expiresIn = 3600, notBefore, audience, secret = SECRET, sub, ...herald } = claims;
  const now = Math.floor(Date.now() / 1000);
  const jwt = new SignJWT({ herald })
    .setProtectedHeader({ alg: 'HS256' })
    .setIssuedAt(now)
    .setExpirationTime(now + expiresIn);
  if (sub !== undefined) jwt.setSubject(sub);
  if (notBefore !== undefined) jwt.setNotBefore(now + notBefore);
  if (audience !== undefined) jwt.setAudience(audience);
  return jwt.sign(new TextEncoder().encode(secret));
}

export const bearer = (jwt: string) => ({ authorization: `Bearer ${jwt}` });
