/**
 * Tokens verified with the keys published at a JWKS URL.
 *
 * jose's `createRemoteJWKSet` does the work: it fetches the set (5 s timeout), caches it (for
 * 10 minutes), refetches it when a token names a `kid` it does not hold — at most once per
 * cooldown after a successful fetch —, shares one fetch among concurrent verifications, and picks
 * the key by `kid`, `alg`, `kty`, `crv`, `use` and `key_ops`.
 *
 * Herald adds:
 * - a failed fetch is not retried within the cooldown either (jose would try again on the next
 *   token), so a JWKS server that is down is not hammered by every client's token; meanwhile
 *   tokens are verified with the keys fetched before, if any, or refused with 503 and
 *   Retry-After. The keys fetched before also outlive jose's cache age while the server is down;
 * - a token without `kid` that several keys match is tried with each (jose leaves that loop to
 *   its caller);
 * - refusals that tell an unknown `kid` from a key that cannot verify the token's algorithm.
 */
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  customFetch,
  errors,
  type JWTPayload,
  type JWTVerifyGetKey,
  type JWTVerifyOptions,
  jwtVerify,
  type RemoteJWKSet,
} from 'jose';
import { HeraldError } from '../core/errors.ts';
import { show, type TokenHeader, unauthorized } from './jwt-refusals.ts';

interface FailedFetch {
  readonly at: number;
  readonly why: string;
  /** The keys fetched before the failure, which keep verifying until the next fetch. */
  readonly known: JWTVerifyGetKey | undefined;
}

export class RemoteKeySet {
  readonly #url: URL;
  readonly #cooldownMs: number;
  readonly #remote: RemoteJWKSet;
  #failed: FailedFetch | undefined;

  constructor(url: URL, cooldownMs: number) {
    this.#url = url;
    this.#cooldownMs = cooldownMs;
    this.#remote = createRemoteJWKSet(url, { cooldownDuration: cooldownMs, [customFetch]: fetchKeySet });
  }

  /**
   * The token's claims once a key of the set verifies it; jose's errors for its signature and
   * claims pass through. `others` ends a refusal when keys outside the JWKS were tried first.
   */
  async verify(
    token: string,
    options: JWTVerifyOptions,
    header: TokenHeader,
    others: string,
  ): Promise<JWTPayload> {
    const noMatchingKey = () => this.#noMatchingKey(header, others);
    const failed = this.#failed;
    if (failed !== undefined && Date.now() - failed.at < this.#cooldownMs) {
      if (failed.known === undefined) throw this.#unavailable(failed.why);
      return verifyWith(failed.known, token, options, noMatchingKey);
    }
    try {
      return await verifyWith(this.#remote, token, options, noMatchingKey);
    } catch (error) {
      if (!(error instanceof JwksFetchFailed)) throw error;
      const known = this.#remote.jwks();
      const now = { at: Date.now(), why: error.message, known: known && createLocalJWKSet(known) };
      this.#failed = now;
      if (now.known === undefined) throw this.#unavailable(now.why);
      // A kid the keys fetched before lack could not be looked up: that is the server's fault.
      return verifyWith(now.known, token, options, () => this.#unavailable(now.why));
    }
  }

  #noMatchingKey({ alg, kid }: TokenHeader, others: string): HeraldError {
    const keys = this.#remote.jwks()?.keys ?? [];
    if (kid !== undefined && !keys.some((key) => key.kid === kid)) {
      return unauthorized('token-kid-unknown', `no key with kid ${show(kid)} in the JWKS${others}`);
    }
    return unauthorized(
      'token-signature-invalid',
      kid === undefined
        ? `no key in the JWKS can verify ${alg} signatures${others}`
        : `the JWKS key with kid ${show(kid)} cannot verify ${alg} signatures${others}`,
    );
  }

  #unavailable(why: string): HeraldError {
    const error = new HeraldError(
      503,
      'jwks-unavailable',
      'the hub cannot fetch the key set (JWKS) it needs to verify tokens; try again later',
      { headers: { 'Retry-After': String(Math.max(1, Math.ceil(this.#cooldownMs / 1000))) } },
    );
    // For the operator's logs, not the client: which URL, and why.
    error.cause = new Error(`GET ${this.#url.href} failed: ${why}`);
    return error;
  }
}

async function verifyWith(
  keys: JWTVerifyGetKey,
  token: string,
  options: JWTVerifyOptions,
  noMatchingKey: () => HeraldError,
): Promise<JWTPayload> {
  try {
    return (await jwtVerify(token, keys, options)).payload;
  } catch (error) {
    if (error instanceof errors.JWKSMultipleMatchingKeys) return verifyWithEach(error, token, options);
    if (error instanceof errors.JWKSNoMatchingKey || isUnusableKey(error)) throw noMatchingKey();
    throw error;
  }
}

async function verifyWithEach(
  candidates: errors.JWKSMultipleMatchingKeys,
  token: string,
  options: JWTVerifyOptions,
): Promise<JWTPayload> {
  for await (const key of candidates) {
    try {
      return (await jwtVerify(token, key, options)).payload;
    } catch (error) {
      if (!(error instanceof errors.JWSSignatureVerificationFailed) && !isUnusableKey(error)) throw error;
    }
  }
  throw new errors.JWSSignatureVerificationFailed();
}

/**
 * A JWKS entry that matched but cannot be used: jose throws `TypeError` for an RSA key under 2048
 * bits, and these when importing a JWK it cannot make a public key of. Herald passes them over.
 */
function isUnusableKey(error: unknown): boolean {
  return (
    error instanceof TypeError ||
    error instanceof DOMException ||
    error instanceof errors.JOSENotSupported ||
    error instanceof errors.JWKSInvalid
  );
}

/** Every way of not getting a key set, with the reason for the operator's logs. */
class JwksFetchFailed extends Error {}

/**
 * jose's fetch, made to fail in one recognisable way: its own failures (a `TypeError` from
 * `fetch`, a bare `JOSEError` for a non-200) would be confused with a key jose cannot import.
 * Entries that are not objects are dropped, as Herald always has, rather than failing the set.
 */
async function fetchKeySet(url: string, init: RequestInit): Promise<Response> {
  let response: Response;
  try {
    response = await fetch(url, init);
  } catch (error) {
    throw new JwksFetchFailed(describeFailure(error));
  }
  if (response.status !== 200) {
    await response.body?.cancel();
    throw new JwksFetchFailed(`HTTP ${response.status}`);
  }
  let body: unknown;
  try {
    body = await response.json();
  } catch (error) {
    throw new JwksFetchFailed(init.signal?.aborted ? describeFailure(error) : 'the response is not JSON');
  }
  const keys = (body as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys)) throw new JwksFetchFailed('the response is not a JWK Set (no "keys" array)');
  const isObject = (key: unknown) => typeof key === 'object' && key !== null && !Array.isArray(key);
  return Response.json({ keys: keys.filter(isObject) });
}

/** `fetch failed (connect ECONNREFUSED 127.0.0.1:8080)`: undici hides the reason in `cause`. */
function describeFailure(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause instanceof Error ? error.cause.message : undefined;
  return cause === undefined ? error.message : `${error.message} (${cause})`;
}
