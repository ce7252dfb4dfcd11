/**
 * What a refused token is told. jose refuses bad signatures and failing claims with errors meant
 * for developers (`JWSSignatureVerificationFailed`, `JWTExpired`, `JWTClaimValidationFailed`…);
 * Herald turns each into a 401 problem with a stable code and a detail for the client — what is
 * wrong with its token, never the token, a secret or a key.
 *
 * Herald adds two checks of its own. Before any key is touched, {@link readToken} reads the
 * token's shape more strictly than jose (which decodes base64url leniently and lets a `b64`
 * header without `crit` through), so the client learns which part is wrong, and gives the `alg`
 * the allow-list is checked against. {@link claimTypeProblem} checks the registered claims' types
 * where jose does not, and before their values, as Herald always has.
 */
import { decodeJwt, decodeProtectedHeader, errors, type JWTPayload } from 'jose';
import { HeraldError, type ProblemCodeOf } from '../core/errors.ts';

export const unauthorized = (code: ProblemCodeOf<401>, detail: string) =>
  new HeraldError(401, code, detail, { headers: { 'WWW-Authenticate': 'Bearer error="invalid_token"' } });

const malformed = (why: string) =>
  unauthorized('token-malformed', `the token is not a well-formed JWT: ${why}`);

export interface TokenHeader {
  readonly alg: string;
  readonly kid: string | undefined;
}

const BASE64URL = /^[A-Za-z0-9_-]*$/;

/** The header of a token of the right shape: three base64url parts, JSON objects, an `alg`. */
export function readToken(token: unknown): TokenHeader {
  if (typeof token !== 'string' || token === '') throw malformed('it is empty');
  const parts = token.split('.');
  if (parts.length !== 3) {
    throw malformed(
      parts.length === 5
        ? 'it has five parts (an encrypted JWE); this hub accepts signed JWS tokens of three parts'
        : `it has ${parts.length} dot-separated part${parts.length === 1 ? '' : 's'} instead of three (header.payload.signature)`,
    );
  }
  for (const [i, name] of ['header', 'payload', 'signature'].entries()) {
    const part = parts[i] ?? '';
    if (!BASE64URL.test(part) || part.length % 4 === 1) throw malformed(`its ${name} is not base64url`);
  }
  let header: Record<string, unknown>;
  try {
    header = decodeProtectedHeader(token);
  } catch {
    throw malformed('its header is not a base64url-encoded JSON object');
  }
  try {
    decodeJwt(token);
  } catch {
    throw malformed('its payload is not a base64url-encoded JSON object');
  }
  const { alg, kid } = header;
  if (typeof alg !== 'string' || alg === '') throw malformed('its header has no "alg"');
  if (kid !== undefined && typeof kid !== 'string') throw malformed('its "kid" header is not a string');
  if (header.b64 !== undefined) throw malformed('JWTs must not use the "b64" header (unencoded payload)');
  if (header.crit !== undefined) throw malformed('critical header extensions ("crit") are not supported');
  return { alg, kid };
}

/** Refuses `alg: none` and algorithms outside `accepted` before any key is tried. */
export function refuseAlgorithm(alg: string, accepted: ReadonlySet<string>, acceptedList: string): void {
  if (alg.toLowerCase() === 'none') {
    throw unauthorized('token-alg-none', 'unsigned tokens (alg none) are not accepted; sign the token');
  }
  if (!accepted.has(alg)) {
    throw unauthorized(
      'token-alg-not-allowed',
      `the token is signed with ${showAlgorithm(alg)}; this hub accepts ${acceptedList}`,
    );
  }
}

export interface Expected {
  readonly issuers: readonly string[] | undefined;
  readonly audiences: readonly string[] | undefined;
}

export const signatureInvalid = (alg: string, why = 'does not verify with the configured keys') =>
  unauthorized('token-signature-invalid', `the token's ${alg} signature ${why}`);

/** The HeraldError for one of jose's refusals; any other error is returned as it is. */
export function refusal(error: unknown, alg: string, expected: Expected): unknown {
  if (error instanceof errors.JWTClaimValidationFailed || error instanceof errors.JWTExpired) {
    return claimRefusal(error, expected);
  }
  if (error instanceof errors.JWSSignatureVerificationFailed) return signatureInvalid(alg);
  // What readToken let through but jose refuses: a signature or payload that does not decode.
  if (error instanceof errors.JWTInvalid)
    return malformed('its payload is not a base64url-encoded JSON object');
  if (error instanceof errors.JWSInvalid || error instanceof errors.JOSENotSupported) {
    return malformed('its signature cannot be decoded');
  }
  return error;
}

function claimRefusal(
  error: InstanceType<typeof errors.JWTClaimValidationFailed | typeof errors.JWTExpired>,
  expected: Expected,
): unknown {
  const claims = error.payload;
  const typeProblem = claimTypeProblem(claims);
  if (typeProblem !== undefined) return typeProblem;
  const { claim } = error;
  if (claim === 'iss' && expected.issuers !== undefined) {
    const wanted = `this hub accepts tokens issued by ${showList(expected.issuers)}`;
    return unauthorized(
      'token-issuer-invalid',
      typeof claims.iss === 'string'
        ? `the token was issued by ${show(claims.iss)}; ${wanted}`
        : `the token has no "iss" claim; ${wanted}`,
    );
  }
  if (claim === 'aud' && expected.audiences !== undefined) {
    const given = claims.aud === undefined ? [] : typeof claims.aud === 'string' ? [claims.aud] : claims.aud;
    const wanted = `this hub expects the audience ${showList(expected.audiences)}`;
    return unauthorized(
      'token-audience-invalid',
      given.length === 0
        ? `the token has no "aud" claim; ${wanted}`
        : `the token is for the audience ${showList(given)}; ${wanted}`,
    );
  }
  if (claim === 'nbf' && typeof claims.nbf === 'number') {
    return unauthorized('token-not-yet-valid', `the token is not valid before ${isoTime(claims.nbf)}`);
  }
  if (claim === 'exp' && typeof claims.exp === 'number') {
    return unauthorized('token-expired', `the token expired at ${isoTime(claims.exp)}`);
  }
  return error;
}

/**
 * Registered claims of the wrong type, checked before their values as Herald always has: jose
 * leaves `iss` and `aud` alone when it expects none, and takes `1e999` (Infinity) for a date.
 */
export function claimTypeProblem(claims: JWTPayload): HeraldError | undefined {
  const { iss, aud } = claims;
  if (iss !== undefined && typeof iss !== 'string') {
    return unauthorized('token-malformed', `the token's "iss" claim must be a string`);
  }
  if (
    aud !== undefined &&
    typeof aud !== 'string' &&
    !(Array.isArray(aud) && aud.every((a) => typeof a === 'string'))
  ) {
    return unauthorized('token-malformed', `the token's "aud" claim must be a string or a list of strings`);
  }
  for (const name of ['iat', 'nbf', 'exp'] as const) {
    const value = claims[name];
    if (value !== undefined && (typeof value !== 'number' || !Number.isFinite(value))) {
      return unauthorized(
        'token-malformed',
        `the token's "${name}" claim must be a number of seconds since the epoch`,
      );
    }
  }
  return undefined;
}

function isoTime(seconds: number): string {
  const date = new Date(seconds * 1000);
  return Number.isNaN(date.getTime()) ? `${seconds} seconds after the epoch` : date.toISOString();
}

/** A client-supplied string, quoted and cut short so a detail stays readable. */
export function show(value: string): string {
  return JSON.stringify(value.length > 64 ? `${value.slice(0, 64)}…` : value);
}

function showList(values: readonly string[]): string {
  const shown = values.slice(0, 5).map(show);
  if (values.length > 5) shown.push('…');
  return shown.length === 1 ? (shown[0] ?? '') : `one of ${shown.join(', ')}`;
}

function showAlgorithm(alg: string): string {
  return /^[A-Za-z0-9_+-]{1,20}$/.test(alg) ? alg : show(alg);
}
