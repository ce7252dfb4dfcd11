/**
 * JWT verification for Herald's auth: HMAC secrets, PEM public keys and a JWKS URL, all through
 * `jose`. Every rejection is a `HeraldError` whose `detail` tells the client what is wrong with
 * its token — never the token, a secret or a key.
 *
 * Order of checks: shape (three base64url parts, JSON header and claims) → `alg` (`none` and
 * algorithms outside the accepted list are refused before any key is touched, which is what
 * defeats HS/RS confusion) → signature against the key sources of the token's algorithm family
 * (and `kid`, for the JWKS) → `iss`, `aud`, `nbf`, `exp`.
 */
import { createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto';
import { compactVerify } from 'jose';
import { HeraldError } from '../core/errors.ts';

/**
 * What a key's tokens may be used for. A token is worth no more than the key that signed it:
 * whatever its claims say, a key without `publish` signs no publisher, a key without `admin` no
 * admin. Mercure gives subscribers and publishers keys of their own for that reason (the
 * subscriber key signs every browser's token, so it is the one most likely to leak).
 */
export type KeyUse = 'subscribe' | 'publish' | 'admin';

/** The hub's own keys: everything their tokens claim. */
export const ALL_KEY_USES: readonly KeyUse[] = ['subscribe', 'publish', 'admin'];

/**
 * HMAC secrets shorter than this are refused: RFC 7518 §3.2 asks for a key at least as long as
 * the hash (32 bytes for HS256), and a short one is guessed offline from any single token.
 */
export const MIN_SECRET_BYTES = 32;

export interface JwtOptions {
  /**
   * HS256/384/512 shared secrets (several allowed, for rotation), each at least 32 bytes
   * ({@link MIN_SECRET_BYTES}): RFC 7518 §3.2 asks for at least the hash size, and anyone holding
   * one token can try guesses of a shorter secret offline, as fast as their hardware allows.
   */
  readonly secrets?: readonly string[];
  /** PEM public keys (SPKI "PUBLIC KEY" or X.509 "CERTIFICATE"): RS256/384/512, PS256/384/512, ES256/384/512, EdDSA. */
  readonly publicKeys?: readonly string[];
  /** A JWKS URL; keys are cached (keyed by URL and `kid`) and refetched on an unknown `kid`, at most once per `jwksCooldownMs` (default 30 s). */
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
/** A cached JWKS older than this is refetched (when the cooldown allows) so removed keys stop verifying. */
const JWKS_MAX_AGE_MS = 10 * 60_000;
const JWKS_FETCH_TIMEOUT_MS = 5_000;
const MIN_RSA_BITS = 2048;

const HMAC_ALGORITHMS = ['HS256', 'HS384', 'HS512'] as const;
const RSA_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'] as const;
const EC_ALGORITHM_BY_CURVE: Readonly<Record<string, string>> = {
  prime256v1: 'ES256',
  secp384r1: 'ES384',
  secp521r1: 'ES512',
};
const ED25519_ALGORITHMS = ['EdDSA', 'Ed25519'] as const;
/** What a JWKS may verify: every asymmetric algorithm (symmetric `oct` keys in a JWKS are ignored). */
const ASYMMETRIC_ALGORITHMS: readonly string[] = [
  ...RSA_ALGORITHMS,
  ...Object.values(EC_ALGORITHM_BY_CURVE),
  ...ED25519_ALGORITHMS,
];
const SUPPORTED_ALGORITHMS: readonly string[] = [...HMAC_ALGORITHMS, ...ASYMMETRIC_ALGORITHMS];
const HMAC = new Set<string>(HMAC_ALGORITHMS);

type VerificationKey = KeyObject | Uint8Array;

interface JwksKey {
  readonly kid: string | undefined;
  readonly key: KeyObject;
  readonly algorithms: readonly string[];
}

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
  const toleranceMs =
    1000 * nonNegative(options.clockToleranceSec, DEFAULT_CLOCK_TOLERANCE_SEC, 'clockToleranceSec');
  const audiences = stringList(options.audience, 'audience');
  const issuers = stringList(options.issuer, 'issuer');

  // Which algorithm each key source can verify.
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
  const jwks = jwksUrl === undefined ? undefined : new JwksCache(jwksUrl, cooldownMs);
  const uses = parseUses(options.uses);
  const keyName = options.name ?? 'this key';

  return {
    uses,
    algorithms: [...acceptedSet],
    async verify(token: string): Promise<VerifiedToken> {
      const { header, claims } = parseToken(token);
      const alg = header.alg;
      if (alg.toLowerCase() === 'none') {
        throw unauthorized('token-alg-none', 'unsigned tokens (alg none) are not accepted; sign the token');
      }
      if (!acceptedSet.has(alg)) {
        throw unauthorized(
          'token-alg-not-allowed',
          `the token is signed with ${showAlgorithm(alg)}; this hub accepts ${acceptedList}`,
        );
      }
      const kid = header.kid;

      let verified = false;
      const statics = staticKeys.get(alg) ?? [];
      for (const key of statics) {
        if (await verifies(token, alg, key)) {
          verified = true;
          break;
        }
      }
      if (!verified && jwks !== undefined && !HMAC.has(alg)) {
        await verifyWithJwks(jwks, token, alg, kid, statics.length > 0);
        verified = true;
      }
      if (!verified) {
        throw unauthorized(
          'token-signature-invalid',
          `the token's ${alg} signature does not verify with the configured keys`,
        );
      }
      const { expiresAt } = checkClaims(claims, { audiences, issuers, toleranceMs });
      return { claims, expiresAt, uses, keyName };
    },
  };
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
      const alg = parseToken(token).header.alg;
      if (alg.toLowerCase() !== 'none' && !algorithms.has(alg)) {
        throw unauthorized(
          'token-alg-not-allowed',
          `the token is signed with ${showAlgorithm(alg)}; this hub accepts ${acceptedList}`,
        );
      }
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

// ---------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------

function parseSecret(secret: unknown, label: string, allowWeak: boolean): Uint8Array {
  if (typeof secret !== 'string') throw new Error(`${label} must be a string`);
  if (secret.trim() === '') throw new Error(`${label} is empty; an HMAC secret must not be blank`);
  const bytes = new TextEncoder().encode(secret);
  if (bytes.length < MIN_SECRET_BYTES && !allowWeak) {
    throw new Error(
      `${label} is ${weakSecretProblem(bytes.length)} (tests only: testOnlyAllowWeakSecrets: true)`,
    );
  }
  return bytes;
}

/** Why a secret of `bytes` bytes is refused, and what to do; for every place that takes one. */
export function weakSecretProblem(bytes: number): string {
  return (
    `${bytes} byte${bytes === 1 ? '' : 's'} long; an HMAC secret must be at least ${MIN_SECRET_BYTES} bytes ` +
    '(RFC 7518 §3.2), or anyone holding one token can guess it offline. Generate one with ' +
    '`openssl rand -base64 48`'
  );
}

function parsePublicKey(pem: unknown, label: string): { key: KeyObject; label: string } {
  const expected =
    'expected a PEM public key ("-----BEGIN PUBLIC KEY-----") or certificate ("-----BEGIN CERTIFICATE-----")';
  if (typeof pem !== 'string' || pem.trim() === '') throw new Error(`${label} is empty; ${expected}`);
  const type = /-----BEGIN ([A-Z0-9 ]+)-----/.exec(pem)?.[1];
  if (type === undefined) throw new Error(`${label} is not PEM; ${expected}`);
  if (type.includes('PRIVATE')) {
    throw new Error(
      `${label} is a private key; configure the matching public key or certificate, and keep the private key with the token issuer`,
    );
  }
  if (type !== 'PUBLIC KEY' && type !== 'RSA PUBLIC KEY' && type !== 'CERTIFICATE') {
    throw new Error(`${label} is a PEM "${type}"; ${expected}`);
  }
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch (error) {
    throw new Error(`${label} does not parse as a PEM ${type.toLowerCase()} (${(error as Error).message})`);
  }
  const keyType = key.asymmetricKeyType;
  if (keyType === 'rsa' && (key.asymmetricKeyDetails?.modulusLength ?? 0) < MIN_RSA_BITS) {
    throw new Error(
      `${label} is a ${key.asymmetricKeyDetails?.modulusLength}-bit RSA key; JWT algorithms need at least ${MIN_RSA_BITS} bits`,
    );
  }
  if (algorithmsFor(key).length === 0) {
    const what = keyType === 'ec' ? `an EC ${key.asymmetricKeyDetails?.namedCurve} key` : `a ${keyType} key`;
    throw new Error(
      `${label} is ${what}, which cannot verify JWTs here; use RSA (at least ${MIN_RSA_BITS} bits), EC P-256/P-384/P-521 or Ed25519`,
    );
  }
  return { key, label };
}

/** The JWS algorithms a public key can verify; empty when it can verify none. */
function algorithmsFor(key: KeyObject): readonly string[] {
  switch (key.asymmetricKeyType) {
    case 'rsa':
      return (key.asymmetricKeyDetails?.modulusLength ?? 0) >= MIN_RSA_BITS ? RSA_ALGORITHMS : [];
    case 'ec': {
      const alg = EC_ALGORITHM_BY_CURVE[key.asymmetricKeyDetails?.namedCurve ?? ''];
      return alg === undefined ? [] : [alg];
    }
    case 'ed25519':
      return ED25519_ALGORITHMS;
    default:
      // rsa-pss (id-RSASSA-PSS) keys cannot be used by WebCrypto; Ed448, X25519… sign no JWS.
      return [];
  }
}

function parseJwksUrl(value: unknown): URL {
  if (typeof value !== 'string' || value.trim() === '')
    throw new Error('jwksUrl is empty; expected an https URL');
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new Error('jwksUrl is not a valid URL; expected e.g. https://issuer.example/.well-known/jwks.json');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new Error(`jwksUrl must be an http(s) URL, not ${url.protocol}`);
  }
  return url;
}

function parseAlgorithms(algorithms: readonly unknown[]): string[] {
  if (!Array.isArray(algorithms) || algorithms.length === 0) {
    throw new Error(`algorithms must list at least one of ${SUPPORTED_ALGORITHMS.join(', ')}`);
  }
  return algorithms.map((alg) => {
    if (typeof alg === 'string' && alg.toLowerCase() === 'none') {
      throw new Error('algorithms must not include "none": unsigned tokens are never accepted');
    }
    if (typeof alg !== 'string' || !SUPPORTED_ALGORITHMS.includes(alg)) {
      throw new Error(
        `algorithms: ${JSON.stringify(alg)} is not supported; use ${SUPPORTED_ALGORITHMS.join(', ')}`,
      );
    }
    return alg;
  });
}

function nonNegative(value: unknown, fallback: number, label: string): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw new Error(`${label} must be a non-negative number, got ${JSON.stringify(value)}`);
  }
  return value;
}

function stringList(value: unknown, label: string): readonly string[] | undefined {
  if (value === undefined) return undefined;
  const list = typeof value === 'string' ? [value] : value;
  if (!Array.isArray(list) || list.length === 0 || list.some((v) => typeof v !== 'string' || v === '')) {
    throw new Error(`${label} must be a non-empty string or a non-empty list of non-empty strings`);
  }
  return list as string[];
}

function describeSources(
  secretCount: number,
  publicKeys: readonly { key: KeyObject; label: string }[],
  jwksUrl: URL | undefined,
): string {
  const parts: string[] = [];
  if (secretCount > 0) parts.push(`secrets verify ${HMAC_ALGORITHMS.join('/')}`);
  for (const { key, label } of publicKeys) parts.push(`${label} verifies ${algorithmsFor(key).join('/')}`);
  if (jwksUrl !== undefined) parts.push('the JWKS verifies asymmetric algorithms');
  return parts.join('; ');
}

// ---------------------------------------------------------------------------------------------
// Token shape and claims
// ---------------------------------------------------------------------------------------------

interface Header {
  readonly alg: string;
  readonly kid: string | undefined;
}

const BASE64URL = /^[A-Za-z0-9_-]*$/;
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

function parseToken(token: unknown): { header: Header; claims: Record<string, unknown> } {
  const malformed = (why: string) =>
    unauthorized('token-malformed', `the token is not a well-formed JWT: ${why}`);
  if (typeof token !== 'string' || token === '') throw malformed('it is empty');
  const parts = token.split('.');
  if (parts.length !== 3) {
    throw malformed(
      parts.length === 5
        ? 'it has five parts (an encrypted JWE); this hub accepts signed JWS tokens of three parts'
        : `it has ${parts.length} dot-separated part${parts.length === 1 ? '' : 's'} instead of three (header.payload.signature)`,
    );
  }
  const [headerPart = '', payloadPart = '', signaturePart = ''] = parts;
  for (const [name, part] of [
    ['header', headerPart],
    ['payload', payloadPart],
    ['signature', signaturePart],
  ] as const) {
    if (!BASE64URL.test(part) || part.length % 4 === 1) throw malformed(`its ${name} is not base64url`);
  }
  const header = decodeJsonObject(headerPart);
  if (header === undefined) throw malformed('its header is not a base64url-encoded JSON object');
  const claims = decodeJsonObject(payloadPart);
  if (claims === undefined) throw malformed('its payload is not a base64url-encoded JSON object');
  const { alg, kid } = header;
  if (typeof alg !== 'string' || alg === '') throw malformed('its header has no "alg"');
  if (kid !== undefined && typeof kid !== 'string') throw malformed('its "kid" header is not a string');
  if (header.b64 !== undefined) throw malformed('JWTs must not use the "b64" header (unencoded payload)');
  if (header.crit !== undefined) throw malformed('critical header extensions ("crit") are not supported');
  return { header: { alg, kid }, claims };
}

function decodeJsonObject(part: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(strictUtf8.decode(Buffer.from(part, 'base64url')));
    return typeof value === 'object' && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

function checkClaims(
  claims: Record<string, unknown>,
  expected: {
    audiences: readonly string[] | undefined;
    issuers: readonly string[] | undefined;
    toleranceMs: number;
  },
): { expiresAt: number | undefined } {
  const numericDate = (name: string): number | undefined => {
    const value = claims[name];
    if (value === undefined) return undefined;
    if (typeof value !== 'number' || !Number.isFinite(value)) {
      throw unauthorized(
        'token-malformed',
        `the token's "${name}" claim must be a number of seconds since the epoch`,
      );
    }
    return value * 1000;
  };
  const { iss, aud } = claims;
  if (iss !== undefined && typeof iss !== 'string') {
    throw unauthorized('token-malformed', `the token's "iss" claim must be a string`);
  }
  if (
    aud !== undefined &&
    typeof aud !== 'string' &&
    !(Array.isArray(aud) && aud.every((a) => typeof a === 'string'))
  ) {
    throw unauthorized('token-malformed', `the token's "aud" claim must be a string or a list of strings`);
  }
  numericDate('iat'); // only its type is checked
  const nbf = numericDate('nbf');
  const exp = numericDate('exp');

  if (expected.issuers !== undefined && !(iss !== undefined && expected.issuers.includes(iss))) {
    const wanted = `this hub accepts tokens issued by ${showList(expected.issuers)}`;
    throw unauthorized(
      'token-issuer-invalid',
      iss === undefined
        ? `the token has no "iss" claim; ${wanted}`
        : `the token was issued by ${show(iss)}; ${wanted}`,
    );
  }
  if (expected.audiences !== undefined) {
    const given = aud === undefined ? [] : typeof aud === 'string' ? [aud] : (aud as string[]);
    if (!given.some((a) => expected.audiences?.includes(a))) {
      const wanted = `this hub expects the audience ${showList(expected.audiences)}`;
      throw unauthorized(
        'token-audience-invalid',
        given.length === 0
          ? `the token has no "aud" claim; ${wanted}`
          : `the token is for the audience ${showList(given)}; ${wanted}`,
      );
    }
  }
  const now = Date.now();
  if (nbf !== undefined && nbf > now + expected.toleranceMs) {
    throw unauthorized('token-not-yet-valid', `the token is not valid before ${isoTime(nbf)}`);
  }
  if (exp !== undefined && exp <= now - expected.toleranceMs) {
    throw unauthorized('token-expired', `the token expired at ${isoTime(exp)}`);
  }
  return { expiresAt: exp };
}

function isoTime(ms: number): string {
  const date = new Date(ms);
  return Number.isNaN(date.getTime()) ? `${ms / 1000} seconds after the epoch` : date.toISOString();
}

// ---------------------------------------------------------------------------------------------
// Signatures
// ---------------------------------------------------------------------------------------------

/** Whether `key` verifies the token's signature; `false` for a wrong signature or an unusable key. */
async function verifies(token: string, alg: string, key: VerificationKey): Promise<boolean> {
  try {
    await compactVerify(token, key, { algorithms: [alg] });
    return true;
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (code === 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED') return false;
    if (code === 'ERR_JWS_INVALID' || code === 'ERR_JOSE_NOT_SUPPORTED') {
      throw unauthorized(
        'token-malformed',
        'the token is not a well-formed JWT: its signature cannot be decoded',
      );
    }
    // jose throws TypeError for a key that does not fit the algorithm (e.g. a JWKS entry): not this key.
    if (error instanceof TypeError) return false;
    throw error;
  }
}

async function verifyWithJwks(
  jwks: JwksCache,
  token: string,
  alg: string,
  kid: string | undefined,
  triedStaticKeys: boolean,
): Promise<void> {
  let keys = await jwks.keys();
  let candidates = matchingKeys(keys, alg, kid);
  if (candidates.length === 0) {
    // A new kid (or algorithm) may mean the issuer rotated its keys: refetch, rate-limited.
    const refreshed = await jwks.refresh();
    if (refreshed !== undefined) {
      keys = refreshed;
      candidates = matchingKeys(keys, alg, kid);
    }
  }
  for (const candidate of candidates) if (await verifies(token, alg, candidate.key)) return;

  const others = triedStaticKeys ? ', and the signature does not verify with the other configured keys' : '';
  if (candidates.length > 0) {
    throw unauthorized(
      'token-signature-invalid',
      `the token's ${alg} signature does not verify with the configured keys`,
    );
  }
  if (kid !== undefined && !keys.some((key) => key.kid === kid)) {
    throw unauthorized('token-kid-unknown', `no key with kid ${show(kid)} in the JWKS${others}`);
  }
  throw unauthorized(
    'token-signature-invalid',
    kid === undefined
      ? `no key in the JWKS can verify ${alg} signatures${others}`
      : `the JWKS key with kid ${show(kid)} cannot verify ${alg} signatures${others}`,
  );
}

/** JWKS keys for this algorithm; with a `kid` in the token, only keys with that `kid` (as jose does). */
function matchingKeys(keys: readonly JwksKey[], alg: string, kid: string | undefined): JwksKey[] {
  return keys.filter((key) => (kid === undefined || key.kid === kid) && key.algorithms.includes(alg));
}

/**
 * One verifier's view of one JWKS URL: its keys by `kid`, fetched on first use, refetched when a
 * token names an unknown `kid` (or after {@link JWKS_MAX_AGE_MS}), never more than once per
 * cooldown — failed fetches included, so a down JWKS server is not hammered.
 */
class JwksCache {
  readonly #url: URL;
  readonly #cooldownMs: number;
  #keys: readonly JwksKey[] | undefined;
  #fetchedAt = 0;
  #lastAttemptAt = Number.NEGATIVE_INFINITY;
  #lastFailure = '';
  #inFlight: Promise<readonly JwksKey[]> | undefined;

  constructor(url: URL, cooldownMs: number) {
    this.#url = url;
    this.#cooldownMs = cooldownMs;
  }

  /** The cached keys, loading them first if never loaded; 503 when they cannot be had. */
  async keys(): Promise<readonly JwksKey[]> {
    const known = this.#keys;
    if (this.#inFlight) return known === undefined ? this.#inFlight : this.#inFlight.catch(() => known);
    if (known === undefined) {
      if (!this.#mayFetch()) throw this.#unavailable();
      return this.#fetch();
    }
    if (Date.now() - this.#fetchedAt > JWKS_MAX_AGE_MS && this.#mayFetch()) {
      // Stale: refetch, but an unreachable server does not invalidate the keys already known.
      return this.#fetch().catch(() => known);
    }
    return known;
  }

  /** Refetches unless the cooldown forbids it (then `undefined`); 503 when the fetch fails. */
  async refresh(): Promise<readonly JwksKey[] | undefined> {
    if (this.#inFlight) return this.#inFlight;
    if (!this.#mayFetch()) return undefined;
    return this.#fetch();
  }

  #mayFetch(): boolean {
    return Date.now() - this.#lastAttemptAt >= this.#cooldownMs;
  }

  #fetch(): Promise<readonly JwksKey[]> {
    this.#lastAttemptAt = Date.now();
    const attempt = this.#load().then(
      (keys) => {
        this.#keys = keys;
        this.#fetchedAt = Date.now();
        return keys;
      },
      (error: unknown) => {
        this.#lastFailure = describeFailure(error);
        throw this.#unavailable();
      },
    );
    this.#inFlight = attempt;
    const clear = () => {
      if (this.#inFlight === attempt) this.#inFlight = undefined;
    };
    attempt.then(clear, clear);
    return attempt;
  }

  async #load(): Promise<readonly JwksKey[]> {
    const response = await fetch(this.#url, {
      headers: { accept: 'application/jwk-set+json, application/json' },
      signal: AbortSignal.timeout(JWKS_FETCH_TIMEOUT_MS),
    });
    if (!response.ok) {
      await response.body?.cancel();
      throw new Error(`HTTP ${response.status}`);
    }
    let body: unknown;
    try {
      body = await response.json();
    } catch {
      throw new Error('the response is not JSON');
    }
    const entries = (body as { keys?: unknown } | null)?.keys;
    if (!Array.isArray(entries)) throw new Error('the response is not a JWK Set (no "keys" array)');
    return entries.flatMap((entry): JwksKey[] => {
      const key = importJwk(entry);
      return key === undefined ? [] : [key];
    });
  }

  #unavailable(): HeraldError {
    const error = new HeraldError(
      503,
      'jwks-unavailable',
      'the hub cannot fetch the key set (JWKS) it needs to verify tokens; try again later',
      { headers: { 'Retry-After': String(Math.max(1, Math.ceil(this.#cooldownMs / 1000))) } },
    );
    // For the operator's logs, not the client: which URL, and why.
    error.cause = new Error(`GET ${this.#url.href} failed: ${this.#lastFailure}`);
    return error;
  }
}

/** `fetch failed (connect ECONNREFUSED 127.0.0.1:8080)`: undici hides the reason in `cause`. */
function describeFailure(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause instanceof Error ? error.cause.message : undefined;
  return cause === undefined ? error.message : `${error.message} (${cause})`;
}

/** A usable verification key from a JWKS entry, or `undefined` for entries Herald cannot use. */
function importJwk(entry: unknown): JwksKey | undefined {
  if (typeof entry !== 'object' || entry === null) return undefined;
  const jwk = entry as Record<string, unknown>;
  if (jwk.kty === 'oct') return undefined; // shared secrets have no place in a published key set
  if (jwk.use !== undefined && jwk.use !== 'sig') return undefined;
  if (Array.isArray(jwk.key_ops) && !jwk.key_ops.includes('verify')) return undefined;
  let key: KeyObject;
  try {
    key = createPublicKey({ key: jwk as JsonWebKey, format: 'jwk' });
  } catch {
    return undefined;
  }
  const algorithms = algorithmsFor(key).filter((alg) => jwk.alg === undefined || jwk.alg === alg);
  if (algorithms.length === 0) return undefined;
  return { kid: typeof jwk.kid === 'string' ? jwk.kid : undefined, key, algorithms };
}

// ---------------------------------------------------------------------------------------------
// Details
// ---------------------------------------------------------------------------------------------

const unauthorized = (code: string, detail: string) =>
  new HeraldError(401, code, detail, { headers: { 'WWW-Authenticate': 'Bearer error="invalid_token"' } });

/** A client-supplied string, quoted and cut short so a detail stays readable. */
function show(value: string): string {
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
