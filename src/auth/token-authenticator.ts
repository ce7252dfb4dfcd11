import { HeraldError } from '../core/errors.ts';
import type { Principal } from '../core/principal.ts';
import type { HttpRequest } from '../http/request.ts';
import { principalFromClaims } from './claims.ts';
import { ALL_KEY_USES, type JwtVerifier, type KeyUse, type VerifiedToken } from './jwt.ts';

export type Action = 'subscribe' | 'publish' | 'stats';

/** Decides who a request comes from; throws a 401/403 HeraldError to refuse it. */
export type Authenticator = (request: HttpRequest, action: Action) => Principal | Promise<Principal>;

export interface TokenAuthOptions {
  readonly verifier: JwtVerifier;
  /** The cookie a browser page may carry its token in. Default `herald_token`. */
  readonly cookieName?: string;
  /** Let requests without a token subscribe, to public events only. Default false. */
  readonly anonymous?: boolean;
}

/** No credential: public events of the default tenant, nothing else. */
export const ANONYMOUS: Principal = Object.freeze({
  tenant: '',
  subscribe: [],
  publish: [],
  admin: false,
  permissions: [],
});

const CHALLENGE = 'Bearer realm="herald"';

/**
 * JWT authentication. The token is taken from `Authorization: Bearer`, else the cookie, else the
 * `access_token` query parameter (native EventSource cannot set headers). An invalid token is
 * refused even where anonymous access is allowed: a client that sent one expects its rights.
 */
export function tokenAuthenticator(options: TokenAuthOptions): Authenticator {
  const cookieName = options.cookieName ?? 'herald_token';
  return async (request, action) => {
    const found = findToken(request, cookieName);
    if (found === undefined) {
      if (options.anonymous === true && action === 'subscribe') return ANONYMOUS;
      throw new HeraldError(
        401,
        'token-required',
        `a token is required: send "Authorization: Bearer <jwt>", a ${cookieName} cookie, or ?access_token=<jwt>`,
        { headers: { 'www-authenticate': CHALLENGE } },
      );
    }
    return (await verifiedPrincipal(options.verifier, found.token, found.via, CHALLENGE, action)).principal;
  };
}

/** The use a key must allow for a token to do `action`; stats need none (a tenant sees its own). */
const NEEDED_USE: Readonly<Record<Action, KeyUse | undefined>> = {
  subscribe: 'subscribe',
  publish: 'publish',
  stats: undefined,
};

/**
 * Verifies a token for `action` and reads its claims (after `adapt`) into a Principal, capped to
 * what the verifying key allows. Any refusal of the token is a 401 with an RFC 6750 §3 challenge
 * naming the error, whether the signature, the time or a claim's shape is wrong; a sound token
 * whose key may not do `action` (a subscriber key's, publishing) is a 403 `insufficient_scope`.
 */
export async function verifiedPrincipal(
  verifier: JwtVerifier,
  token: string,
  via: Principal['via'],
  challenge: string,
  action: Action,
  adapt: (claims: Record<string, unknown>) => Record<string, unknown> = (claims) => claims,
): Promise<{ principal: Principal; claims: Record<string, unknown> }> {
  let verified: VerifiedToken;
  let claims: Record<string, unknown>;
  let principal: Principal;
  try {
    verified = await verifier.verify(token);
    claims = adapt(verified.claims);
    principal = principalFromClaims(claims, verified.expiresAt, via, verified.uses);
  } catch (error) {
    if (error instanceof HeraldError && error.status === 401) {
      throw new HeraldError(401, error.code, error.detail, {
        headers: { 'www-authenticate': `${challenge}, error="invalid_token"` },
      });
    }
    throw error;
  }
  const needed = NEEDED_USE[action];
  if (needed !== undefined && !verified.uses.has(needed)) {
    const may = ALL_KEY_USES.filter((use) => use !== 'admin' && verified.uses.has(use));
    throw new HeraldError(
      403,
      'key-role-forbidden',
      `this token is signed with ${verified.keyName}, which may ${may.length === 0 ? 'neither subscribe nor publish' : `only ${may.join(' and ')}`}; ` +
        `to ${needed}, use a token signed with a key for ${needed === 'publish' ? 'publishers' : 'subscribers'}`,
      { headers: { 'www-authenticate': `${challenge}, error="insufficient_scope"` } },
    );
  }
  return { principal, claims };
}

/** The token of an `Authorization` header, which must be `Bearer <token>` (else 401). */
export function bearerToken(authorization: string, challenge: string): string {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
  if (match === null) {
    throw new HeraldError(401, 'token-malformed', 'the Authorization header must be "Bearer <jwt>"', {
      headers: { 'www-authenticate': `${challenge}, error="invalid_request"` },
    });
  }
  return match[1] as string;
}

function findToken(
  request: HttpRequest,
  cookieName: string,
): { token: string; via: Principal['via'] } | undefined {
  const authorization = request.header('authorization');
  if (authorization !== undefined) return { token: bearerToken(authorization, CHALLENGE), via: 'header' };
  const cookie = readCookie(request.header('cookie'), cookieName);
  if (cookie !== undefined) return { token: cookie, via: 'cookie' };
  const query = request.query.get('access_token');
  if (query) return { token: query, via: 'query' };
  return undefined;
}

/** A cookie's value by name, percent-decoded when it can be. */
export function readCookie(header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  for (const pair of header.split(';')) {
    const equals = pair.indexOf('=');
    if (equals === -1 || pair.slice(0, equals).trim() !== name) continue;
    const value = pair.slice(equals + 1).trim();
    try {
      return decodeURIComponent(value) || undefined;
    } catch {
      return value || undefined;
    }
  }
  return undefined;
}
