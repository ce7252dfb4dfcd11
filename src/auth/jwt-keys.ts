/**
 * The key material of a JWT key set, read from its options: HMAC secrets, PEM public keys, a
 * JWKS URL, and which algorithms each can verify. All checks here run at start and throw a plain
 * `Error` that says what to fix, never quoting a secret or a key.
 *
 * jose imports keys too, but only when a token arrives and with messages written for developers.
 * Herald refuses unusable keys before it serves anyone: secrets under 32 bytes, private keys
 * configured where a public one belongs, RSA under 2048 bits, curves no JWS algorithm uses, an
 * algorithm list naming something no configured key can verify.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';

/**
 * HMAC secrets shorter than this are refused: RFC 7518 §3.2 asks for a key at least as long as
 * the hash (32 bytes for HS256), and a short one is guessed offline from any single token.
 */
export const MIN_SECRET_BYTES = 32;
const MIN_RSA_BITS = 2048;

export const HMAC_ALGORITHMS = ['HS256', 'HS384', 'HS512'] as const;
const RSA_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'] as const;
const EC_ALGORITHM_BY_CURVE: Readonly<Record<string, string>> = {
  prime256v1: 'ES256',
  secp384r1: 'ES384',
  secp521r1: 'ES512',
};
const ED25519_ALGORITHMS = ['EdDSA', 'Ed25519'] as const;
/** What a JWKS may verify: every asymmetric algorithm (symmetric `oct` keys in a JWKS are ignored). */
export const ASYMMETRIC_ALGORITHMS: readonly string[] = [
  ...RSA_ALGORITHMS,
  ...Object.values(EC_ALGORITHM_BY_CURVE),
  ...ED25519_ALGORITHMS,
];
/** Every algorithm Herald accepts, in the order refusals list them. */
export const SUPPORTED_ALGORITHMS: readonly string[] = [...HMAC_ALGORITHMS, ...ASYMMETRIC_ALGORITHMS];
export const HMAC = new Set<string>(HMAC_ALGORITHMS);

export interface PublicKey {
  readonly key: KeyObject;
  readonly label: string;
}

export function parseSecret(secret: unknown, label: string, allowWeak: boolean): Uint8Array {
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

export function parsePublicKey(pem: unknown, label: string): PublicKey {
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
export function algorithmsFor(key: KeyObject): readonly string[] {
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

export function parseJwksUrl(value: unknown): URL {
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

export function parseAlgorithms(algorithms: readonly unknown[]): string[] {
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

export function describeSources(
  secretCount: number,
  publicKeys: readonly PublicKey[],
  jwksUrl: URL | undefined,
): string {
  const parts: string[] = [];
  if (secretCount > 0) parts.push(`secrets verify ${HMAC_ALGORITHMS.join('/')}`);
  for (const { key, label } of publicKeys) parts.push(`${label} verifies ${algorithmsFor(key).join('/')}`);
  if (jwksUrl !== undefined) parts.push('the JWKS verifies asymmetric algorithms');
  return parts.join('; ');
}

export function nonNegative(value: unknown, fallback: number, label: string): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw new Error(`${label} must be a non-negative number, got ${JSON.stringify(value)}`);
  }
  return value;
}

export function stringList(value: unknown, label: string): string[] | undefined {
  if (value === undefined) return undefined;
  const list = typeof value === 'string' ? [value] : value;
  if (!Array.isArray(list) || list.length === 0 || list.some((v) => typeof v !== 'string' || v === '')) {
    throw new Error(`${label} must be a non-empty string or a non-empty list of non-empty strings`);
  }
  return list as string[];
}
