import assert from 'node:assert/strict';
import { createHmac, createPrivateKey, createSign, generateKeyPairSync, KeyObject } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { type CryptoKey, exportJWK, exportSPKI, generateKeyPair, type JWK, SignJWT } from 'jose';
import { createJwtVerifier, type JwtVerifier } from '../../src/auth/jwt.ts';
import { HeraldError } from '../../src/core/errors.ts';

const SECRET = 'first-secret-that-is-long-enough-for-hs512-signatures!';
const OTHER_SECRET = 'second-secret-used-after-rotation-of-the-first-one!!';
const secretKey = (secret: string) => new TextEncoder().encode(secret);
const now = () => Math.floor(Date.now() / 1000);

interface Pair {
  readonly privateKey: CryptoKey;
  readonly publicKey: CryptoKey;
  readonly pem: string;
}

async function pair(alg: string, options: { modulusLength?: number } = {}): Promise<Pair> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true, ...options });
  return { privateKey, publicKey, pem: await exportSPKI(publicKey) };
}

async function sign(
  key: CryptoKey | Uint8Array,
  alg: string,
  claims: Record<string, unknown> = {},
  header: Record<string, unknown> = {},
): Promise<string> {
  // A WebCrypto key is bound to one algorithm; as a KeyObject, one RSA key signs RS* and PS* alike.
  const signingKey = key instanceof Uint8Array ? key : KeyObject.from(key);
  return new SignJWT({ sub: 'user-1', ...claims }).setProtectedHeader({ ...header, alg }).sign(signingKey);
}

const b64 = (value: unknown) =>
  Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');

/** The things no detail may ever show. */
const forbidden: string[] = [SECRET, OTHER_SECRET];

/**
 * Asserts `promise` rejects with a HeraldError of this status and code, whose detail matches
 * `detail` and contains neither the token (nor any part of it) nor a secret or key.
 */
async function rejects(
  promise: Promise<unknown>,
  expected: { status?: number; code: string; detail?: RegExp; token?: string },
): Promise<HeraldError> {
  let caught: unknown;
  await promise.then(
    () => assert.fail(`expected a rejection with code ${expected.code}`),
    (error: unknown) => {
      caught = error;
    },
  );
  assert.ok(caught instanceof HeraldError, `expected a HeraldError, got ${String(caught)}`);
  assert.equal(caught.code, expected.code, caught.detail);
  assert.equal(caught.status, expected.status ?? 401);
  if (expected.detail) assert.match(caught.detail, expected.detail);
  const secrets = [...forbidden];
  if (expected.token) {
    secrets.push(expected.token);
    // Every part of the token too (the signature especially), when long enough to be recognisable.
    for (const part of expected.token.split('.')) if (part.length >= 12) secrets.push(part);
  }
  for (const secret of secrets) {
    assert.ok(
      !caught.detail.includes(secret),
      `the detail "${caught.detail}" leaks a secret, key or the token`,
    );
    // PEM bodies are also checked line by line: a detail must not quote any of a key.
    for (const line of secret.split('\n')) {
      if (line.length >= 24 && !line.startsWith('-----')) assert.ok(!caught.detail.includes(line));
    }
  }
  return caught;
}

/** A verification that must fail: the token is passed once and checked against the detail. */
const refuse = (
  verifier: JwtVerifier,
  token: string,
  expected: { status?: number; code: string; detail?: RegExp },
) => rejects(verifier.verify(token), { ...expected, token });

let rsa: Pair;
let otherRsa: Pair;
let ec: Pair;
let ed: Pair;

before(async () => {
  [rsa, otherRsa, ec, ed] = await Promise.all([pair('RS256'), pair('RS256'), pair('ES256'), pair('EdDSA')]);
  forbidden.push(rsa.pem, otherRsa.pem, ec.pem, ed.pem);
});

describe('HMAC secrets', () => {
  test('HS256, HS384 and HS512 tokens are accepted, with their claims and exp in ms', async () => {
    const verifier = createJwtVerifier({ secrets: [SECRET] });
    const exp = now() + 600;
    for (const alg of ['HS256', 'HS384', 'HS512']) {
      const token = await sign(secretKey(SECRET), alg, { exp, herald: { subscribe: ['*'] } });
      const verified = await verifier.verify(token);
      assert.equal(verified.claims.sub, 'user-1');
      assert.deepEqual(verified.claims.herald, { subscribe: ['*'] });
      assert.equal(verified.expiresAt, exp * 1000);
    }
  });

  test('a token without exp has expiresAt undefined', async () => {
    const verifier = createJwtVerifier({ secrets: [SECRET] });
    const verified = await verifier.verify(await sign(secretKey(SECRET), 'HS256'));
    assert.equal(verified.expiresAt, undefined);
  });

  test('rotation: tokens signed with either of two secrets are accepted', async () => {
    const verifier = createJwtVerifier({ secrets: [OTHER_SECRET, SECRET] });
    await verifier.verify(await sign(secretKey(SECRET), 'HS256'));
    await verifier.verify(await sign(secretKey(OTHER_SECRET), 'HS512'));
  });

  test('a token signed with another secret: token-signature-invalid', async () => {
    const verifier = createJwtVerifier({ secrets: [SECRET] });
    const token = await sign(secretKey(OTHER_SECRET), 'HS256');
    await refuse(verifier, token, {
      code: 'token-signature-invalid',
      detail: /signature does not verify with the configured keys/,
    });
  });

  test('a tampered payload: token-signature-invalid', async () => {
    const verifier = createJwtVerifier({ secrets: [SECRET] });
    const [header, , signature] = (await sign(secretKey(SECRET), 'HS256', { sub: 'alice' })).split('.');
    const forged = `${header}.${b64({ sub: 'admin', herald: { admin: true } })}.${signature}`;
    await refuse(verifier, forged, { code: 'token-signature-invalid' });
  });
});

describe('PEM public keys', () => {
  test('RS256, PS256, ES256 and EdDSA tokens are accepted', async () => {
    const verifier = createJwtVerifier({ publicKeys: [rsa.pem, ec.pem, ed.pem] });
    for (const [key, alg] of [
      [rsa, 'RS256'],
      [rsa, 'RS512'],
      [rsa, 'PS256'],
      [ec, 'ES256'],
      [ed, 'EdDSA'],
    ] as const) {
      const verified = await verifier.verify(await sign(key.privateKey, alg, { n: alg }));
      assert.equal(verified.claims.n, alg);
    }
  });

  test('an X.509 certificate is accepted as a key', async () => {
    const verifier = createJwtVerifier({ publicKeys: [CERTIFICATE] });
    const key = createPrivateKey(CERTIFICATE_PRIVATE_KEY);
    const token = await new SignJWT({ sub: 'x' }).setProtectedHeader({ alg: 'ES256' }).sign(key);
    assert.equal((await verifier.verify(token)).claims.sub, 'x');
  });

  test('a token signed with another key: token-signature-invalid', async () => {
    const verifier = createJwtVerifier({ publicKeys: [rsa.pem] });
    await refuse(verifier, await sign(otherRsa.privateKey, 'RS256'), { code: 'token-signature-invalid' });
  });

  test('an algorithm the keys cannot verify: token-alg-not-allowed, naming both', async () => {
    const verifier = createJwtVerifier({ publicKeys: [ec.pem] });
    await refuse(verifier, await sign(rsa.privateKey, 'RS256'), {
      code: 'token-alg-not-allowed',
      detail: /^the token is signed with RS256; this hub accepts ES256$/,
    });
  });

  test('the algorithms option narrows what is accepted', async () => {
    const verifier = createJwtVerifier({ publicKeys: [rsa.pem], algorithms: ['PS256'] });
    await verifier.verify(await sign(rsa.privateKey, 'PS256'));
    await refuse(verifier, await sign(rsa.privateKey, 'RS256'), {
      code: 'token-alg-not-allowed',
      detail: /signed with RS256; this hub accepts PS256/,
    });
  });

  test('HS/RS confusion: HS256 signed with the public PEM as secret is refused', async () => {
    const verifier = createJwtVerifier({ publicKeys: [rsa.pem] });
    for (const secret of [rsa.pem, rsa.pem.trim()]) {
      const token = await sign(secretKey(secret), 'HS256', { herald: { admin: true } });
      await refuse(verifier, token, {
        code: 'token-alg-not-allowed',
        detail: /signed with HS256; this hub accepts RS256/,
      });
    }
  });

  test('with a secret and a public key, an HS256 token is only tried with the secret', async () => {
    const verifier = createJwtVerifier({ secrets: [SECRET], publicKeys: [rsa.pem] });
    await verifier.verify(await sign(secretKey(SECRET), 'HS256'));
    await verifier.verify(await sign(rsa.privateKey, 'RS256'));
    await refuse(verifier, await sign(secretKey(rsa.pem), 'HS256'), { code: 'token-signature-invalid' });
  });
});

describe('refused token shapes', () => {
  const verifier = () => createJwtVerifier({ secrets: [SECRET] });

  test('not three base64url parts, or header/payload not JSON objects: token-malformed', async () => {
    const good = await sign(secretKey(SECRET), 'HS256');
    const [header = '', payload = '', signature = ''] = good.split('.');
    const malformed = [
      '',
      'not-a-jwt',
      `${header}.${payload}`,
      `${good}.extra`,
      `${header}.${payload}.${signature}.a.b`,
      `${b64('not json')}.${payload}.${signature}`,
      `${header}.${b64('{"sub": ')}.${signature}`,
      `${header}.${b64([1, 2])}.${signature}`,
      `${b64({ typ: 'JWT' })}.${payload}.${signature}`,
      `${header}.${payload}.${signature}!`,
      `${header}.pay load.${signature}`,
    ];
    for (const token of malformed) {
      await refuse(verifier(), token, {
        code: 'token-malformed',
        detail: /^the token is not a well-formed JWT/,
      });
    }
  });

  test('alg none: token-alg-none', async () => {
    for (const alg of ['none', 'None', 'NONE']) {
      const token = `${b64({ alg, typ: 'JWT' })}.${b64({ sub: 'admin', herald: { admin: true } })}.`;
      await refuse(verifier(), token, { code: 'token-alg-none', detail: /alg none/ });
    }
  });

  test('a claim of the wrong type: token-malformed', async () => {
    const token = await sign(secretKey(SECRET), 'HS256', { exp: 'tomorrow' });
    await refuse(verifier(), token, { code: 'token-malformed', detail: /"exp" claim must be a number/ });
  });

  /** A token whose header and payload are sent as written, signed with SECRET. */
  const raw = (header: string, payload: string) => {
    const input = `${b64(header)}.${b64(payload)}`;
    return `${input}.${createHmac('sha256', SECRET).update(input).digest('base64url')}`;
  };

  test('claims of the wrong type, even where nothing is expected of them: token-malformed', async () => {
    const header = '{"alg":"HS256"}';
    for (const [payload, detail] of [
      ['{"exp":1e999}', /"exp" claim must be a number/],
      ['{"iss":42}', /"iss" claim must be a string/],
      ['{"aud":["a",1]}', /"aud" claim must be a string or a list of strings/],
      ['{"iat":"now"}', /"iat" claim must be a number/],
    ] as const) {
      await refuse(verifier(), raw(header, payload), { code: 'token-malformed', detail });
    }
    // The type is checked before the value: a wrong type is what the client must fix first.
    const withIssuer = createJwtVerifier({ secrets: [SECRET], issuer: 'https://auth.example' });
    await refuse(withIssuer, raw(header, '{"iss":42}'), { code: 'token-malformed' });
  });

  test('b64 and crit headers: token-malformed', async () => {
    for (const header of [
      '{"alg":"HS256","b64":true}',
      '{"alg":"HS256","b64":false,"crit":["b64"]}',
      '{"alg":"HS256","crit":["exp"],"exp":1}',
    ]) {
      await refuse(verifier(), raw(header, '{"sub":"x"}'), { code: 'token-malformed' });
    }
  });
});

describe('time, audience and issuer', () => {
  test('a token expired 10 s ago: token-expired, with the expiry in ISO 8601', async () => {
    const exp = now() - 10;
    const token = await sign(secretKey(SECRET), 'HS256', { exp });
    const error = await refuse(createJwtVerifier({ secrets: [SECRET] }), token, { code: 'token-expired' });
    assert.equal(error.detail, `the token expired at ${new Date(exp * 1000).toISOString()}`);
  });

  test('leeway: a token expired 2 s ago passes with the default 5 s, not with 0 s', async () => {
    const exp = now() - 2;
    const token = await sign(secretKey(SECRET), 'HS256', { exp });
    assert.equal((await createJwtVerifier({ secrets: [SECRET] }).verify(token)).expiresAt, exp * 1000);
    await refuse(createJwtVerifier({ secrets: [SECRET], clockToleranceSec: 0 }), token, {
      code: 'token-expired',
    });
  });

  test('nbf in the future beyond the leeway: token-not-yet-valid, with the time', async () => {
    const nbf = now() + 60;
    const token = await sign(secretKey(SECRET), 'HS256', { nbf });
    await refuse(createJwtVerifier({ secrets: [SECRET] }), token, {
      code: 'token-not-yet-valid',
      detail: new RegExp(`not valid before ${new Date(nbf * 1000).toISOString()}`),
    });
    const soon = await sign(secretKey(SECRET), 'HS256', { nbf: now() + 2 });
    await createJwtVerifier({ secrets: [SECRET] }).verify(soon);
  });

  test('audience: accepted when one of the token audiences matches, refused otherwise', async () => {
    const verifier = createJwtVerifier({ secrets: [SECRET], audience: ['herald', 'herald-staging'] });
    await verifier.verify(await sign(secretKey(SECRET), 'HS256', { aud: 'herald' }));
    await verifier.verify(await sign(secretKey(SECRET), 'HS256', { aud: ['billing', 'herald-staging'] }));
    await refuse(verifier, await sign(secretKey(SECRET), 'HS256', { aud: 'billing' }), {
      code: 'token-audience-invalid',
      detail: /audience "billing"; this hub expects the audience one of "herald", "herald-staging"/,
    });
    await refuse(verifier, await sign(secretKey(SECRET), 'HS256'), {
      code: 'token-audience-invalid',
      detail: /no "aud" claim.*"herald"/,
    });
  });

  test('issuer: accepted when it matches, refused otherwise', async () => {
    const verifier = createJwtVerifier({ secrets: [SECRET], issuer: 'https://auth.example' });
    await verifier.verify(await sign(secretKey(SECRET), 'HS256', { iss: 'https://auth.example' }));
    await refuse(verifier, await sign(secretKey(SECRET), 'HS256', { iss: 'https://evil.example' }), {
      code: 'token-issuer-invalid',
      detail:
        /issued by "https:\/\/evil.example"; this hub accepts tokens issued by "https:\/\/auth.example"/,
    });
    await refuse(verifier, await sign(secretKey(SECRET), 'HS256'), {
      code: 'token-issuer-invalid',
      detail: /no "iss" claim/,
    });
  });
});

describe('unusable options throw synchronously', () => {
  test('each with a message that says what to fix, and no key material', () => {
    const { publicKey: smallRsa } = generateKeyPairSync('rsa', { modulusLength: 1024 });
    const { publicKey: ed448 } = generateKeyPairSync('ed448');
    const privatePem = generateKeyPairSync('ec', { namedCurve: 'P-256' })
      .privateKey.export({ format: 'pem', type: 'pkcs8' })
      .toString();
    const badBody = rsa.pem.replace(/\n[A-Za-z0-9+/]{20}/, '\n!!!!');
    const cases: [Parameters<typeof createJwtVerifier>[0], RegExp][] = [
      [{}, /at least one key/],
      [{ secrets: [] }, /at least one key/],
      [{ secrets: [SECRET, ''] }, /secrets\[1\] is empty/],
      [{ secrets: ['   '] }, /secrets\[0\] is empty/],
      [{ publicKeys: ['hello'] }, /publicKeys\[0\] is not PEM/],
      [{ publicKeys: [badBody] }, /publicKeys\[0\] does not parse/],
      [{ publicKeys: [privatePem] }, /publicKeys\[0\] is a private key/],
      [{ publicKeys: [smallRsa.export({ format: 'pem', type: 'spki' }).toString()] }, /1024-bit RSA key/],
      [{ publicKeys: [ed448.export({ format: 'pem', type: 'spki' }).toString()] }, /ed448 key/],
      [{ jwksUrl: 'not a url' }, /jwksUrl is not a valid URL/],
      [{ jwksUrl: 'ftp://example.com/jwks' }, /http\(s\)/],
      [
        { secrets: [SECRET], algorithms: ['RS256'] },
        /algorithms lists RS256, but none of the configured keys/,
      ],
      [{ secrets: [SECRET], algorithms: ['none'] }, /must not include "none"/],
      [{ secrets: [SECRET], algorithms: ['HS1'] }, /"HS1" is not supported/],
      [{ secrets: [SECRET], algorithms: [] }, /at least one/],
      [{ secrets: [SECRET], clockToleranceSec: -1 }, /clockToleranceSec/],
      [{ secrets: [SECRET], audience: [] }, /audience/],
    ];
    for (const [options, message] of cases) {
      assert.throws(
        () => createJwtVerifier(options),
        (error: unknown) => {
          assert.ok(error instanceof Error);
          assert.match(error.message, message);
          for (const secret of [...forbidden, privatePem, badBody]) {
            for (const line of secret.split('\n')) {
              if (line.length >= 24 && !line.startsWith('-----')) assert.ok(!error.message.includes(line));
            }
          }
          return true;
        },
      );
    }
  });
});

/** A real JWKS server on 127.0.0.1 that counts the requests it serves. */
interface JwksServer {
  readonly url: string;
  readonly requests: number;
  keys: JWK[];
  status: number;
  close(): Promise<void>;
}

async function jwksServer(keys: JWK[]): Promise<JwksServer> {
  const state = { requests: 0, keys, status: 200 };
  const server: Server = createServer((_request, response) => {
    state.requests++;
    response.writeHead(state.status, { 'content-type': 'application/json' });
    response.end(JSON.stringify(state.status === 200 ? { keys: state.keys } : { error: 'oops' }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/.well-known/jwks.json`,
    get requests() {
      return state.requests;
    },
    get keys() {
      return state.keys;
    },
    set keys(value) {
      state.keys = value;
    },
    get status() {
      return state.status;
    },
    set status(value) {
      state.status = value;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

describe('JWKS', () => {
  let jwkRsa: JWK;
  let jwkEc: JWK;
  let jwkOther: JWK;
  const servers: JwksServer[] = [];
  const serve = async (keys: JWK[]) => {
    const server = await jwksServer(keys);
    servers.push(server);
    return server;
  };

  before(async () => {
    jwkRsa = { ...(await exportJWK(rsa.publicKey)), kid: 'rsa-1', alg: 'RS256', use: 'sig' };
    jwkEc = { ...(await exportJWK(ec.publicKey)), kid: 'ec-1' };
    jwkOther = { ...(await exportJWK(otherRsa.publicKey)), kid: 'rsa-2', alg: 'RS256' };
  });
  after(async () => {
    await Promise.all(servers.map((server) => server.close()));
  });

  test('keys are cached: a second verification does not refetch', async () => {
    const server = await serve([jwkRsa, jwkEc]);
    const verifier = createJwtVerifier({ jwksUrl: server.url });
    const exp = now() + 60;
    const verified = await verifier.verify(await sign(rsa.privateKey, 'RS256', { exp }, { kid: 'rsa-1' }));
    assert.equal(verified.expiresAt, exp * 1000);
    await verifier.verify(await sign(ec.privateKey, 'ES256', {}, { kid: 'ec-1' }));
    await verifier.verify(await sign(rsa.privateKey, 'RS256', {}, { kid: 'rsa-1' }));
    assert.equal(server.requests, 1);
  });

  test('concurrent first verifications share one fetch', async () => {
    const server = await serve([jwkRsa]);
    const verifier = createJwtVerifier({ jwksUrl: server.url });
    const token = await sign(rsa.privateKey, 'RS256', {}, { kid: 'rsa-1' });
    await Promise.all([verifier.verify(token), verifier.verify(token), verifier.verify(token)]);
    assert.equal(server.requests, 1);
  });

  test('a token without kid is tried against the JWKS keys of its algorithm', async () => {
    const server = await serve([jwkOther, jwkRsa]);
    const verifier = createJwtVerifier({ jwksUrl: server.url });
    await verifier.verify(await sign(rsa.privateKey, 'RS256'));
    assert.equal(server.requests, 1);
  });

  test('a known kid with a bad signature: token-signature-invalid, no refetch', async () => {
    const server = await serve([jwkRsa]);
    const verifier = createJwtVerifier({ jwksUrl: server.url, jwksCooldownMs: 0 });
    await refuse(verifier, await sign(otherRsa.privateKey, 'RS256', {}, { kid: 'rsa-1' }), {
      code: 'token-signature-invalid',
    });
    assert.equal(server.requests, 1);
  });

  test('an unknown kid triggers one refetch, then token-kid-unknown', async () => {
    const server = await serve([jwkRsa]);
    const verifier = createJwtVerifier({ jwksUrl: server.url, jwksCooldownMs: 0 });
    await verifier.verify(await sign(rsa.privateKey, 'RS256', {}, { kid: 'rsa-1' }));
    assert.equal(server.requests, 1);
    await refuse(verifier, await sign(otherRsa.privateKey, 'RS256', {}, { kid: 'abc' }), {
      code: 'token-kid-unknown',
      detail: /^no key with kid "abc" in the JWKS$/,
    });
    assert.equal(server.requests, 2);
  });

  test('a second unknown kid within the cooldown does not refetch (rate limit) and is refused', async () => {
    const cooldown = 300;
    const server = await serve([jwkRsa]);
    const verifier = createJwtVerifier({ jwksUrl: server.url, jwksCooldownMs: cooldown });
    await verifier.verify(await sign(rsa.privateKey, 'RS256', {}, { kid: 'rsa-1' }));
    // Right after the first fetch, an unknown kid is refused without asking the server again.
    await refuse(verifier, await sign(otherRsa.privateKey, 'RS256', {}, { kid: 'early' }), {
      code: 'token-kid-unknown',
    });
    assert.equal(server.requests, 1);
    await sleep(cooldown + 50);
    await refuse(verifier, await sign(otherRsa.privateKey, 'RS256', {}, { kid: 'first' }), {
      code: 'token-kid-unknown',
    });
    assert.equal(server.requests, 2);
    await refuse(verifier, await sign(otherRsa.privateKey, 'RS256', {}, { kid: 'second' }), {
      code: 'token-kid-unknown',
      detail: /"second"/,
    });
    assert.equal(server.requests, 2);
  });

  test('key rotation on the JWKS server is picked up after an unknown kid', async () => {
    const server = await serve([jwkRsa]);
    const verifier = createJwtVerifier({ jwksUrl: server.url, jwksCooldownMs: 0 });
    const oldToken = await sign(rsa.privateKey, 'RS256', {}, { kid: 'rsa-1' });
    await verifier.verify(oldToken);
    server.keys = [jwkOther];
    const newToken = await sign(otherRsa.privateKey, 'RS256', { n: 2 }, { kid: 'rsa-2' });
    assert.equal((await verifier.verify(newToken)).claims.n, 2);
    assert.equal(server.requests, 2);
    // The retired key is gone from the cache too.
    await refuse(verifier, oldToken, { code: 'token-kid-unknown', detail: /"rsa-1"/ });
    assert.equal(server.requests, 3);
  });

  test('a secret and a JWKS coexist: HS tokens never touch the JWKS', async () => {
    const server = await serve([jwkRsa]);
    const verifier = createJwtVerifier({ secrets: [SECRET], jwksUrl: server.url });
    await verifier.verify(await sign(secretKey(SECRET), 'HS256', {}, { kid: 'whatever' }));
    assert.equal(server.requests, 0);
    await verifier.verify(await sign(rsa.privateKey, 'RS256', {}, { kid: 'rsa-1' }));
    assert.equal(server.requests, 1);
  });

  test('a PEM key and a JWKS coexist: a PEM-signed token is accepted without a fetch', async () => {
    const server = await serve([jwkRsa]);
    const verifier = createJwtVerifier({ publicKeys: [ec.pem], jwksUrl: server.url });
    await verifier.verify(await sign(ec.privateKey, 'ES256', {}, { kid: 'pem' }));
    assert.equal(server.requests, 0);
    await verifier.verify(await sign(rsa.privateKey, 'RS256', {}, { kid: 'rsa-1' }));
    assert.equal(server.requests, 1);
  });

  test('the JWKS server down: 503 jwks-unavailable', async () => {
    const server = await jwksServer([jwkRsa]);
    const url = server.url;
    await server.close();
    const verifier = createJwtVerifier({ jwksUrl: url });
    const error = await refuse(verifier, await sign(rsa.privateKey, 'RS256', {}, { kid: 'rsa-1' }), {
      status: 503,
      code: 'jwks-unavailable',
      detail: /try again later/,
    });
    assert.ok(!error.detail.includes(url));
  });

  test('the JWKS server answering 500: 503 jwks-unavailable, retried after the cooldown', async () => {
    const server = await serve([jwkRsa]);
    server.status = 500;
    const verifier = createJwtVerifier({ jwksUrl: server.url, jwksCooldownMs: 0 });
    const token = await sign(rsa.privateKey, 'RS256', {}, { kid: 'rsa-1' });
    await refuse(verifier, token, { status: 503, code: 'jwks-unavailable' });
    server.status = 200;
    await verifier.verify(token);
    assert.equal(server.requests, 2);
  });

  test('a down JWKS server is asked again only after the cooldown, failures included', async () => {
    const server = await serve([jwkRsa]);
    server.status = 500;
    const verifier = createJwtVerifier({ jwksUrl: server.url, jwksCooldownMs: 300 });
    const token = await sign(rsa.privateKey, 'RS256', {}, { kid: 'rsa-1' });
    const error = await refuse(verifier, token, { status: 503, code: 'jwks-unavailable' });
    assert.equal(error.headers['Retry-After'], '1');
    await refuse(verifier, token, { status: 503, code: 'jwks-unavailable' });
    assert.equal(server.requests, 1);
    server.status = 200;
    await sleep(350);
    await verifier.verify(token);
    assert.equal(server.requests, 2);
  });

  test('while the JWKS server is down, the keys fetched before keep verifying', async () => {
    const server = await serve([jwkRsa]);
    const verifier = createJwtVerifier({ jwksUrl: server.url, jwksCooldownMs: 300 });
    const known = await sign(rsa.privateKey, 'RS256', {}, { kid: 'rsa-1' });
    await verifier.verify(known);
    server.status = 500;
    await sleep(350);
    // A kid the keys fetched before lack cannot be looked up: the server's fault, not the token's.
    const rotated = await sign(otherRsa.privateKey, 'RS256', {}, { kid: 'rsa-2' });
    await refuse(verifier, rotated, { status: 503, code: 'jwks-unavailable' });
    assert.equal(server.requests, 2);
    await verifier.verify(known);
    await refuse(verifier, rotated, { code: 'token-kid-unknown' });
    assert.equal(server.requests, 2);
    server.status = 200;
    server.keys = [jwkRsa, jwkOther];
    await sleep(350);
    await verifier.verify(rotated);
    assert.equal(server.requests, 3);
  });

  test('a JWKS key that cannot verify the algorithm: token-signature-invalid, naming its kid', async () => {
    // jose signs nothing with RSA under 2048 bits: signed by hand.
    const small = generateKeyPairSync('rsa', { modulusLength: 1024 });
    const input = `${b64({ alg: 'RS256', kid: 'small' })}.${b64({ sub: 'x' })}`;
    const signed = `${input}.${createSign('RSA-SHA256').update(input).sign(small.privateKey, 'base64url')}`;
    const server = await serve([{ ...(await exportJWK(small.publicKey)), kid: 'small' }, jwkEc]);
    const verifier = createJwtVerifier({ jwksUrl: server.url });
    await refuse(verifier, signed, {
      code: 'token-signature-invalid',
      detail: /^the JWKS key with kid "small" cannot verify RS256 signatures$/,
    });
    await refuse(verifier, await sign(rsa.privateKey, 'PS256', {}, { kid: 'ec-1' }), {
      code: 'token-signature-invalid',
      detail: /^the JWKS key with kid "ec-1" cannot verify PS256 signatures$/,
    });
  });
});

// A self-signed EC P-256 certificate (valid until 2126) and its private key, made with openssl.
const CERTIFICATE = `-----BEGIN CERTIFICATE-----
MIIBkjCCATegAwIBAgIUFVtyRaCndTh/Zs7Uc3hmVROCwqkwCgYIKoZIzj0EAwIw
HTEbMBkGA1UEAwwSaGVyYWxkLXRlc3QtaXNzdWVyMCAXDTI2MTEyMzIwNDI1OFoY
DzIxMjYxMDMwMjA0MjU4WjAdMRswGQYDVQQDDBJoZXJhbGQtdGVzdC1pc3N1ZXIw
WTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAAR3PhFbmsUGPI4hMeHeXC8sqMa5fi/q
xisAS1P4hzOVjv6V/fpatS2JbEfcYEVMZ4CAf1/qezwiL0UsIIYzCIg2o1MwUTAd
BgNVHQ4EFgQUMOtAZuUSjuLhzcGpw465nPURx6MwHwYDVR0jBBgwFoAUMOtAZuUS
juLhzcGpw465nPURx6MwDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNJADBG
AiEA8mSaZe9sQ0P4nCyA3rAXgFw9GiKl+wbvVh1cUdnzrxACIQDOJk4t6Xim/6Q1
9Z2w5yjpPG7SzvctoX9QxU5bkRBPJg==
-----END CERTIFICATE-----
`;
const CERTIFICATE_PRIVATE_KEY = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgMKdQWRiF+A5kAtui
dWDSmQYGKdN/ydToKvEb3Q5XGqGhRANCAAR3PhFbmsUGPI4hMeHeXC8sqMa5fi/q
xisAS1P4hzOVjv6V/fpatS2JbEfcYEVMZ4CAf1/qezwiL0UsIIYzCIg2
-----END PRIVATE KEY-----
`;
forbidden.push(CERTIFICATE, CERTIFICATE_PRIVATE_KEY);

describe('what a key may be used for (issue 12: each key verifies only its role)', () => {
  const PUBLISHER = 'the-publishers-own-key-which-is-long-enough';
  const SUBSCRIBER = 'the-subscribers-own-key-which-is-long-enough';
  const roles = () =>
    createJwtVerifier([
      { secrets: [PUBLISHER], uses: ['publish'], name: "Mercure's publisher key" },
      { secrets: [SUBSCRIBER], uses: ['subscribe'], name: "Mercure's subscriber key" },
    ]);

  test("a verified token says which key's uses it has; the hub's own keys have every use", async () => {
    const verifier = roles();
    const published = await verifier.verify(await sign(secretKey(PUBLISHER), 'HS256'));
    assert.deepEqual([...published.uses], ['publish']);
    assert.equal(published.keyName, "Mercure's publisher key");
    assert.deepEqual(
      [...(await verifier.verify(await sign(secretKey(SUBSCRIBER), 'HS256'))).uses],
      ['subscribe'],
    );
    const own = await createJwtVerifier({ secrets: [SECRET] }).verify(await sign(secretKey(SECRET), 'HS256'));
    assert.deepEqual([...own.uses].sort(), ['admin', 'publish', 'subscribe']);
  });

  test('one secret configured for two roles gives its tokens both, and no more', async () => {
    const verifier = createJwtVerifier([
      { secrets: [PUBLISHER], uses: ['publish'] },
      { secrets: [PUBLISHER], uses: ['subscribe'] },
    ]);
    const verified = await verifier.verify(await sign(secretKey(PUBLISHER), 'HS256'));
    assert.deepEqual([...verified.uses].sort(), ['publish', 'subscribe']);
  });

  test('when no key set verifies, the refusal is the most telling one', async () => {
    const verifier = roles();
    // Signed with the subscriber key but expired: "expired", not "the signature does not verify".
    const expired = await sign(secretKey(SUBSCRIBER), 'HS256', { exp: now() - 3600 });
    await refuse(verifier, expired, { code: 'token-expired' });
    await refuse(verifier, await sign(secretKey(OTHER_SECRET), 'HS256'), { code: 'token-signature-invalid' });
    await refuse(verifier, await sign(rsa.privateKey, 'RS256'), {
      code: 'token-alg-not-allowed',
      detail: /signed with RS256; this hub accepts HS256, HS384, HS512$/,
    });
    const unsigned = `${b64({ alg: 'none' })}.${b64({ sub: 'x' })}.`;
    await refuse(verifier, unsigned, { code: 'token-alg-none' });
  });

  test('an unknown use is refused at start', () => {
    assert.throws(
      () => createJwtVerifier({ secrets: [SECRET], uses: ['everything' as 'admin'] }),
      /uses must list some of subscribe, publish, admin/,
    );
  });
});

describe('HMAC secrets shorter than 32 bytes (RFC 7518 §3.2)', () => {
  test('are refused at start, with the length and a way to make a good one, unless a test says otherwise', async () => {
    for (const [secret, bytes] of [
      ['x', '1 byte'],
      ['0123456789abcdef0123456789abcde', '31 bytes'],
    ] as const) {
      assert.throws(
        () => createJwtVerifier({ secrets: [SECRET, secret] }),
        new RegExp(`secrets\\[1\\] is ${bytes} long; an HMAC secret must be at least 32 bytes.*openssl rand`),
      );
    }
    createJwtVerifier({ secrets: ['0123456789abcdef0123456789abcdef'] });
    // Bytes, not characters: 30 characters, 34 bytes.
    createJwtVerifier({ secrets: ['ünïcödé-counts-bytes-not-chars'] });
    const verifier = createJwtVerifier({ secrets: ['short'], testOnlyAllowWeakSecrets: true });
    await verifier.verify(await sign(secretKey('short'), 'HS256'));
  });
});
