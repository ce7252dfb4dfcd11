/**
 * JWT verification for Herald's auth: HMAC secrets, PEM public keys and a JWKS URL. Every
 * rejection is a `HeraldError` whose `detail` tells the client what is wrong with its token —
 * never the token, a secret or a key.
 *
 * jose does the verifying: `jwtVerify` checks the signature (with the algorithm pinned to the
 * token's, so a key is only ever used with an algorithm of its family), then `iss`, `aud`, `nbf`
 * and `exp` with the clock tolerance; `createRemoteJWKSet` fetches, caches and selects JWKS keys
 * (./jwks.ts).
 *
 * Herald adds what jose has no notion of:
 * - key sets with roles: what a key's tokens may be used for ({@link KeyUse}), several key sets
 *   forming one verifier, and the most telling refusal when none verifies;
 * - rules for keys, checked at start (./jwt-keys.ts): secrets of at least 32 bytes (unless a test
 *   says otherwise), public keys of a usable type and size, an algorithm allow-list that the keys
 *   can honour;
 * - the order of checks: shape, then `alg` (`none` and algorithms outside the list are refused
 *   before any key is touched, which is what defeats HS/RS confusion), then the static keys of
 *   the token's algorithm, then the JWKS — so HS tokens never cause a JWKS fetch;
 * - refusals mapped to Herald's problem codes and details (./jwt-refusals.ts).
 */
import type { KeyObject } from 'node:crypto';
import { errors, type JWTPayload, type JWTVerifyOptions, jwtVerify } from 'jose';
import { HeraldError } from '../core/errors.ts';
import { RemoteKeySet } from './jwks.ts';
import {
  ASYMMETRIC_ALGORITHMS,
  algorithmsFor,
  describeSources,
  HMAC,
  HMAC_ALGORITHMS,
  nonNegative,
  parseAlgorithms,
  parseJwksUrl,
  parsePublicKey,
  parseSecret,
  SUPPORTED_ALGORITHMS,
  stringList,
} from './jwt-keys.ts';
import {
  claimTypeProblem,
  readToken,
  refusal,
  refuseAlgorithm,
  signatureInvalid,
  type TokenHeader,
} from './jwt-refusals.ts';

export { MIN_SECRET_BYTES, weakSecretProblem } from './jwt-keys.ts';

/**
 * What a key's tokens may be used for. A token is worth no more than the key that signed it:
 * whatever its claims say, a key without `publish` signs no publisher, a key without `admin` no
 * admin. Mercure gives subscribers and publishers keys of their own for that reason (the
 * subscriber key signs every browser's token, so it is the one most likely to leak).
 */
export type KeyUse = 'subscribe' | 'publish' | 'admin';

/** The hub's own keys: everything their tokens claim. */
export const ALL_KEY_USES: readonly KeyUse[] = ['subscribe', 'publish', 'admin'];

export interface JwtOptions {
  /**
   * HS256/384/512 shared secrets (several allowed, for rotation), each at least 32 bytes
   * ({@link MIN_SECRET_BYTES}): RFC 7518 §3.2 asks for at least the hash size, and anyone holding
   * one token can try guesses of a shorter secret offline, as fast as their hardware allows.
   */
  readonly secrets?: readonly string[];
  /** PEM public keys (SPKI "PUBLIC KEY" or X.509 "CERTIFICATE"): RS256/384/512, PS256/384/512, ES256/384/512, EdDSA. */
  readonly publicKeys?: readonly string[];
  /** A JWKS URL; keys are cached and refetched on an unknown `kid`, at most once per `jwksCooldownMs` (default 30 s). */
  readonly jwksUrl?: string;
  readonly jwksCooldownMs?: number;
  /** Accepted algorithms; default: the ones the configured keys can verify (HS* for secrets, and for each PEM key the algorithms of its type). */
  readonly algorithms?: readonly string[];
  readonly audience?: string | readonly string[];
  readonly issuer?: string | readonly string[];
  /** Leeway for exp/nbf, seconds. Default 5. */
  readonly clockToleranceSec?: number;
  /**
   * What tokens these keys verify may do. Default: everything (the hub's own keys); Mercure's
   * publisher key is `['publish']`, its subscriber key `['subscribe']`.
   */
  readonly uses?: readonly KeyUse[];
  /** How a refusal names these keys to the client, e.g. "Mercure's subscriber key". Default "this key". */
  readonly name?: string;
  /**
   * FOR TESTS ONLY: accept HMAC secrets shorter than {@link MIN_SECRET_BYTES}, which anyone
   * holding a single token can brute-force offline. Never set it in production.
   */
  readonly testOnlyAllowWeakSecrets?: boolean;
}

export interface VerifiedToken {
  readonly claims: Record<string, unknown>;
  /** ms since epoch, or undefined when the token has no exp */
  readonly expiresAt: number | undefined;
  /** What the key(s) that verified the token allow: its claims are capped to these. */
  readonly uses: ReadonlySet<KeyUse>;
  /** How to name those keys in a refusal. */
  readonly keyName: string;
}

export interface JwtVerifier {
  verify(token: string): Promise<VerifiedToken>;
}

const DEFAULT_JWKS_COOLDOWN_MS = 30_000;
const DEFAULT_CLOCK_TOLERANCE_SEC = 5;

type VerificationKey = KeyObject | Uint8Array;

/**
 * Throws (synchronously) an Error with a clear message if the options are unusable: no key at all,
 * a PEM that does not parse, an empty or short secret… Several key sets (each with its `uses`)
 * make one verifier: a token is worth what every set that verifies it allows.
 */
export function createJwtVerifier(options: JwtOptions | readonly JwtOptions[]): JwtVerifier {
  if (!isList(options)) return keySetVerifier(options);
  if (options.length === 0) throw new Error('JWT verification needs at least one key set');
  const sets = options.map(keySetVerifier);
  return sets.length === 1 ? (sets[0] as KeySetVerifier) : eitherVerifier(sets);
}

const isList = (options: JwtOptions | readonly JwtOptions[]): options is readonly JwtOptions[] =>
  Array.isArray(options);

/** One key set's verifier, and what the combined verifier needs to know of it. */
interface KeySetVerifier extends JwtVerifier {
  readonly uses: ReadonlySet<KeyUse>;
  readonly algorithms: readonly string[];
}

function keySetVerifier(options: JwtOptions): KeySetVerifier {
  const allowWeak = options.testOnlyAllowWeakSecrets === true;
  const secrets = (options.secrets ?? []).map((secret, i) => parseSecret(secret, `secrets[${i}]`, allowWeak));
  const publicKeys = (options.publicKeys ?? []).map((pem, i) => parsePublicKey(pem, `publicKeys[${i}]`));
  const jwksUrl = options.jwksUrl === undefined ? undefined : parseJwksUrl(options.jwksUrl);
  if (secrets.length === 0 && publicKeys.length === 0 && jwksUrl === undefined) {
    throw new Error('JWT verification needs at least one key: configure secrets, publicKeys or jwksUrl');
  }
  const cooldownMs = nonNegative(options.jwksCooldownMs, DEFAULT_JWKS_COOLDOWN_MS, 'jwksCooldownMs');
  const clockTolerance = nonNegative(
    options.clockToleranceSec,
    DEFAULT_CLOCK_TOLERANCE_SEC,
    'clockToleranceSec',
  );
  const expected = {
    audiences: stringList(options.audience, 'audience'),
    issuers: stringList(options.issuer, 'issuer'),
  };

  // The static keys of each algorithm: a key is only ever tried with an algorithm of its family.
  const staticKeys = new Map<string, VerificationKey[]>();
  const addStatic = (alg: string, key: VerificationKey) => {
    const list = staticKeys.get(alg);
    if (list) list.push(key);
    else staticKeys.set(alg, [key]);
  };
  for (const secret of secrets) for (const alg of HMAC_ALGORITHMS) addStatic(alg, secret);
  for (const { key } of publicKeys) for (const alg of algorithmsFor(key)) addStatic(alg, key);
  const verifiable = new Set<string>(staticKeys.keys());
  if (jwksUrl !== undefined) for (const alg of ASYMMETRIC_ALGORITHMS) verifiable.add(alg);

  const accepted = options.algorithms === undefined ? [...verifiable] : parseAlgorithms(options.algorithms);
  for (const alg of accepted) {
    if (!verifiable.has(alg)) {
      throw new Error(
        `algorithms lists ${alg}, but none of the configured keys can verify it (${describeSources(secrets.length, publicKeys, jwksUrl)})`,
      );
    }
  }
  const acceptedSet = new Set(SUPPORTED_ALGORITHMS.filter((alg) => accepted.includes(alg)));
  const acceptedList = [...acceptedSet].join(', ');
  const jwks = jwksUrl === undefined ? undefined : new RemoteKeySet(jwksUrl, cooldownMs);
  const uses = parseUses(options.uses);
  const keyName = options.name ?? 'this key';

  /** The claims once a key verifies the signature and jose the claims; jose's errors pass through. */
  const verifiedClaims = async (token: string, header: TokenHeader): Promise<JWTPayload> => {
    const { alg } = header;
    const verifyOptions: JWTVerifyOptions = {
      algorithms: [alg],
      clockTolerance,
      ...(expected.issuers === undefined ? {} : { issuer: expected.issuers }),
      ...(expected.audiences === undefined ? {} : { audience: expected.audiences }),
    };
    const statics = staticKeys.get(alg) ?? [];
    for (const key of statics) {
      const claims = await verifyWithKey(token, key, verifyOptions);
      if (claims !== undefined) return claims;
    }
    if (jwks !== undefined && !HMAC.has(alg)) {
      const others =
        statics.length > 0 ? ', and the signature does not verify with the other configured keys' : '';
      return jwks.verify(token, verifyOptions, header, others);
    }
    throw signatureInvalid(alg);
  };

  return {
    uses,
    algorithms: [...acceptedSet],
    async verify(token: string): Promise<VerifiedToken> {
      const header = readToken(token);
      refuseAlgorithm(header.alg, acceptedSet, acceptedList);
      let claims: JWTPayload;
      try {
        claims = await verifiedClaims(token, header);
      } catch (error) {
        throw refusal(error, header.alg, expected);
      }
      const problem = claimTypeProblem(claims);
      if (problem !== undefined) throw problem;
      const expiresAt = claims.exp === undefined ? undefined : claims.exp * 1000;
      return { claims, expiresAt, uses, keyName };
    },
  };
}

/** The token's claims if `key` verifies its signature, `undefined` if it does not. */
async function verifyWithKey(
  token: string,
  key: VerificationKey,
  options: JWTVerifyOptions,
): Promise<JWTPayload | undefined> {
  try {
    return (await jwtVerify(token, key, options)).payload;
  } catch (error) {
    // jose throws TypeError for a key that does not fit the algorithm: not this key either.
    if (error instanceof errors.JWSSignatureVerificationFailed || error instanceof TypeError)
      return undefined;
    throw error;
  }
}

/**
 * Several key sets as one verifier (Mercure's publisher and subscriber keys on the native API):
 * each set is tried in turn, skipping those that could add no use, and a token verified by more
 * than one (the same secret as both keys) may do what each allows. When none verifies, the most
 * telling refusal is the one given: a set whose key verified the signature knows why the token is
 * still refused (expired, wrong audience…), which a mere "signature does not verify" would hide.
 */
function eitherVerifier(sets: readonly KeySetVerifier[]): JwtVerifier {
  const algorithms = new Set(sets.flatMap((set) => set.algorithms));
  const acceptedList = SUPPORTED_ALGORITHMS.filter((alg) => algorithms.has(alg)).join(', ');
  return {
    async verify(token: string): Promise<VerifiedToken> {
      const { alg } = readToken(token);
      // alg none is left to each set, so that its refusal stays the most telling one.
      if (alg.toLowerCase() !== 'none') refuseAlgorithm(alg, algorithms, acceptedList);
      let verified: VerifiedToken | undefined;
      const refusals: unknown[] = [];
      for (const set of sets) {
        if (verified !== undefined && [...set.uses].every((use) => verified?.uses.has(use))) continue;
        try {
          const also = await set.verify(token);
          verified =
            verified === undefined
              ? also
              : {
                  ...verified,
                  uses: new Set([...verified.uses, ...also.uses]),
                  keyName: `${verified.keyName} and ${also.keyName}`,
                };
        } catch (error) {
          refusals.push(error);
        }
      }
      if (verified !== undefined) return verified;
      throw mostTelling(refusals);
    },
  };
}

/** Refusals that only mean "not signed with these keys", least telling last. */
const NOT_THIS_KEY = ['token-kid-unknown', 'token-signature-invalid', 'token-alg-not-allowed'];

function mostTelling(refusals: readonly unknown[]): unknown {
  const rank = (error: unknown) =>
    error instanceof HeraldError ? NOT_THIS_KEY.indexOf(error.code) : Number.POSITIVE_INFINITY;
  return refusals.reduce((best, error) => (rank(error) < rank(best) ? error : best));
}

function parseUses(value: readonly KeyUse[] | undefined): ReadonlySet<KeyUse> {
  if (value === undefined) return new Set(ALL_KEY_USES);
  if (!Array.isArray(value) || value.some((use) => !ALL_KEY_USES.includes(use))) {
    throw new Error(`uses must list some of ${ALL_KEY_USES.join(', ')}`);
  }
  return new Set(value);
}
