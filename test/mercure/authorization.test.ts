import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { exportJWK, SignJWT } from 'jose';
import type { HeraldOptions } from '../../src/herald.ts';
import { startHub, type TestHub } from '../helpers/server.ts';
import { bearer, MERCURE_SECRET, mercurePublish, mercureStream, mercureToken } from './mercure-client.ts';

const BOOK = 'https://example.com/books/1';
const OWNER = 'https://example.com/users/alice/?topic=https%3A%2F%2Fexample.com%2Fbooks%2F1';

async function hubWith(options: HeraldOptions): Promise<TestHub> {
  const hub = await startHub(options);
  await hub.herald.hub.whenReady();
  return hub;
}

describe('Mercure authorization', () => {
  let hub: TestHub;
  let publisher: Record<string, string>;
  before(async () => {
    hub = await hubWith({
      auth: { jwt: { secrets: [MERCURE_SECRET] }, anonymous: true },
      corsOrigins: ['https://app.example'],
    });
    publisher = bearer(await mercureToken({ publish: ['*'] }));
  });
  after(() => hub.close());

  test('a private update reaches only subscribers whose mercure.subscribe matches one of its topics, canonical or alternate', async () => {
    const byCanonical = await mercureStream(hub.url, ['https://example.com/books/{id}'], {
      headers: bearer(await mercureToken({ subscribe: [BOOK] })),
    });
    const byAlternate = await mercureStream(hub.url, ['https://example.com/books/{id}'], {
      headers: bearer(await mercureToken({ subscribe: ['https://example.com/users/alice/{?topic}'] })),
    });
    const otherUser = await mercureStream(hub.url, ['https://example.com/books/{id}'], {
      headers: bearer(await mercureToken({ subscribe: ['https://example.com/users/bob/{?topic}'] })),
    });
    const anonymous = await mercureStream(hub.url, ['https://example.com/books/{id}']);
    await mercurePublish(hub.url, { topic: [BOOK, OWNER], data: 'secret', private: true }, publisher);
    await mercurePublish(hub.url, { topic: BOOK, data: 'public' }, publisher);
    await Promise.all([byCanonical.untilData(2), byAlternate.untilData(2)]);
    await Promise.all([otherUser.untilData(1), anonymous.untilData(1)]);
    assert.deepEqual(
      byCanonical.events.map((e) => e.data),
      ['secret', 'public'],
    );
    assert.deepEqual(
      byAlternate.events.map((e) => e.data),
      ['secret', 'public'],
    );
    assert.deepEqual(
      otherUser.events.map((e) => e.data),
      ['public'],
    );
    assert.deepEqual(
      anonymous.events.map((e) => e.data),
      ['public'],
    );
    for (const stream of [byCanonical, byAlternate, otherUser, anonymous]) stream.close();
  });

  test('the token is read from the Authorization header, the authorization query parameter, or the mercureAuthorization cookie', async () => {
    const jwt = await mercureToken({ subscribe: ['*'] });
    const topic = `https://example.com/private/${globalThis.crypto.randomUUID()}`;
    const viaHeader = await mercureStream(hub.url, [topic], { headers: bearer(jwt) });
    const viaQuery = await mercureStream(hub.url, [topic], { query: { authorization: jwt } });
    const viaCookie = await mercureStream(hub.url, [topic], {
      headers: { cookie: `theme=dark; mercureAuthorization=${jwt}` },
    });
    await mercurePublish(hub.url, { topic, data: 'private', private: true }, publisher);
    await Promise.all([viaHeader, viaQuery, viaCookie].map((s) => s.untilData(1)));
    for (const stream of [viaHeader, viaQuery, viaCookie]) stream.close();
  });

  test('an invalid or expired token is 401 even though anonymous subscribers are allowed, wherever it is sent', async () => {
    const forged = await mercureToken({ subscribe: ['*'] }, { secret: 'not-the-hub-secret-at-all-but-long' });
    const expired = await mercureToken({ subscribe: ['*'] }, { expiresIn: -60 });
    for (const jwt of [forged, expired]) {
      for (const options of [
        { headers: bearer(jwt) },
        { query: { authorization: jwt } },
        { headers: { cookie: `mercureAuthorization=${jwt}` } },
      ]) {
        const stream = await mercureStream(hub.url, ['*'], options);
        assert.equal(stream.status, 401, JSON.stringify(options));
        assert.match(String(stream.headers['www-authenticate']), /invalid_token/);
        stream.close();
      }
    }
  });

  test('the stream ends when the token expires, without herald.reauth', async () => {
    const stream = await mercureStream(hub.url, ['*'], {
      headers: bearer(await mercureToken({ subscribe: ['*'] }, { expiresIn: 2 })),
    });
    assert.equal(stream.status, 200);
    const opened = Date.now();
    await stream.untilEnded(6000);
    assert.ok(Date.now() - opened >= 900, 'it ended at expiry, not at once');
    assert.equal(stream.events.length, 0);
  });

  test('a publisher needs a mercure.publish selector matching every topic of the update', async () => {
    const narrow = bearer(await mercureToken({ publish: ['https://example.com/books/{id}'] }));
    const ok = await mercurePublish(hub.url, { topic: BOOK, data: 'x' }, narrow);
    assert.equal(ok.status, 200);
    const partly = await mercurePublish(hub.url, { topic: [BOOK, 'https://example.com/authors/1'] }, narrow);
    assert.equal(partly.status, 403);
    assert.match(partly.body, /authors\/1/);
    const subscriberOnly = bearer(await mercureToken({ subscribe: ['*'] }));
    assert.equal((await mercurePublish(hub.url, { topic: BOOK }, subscriberOnly)).status, 403);
    assert.equal((await mercurePublish(hub.url, { topic: BOOK })).status, 401, 'no token');
  });

  test('the namespaced https://mercure.rocks/ claim is read like the mercure claim', async () => {
    const jwt = await new SignJWT({ 'https://mercure.rocks/': { publish: ['*'] } })
      .setProtectedHeader({ alg: 'HS256' })
      .sign(new TextEncoder().encode(MERCURE_SECRET));
    assert.equal((await mercurePublish(hub.url, { topic: BOOK }, bearer(jwt))).status, 200);
  });

  test('a cookie-authenticated publish must come from an allowed origin (Origin, else Referer)', async () => {
    const cookie = { cookie: `mercureAuthorization=${await mercureToken({ publish: ['*'] })}` };
    const none = await mercurePublish(hub.url, { topic: BOOK }, cookie);
    assert.equal(none.status, 403);
    assert.match(none.body, /Origin/);
    const evil = await mercurePublish(
      hub.url,
      { topic: BOOK },
      { ...cookie, origin: 'https://evil.example' },
    );
    assert.equal(evil.status, 403);
    const allowed = await mercurePublish(
      hub.url,
      { topic: BOOK },
      { ...cookie, origin: 'https://app.example' },
    );
    assert.equal(allowed.status, 200);
    const referred = await mercurePublish(
      hub.url,
      { topic: BOOK },
      { ...cookie, referer: 'https://app.example/books/1?edit' },
    );
    assert.equal(referred.status, 200);
  });

  test('CORS: an allowed page may subscribe with credentials and publish after a preflight', async () => {
    const stream = await mercureStream(hub.url, ['*'], { headers: { origin: 'https://app.example' } });
    assert.equal(stream.headers['access-control-allow-origin'], 'https://app.example');
    assert.equal(stream.headers['access-control-allow-credentials'], 'true');
    stream.close();
    const preflight = await fetch(`${hub.url}/.well-known/mercure`, {
      method: 'OPTIONS',
      headers: {
        origin: 'https://app.example',
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'authorization, content-type',
      },
    });
    assert.equal(preflight.status, 204);
    assert.match(preflight.headers.get('access-control-allow-methods') ?? '', /POST/);
    const refused = await fetch(`${hub.url}/.well-known/mercure`, {
      method: 'OPTIONS',
      headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' },
    });
    assert.equal(refused.headers.get('access-control-allow-origin'), null);
  });
});

describe('Mercure with its own settings', () => {
  test('without anonymous access a subscriber needs a token (401)', async () => {
    const hub = await hubWith({ auth: { jwt: { secrets: [MERCURE_SECRET] } } });
    try {
      const stream = await mercureStream(hub.url, ['*']);
      assert.equal(stream.status, 401);
      stream.close();
    } finally {
      await hub.close();
    }
  });

  test('publisher and subscriber keys are separate: RS256 for publishers, a secret for subscribers', async () => {
    const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const subscriberSecret = 'the-subscribers-own-secret-of-32-bytes!';
    const hub = await hubWith({
      mercure: {
        publisherJwt: { publicKeys: [publicKey.export({ type: 'spki', format: 'pem' }) as string] },
        subscriberJwt: { secrets: [subscriberSecret] },
        anonymous: false,
      },
    });
    try {
      const rsPublisher = bearer(await mercureToken({ publish: ['*'] }, { key: privateKey, alg: 'RS256' }));
      const hsPublisher = bearer(await mercureToken({ publish: ['*'] }, { secret: subscriberSecret }));
      const subscriber = bearer(await mercureToken({ subscribe: ['*'] }, { secret: subscriberSecret }));
      const rsSubscriber = bearer(
        await mercureToken({ subscribe: ['*'] }, { key: privateKey, alg: 'RS256' }),
      );
      const stream = await mercureStream(hub.url, ['*'], { headers: subscriber });
      assert.equal(stream.status, 200);
      assert.equal((await mercurePublish(hub.url, { topic: BOOK, data: 'rs' }, rsPublisher)).status, 200);
      assert.equal((await mercurePublish(hub.url, { topic: BOOK, data: 'hs' }, hsPublisher)).status, 401);
      const wrongKey = await mercureStream(hub.url, ['*'], { headers: rsSubscriber });
      assert.equal(wrongKey.status, 401);
      await stream.untilData(1);
      assert.deepEqual(
        stream.events.map((e) => e.data),
        ['rs'],
      );
      stream.close();
      wrongKey.close();
    } finally {
      await hub.close();
    }
  });

  test("subscriber keys may come from a JWKS URL, as the reference hub's subscriber_jwks_url", async () => {
    const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
    const jwks = createServer((_, response) => {
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end(JSON.stringify({ keys: [jwk] }));
    });
    await new Promise<void>((resolve) => jwks.listen(0, '127.0.0.1', resolve));
    const jwksUrl = `http://127.0.0.1:${(jwks.address() as AddressInfo).port}/jwks.json`;
    const hub = await hubWith({
      auth: { jwt: { secrets: [MERCURE_SECRET] } },
      mercure: { subscriberJwt: { jwksUrl } },
    });
    try {
      const signed = await new SignJWT({ mercure: { subscribe: ['*'] } })
        .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
        .sign(privateKey);
      const stream = await mercureStream(hub.url, ['*'], { headers: bearer(signed) });
      assert.equal(stream.status, 200);
      const hs = await mercureStream(hub.url, ['*'], {
        headers: bearer(await mercureToken({ subscribe: ['*'] })),
      });
      assert.equal(hs.status, 401, 'the hub secret is not a subscriber key once subscribers have their own');
      await mercurePublish(
        hub.url,
        { topic: 'a', data: 'x', private: true },
        bearer(await mercureToken({ publish: ['*'] })),
      );
      await stream.untilData(1);
      stream.close();
      hs.close();
    } finally {
      await hub.close();
      jwks.close();
    }
  });

  test('the cookie name is configurable', async () => {
    const hub = await hubWith({
      auth: { jwt: { secrets: [MERCURE_SECRET] } },
      mercure: { cookieName: 'hubToken' },
    });
    try {
      const jwt = await mercureToken({ subscribe: ['*'] });
      const named = await mercureStream(hub.url, ['*'], { headers: { cookie: `hubToken=${jwt}` } });
      const defaultName = await mercureStream(hub.url, ['*'], {
        headers: { cookie: `mercureAuthorization=${jwt}` },
      });
      assert.equal(named.status, 200);
      assert.equal(defaultName.status, 401);
      named.close();
      defaultName.close();
    } finally {
      await hub.close();
    }
  });

  test('publish origins "*" let a cookie publish from any page', async () => {
    const hub = await hubWith({
      auth: { jwt: { secrets: [MERCURE_SECRET] } },
      mercure: { publishOrigins: ['*'] },
    });
    try {
      const cookie = `mercureAuthorization=${await mercureToken({ publish: ['*'] })}`;
      const response = await mercurePublish(
        hub.url,
        { topic: BOOK },
        { cookie, origin: 'https://any.example' },
      );
      assert.equal(response.status, 200);
    } finally {
      await hub.close();
    }
  });

  test('with mercure: false the endpoint is not there', async () => {
    const hub = await hubWith({ mercure: false });
    try {
      const response = await fetch(`${hub.url}/.well-known/mercure?topic=a`);
      assert.equal(response.status, 404);
    } finally {
      await hub.close();
    }
  });
});
