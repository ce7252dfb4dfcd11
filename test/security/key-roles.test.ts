import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { SignJWT } from 'jose';
import { createHerald } from '../../src/herald.ts';
import { type HubProcess, spawnHub } from '../helpers/nodes.ts';
import { openStream } from '../helpers/sse-client.ts';
import { bearer, mercurePublish, mercureStream } from '../mercure/mercure-client.ts';

/**
 * Each key verifies only its role (issue 12, item 3). A hub configured only with Mercure's
 * publisher and subscriber keys, attacked by whoever holds the subscriber key (it signs the
 * tokens of every browser, so it is the one most likely to leak) or a publisher's key: whatever
 * their tokens claim, the subscriber key never publishes nor administers, the publisher key never
 * administers, on the native API and on Mercure's.
 */

const PUBLISHER_KEY = 'the-publisher-key-of-this-test-hub-0123456789';
const SUBSCRIBER_KEY = 'the-subscriber-key-of-this-test-hub-0123456789';

/** Everything a token can claim: admin, every grant in both claims. */
const EVERYTHING = {
  herald: { admin: true, subscribe: ['*'], publish: ['*'] },
  mercure: { publish: ['*'], subscribe: ['*'] },
};

async function sign(claims: Record<string, unknown>, secret: string, sub = 'attacker'): Promise<string> {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(sub)
    .setExpirationTime('1h')
    .sign(new TextEncoder().encode(secret));
}

async function call(url: string, init: RequestInit = {}) {
  const response = await fetch(url, init);
  const text = await response.text();
  return { status: response.status, type: response.headers.get('content-type'), text };
}

const publishNative = (base: string, body: unknown, jwt: string) =>
  call(`${base}/v1/publish`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...bearer(jwt) },
    body: JSON.stringify(body),
  });

function assertProblem(
  answer: { status: number; type: string | null; text: string },
  status: number,
  detail: RegExp,
) {
  assert.equal(answer.status, status, answer.text);
  assert.equal(answer.type, 'application/problem+json; charset=utf-8');
  assert.match(JSON.parse(answer.text).detail, detail);
}

describe('with only Mercure keys, each key verifies only its role', () => {
  let hub: HubProcess;
  let fromSubscriberKey: string;
  let fromPublisherKey: string;
  before(async () => {
    hub = await spawnHub([
      '--mercure-publisher-jwt-key',
      PUBLISHER_KEY,
      '--mercure-subscriber-jwt-key',
      SUBSCRIBER_KEY,
    ]);
    fromSubscriberKey = await sign(EVERYTHING, SUBSCRIBER_KEY);
    fromPublisherKey = await sign(EVERYTHING, PUBLISHER_KEY);
  });
  after(() => hub?.stop());

  test('a token signed with the subscriber key publishes nowhere, and what it tried reaches no one', async () => {
    const watcher = await mercureStream(hub.url, ['*'], { headers: bearer(fromSubscriberKey) });
    const nativeWatcher = await openStream(`${hub.url}/v1/events?topic=*`, {
      headers: bearer(fromSubscriberKey),
    });
    try {
      assert.equal(watcher.status, 200);
      assert.equal(nativeWatcher.status, 200);
      assertProblem(
        await publishNative(hub.url, { topic: 'news', data: 'forged' }, fromSubscriberKey),
        403,
        /subscriber key.*publish/i,
      );
      const mercure = await mercurePublish(
        hub.url,
        { topic: 'news', data: 'forged' },
        bearer(fromSubscriberKey),
      );
      assert.equal(mercure.status, 401, mercure.body);
      // The publisher's own update comes after the forged ones: had they been accepted, they would be first.
      assert.equal(
        (await publishNative(hub.url, { topic: 'news', data: 'genuine' }, fromPublisherKey)).status,
        202,
      );
      await Promise.all([watcher.untilData(1), nativeWatcher.untilData(1)]);
      assert.deepEqual(
        watcher.data.map((event) => event.data),
        ['genuine'],
      );
      assert.deepEqual(
        nativeWatcher.data.map((event) => event.data),
        ['genuine'],
      );
    } finally {
      watcher.close();
      nativeWatcher.close();
    }
  });

  test('a token signed with the subscriber key is never admin: not in stats, metrics, other tenants, nor private updates', async () => {
    const stats = await call(`${hub.url}/v1/stats`, { headers: bearer(fromSubscriberKey) });
    assert.equal(stats.status, 200, stats.text);
    assert.deepEqual(
      Object.keys(JSON.parse(stats.text)).sort(),
      ['connections', 'tenant'],
      'the tenant view only',
    );
    assertProblem(await call(`${hub.url}/metrics`, { headers: bearer(fromSubscriberKey) }), 403, /admin/);
    for (const tenant of ['*', 'victim']) {
      const stream = await openStream(`${hub.url}/v1/events?topic=*&tenant=${encodeURIComponent(tenant)}`, {
        headers: bearer(fromSubscriberKey),
      });
      stream.close();
      assert.equal(stream.status, 403, `tenant ${tenant}`);
    }
    // `herald.admin` would grant every private topic: only the grants it lists count.
    const listener = await sign({ herald: { admin: true } }, SUBSCRIBER_KEY);
    const stream = await mercureStream(hub.url, ['*'], { headers: bearer(listener) });
    try {
      const publisher = bearer(fromPublisherKey);
      assert.equal(
        (await mercurePublish(hub.url, { topic: 'a', data: 'private', private: true }, publisher)).status,
        200,
      );
      assert.equal((await mercurePublish(hub.url, { topic: 'a', data: 'public' }, publisher)).status, 200);
      await stream.untilData(1);
      assert.deepEqual(
        stream.data.map((event) => event.data),
        ['public'],
      );
    } finally {
      stream.close();
    }
  });

  test('a token signed with the publisher key publishes, but is never admin', async () => {
    assert.equal((await publishNative(hub.url, { topic: 'a', data: 1 }, fromPublisherKey)).status, 202);
    assert.equal(
      (await mercurePublish(hub.url, { topic: 'a', data: 'x' }, bearer(fromPublisherKey))).status,
      200,
    );
    assertProblem(
      await publishNative(hub.url, { topic: 'a', data: 1, tenant: 'victim' }, fromPublisherKey),
      403,
      /admin/,
    );
    const stats = await call(`${hub.url}/v1/stats`, { headers: bearer(fromPublisherKey) });
    assert.equal(stats.status, 200, stats.text);
    assert.deepEqual(
      Object.keys(JSON.parse(stats.text)).sort(),
      ['connections', 'tenant'],
      'the tenant view only',
    );
    assertProblem(await call(`${hub.url}/metrics`, { headers: bearer(fromPublisherKey) }), 403, /admin/);
    // It is a publisher's key: streams are the subscriber key's.
    const stream = await openStream(`${hub.url}/v1/events?topic=*&tenant=*`, {
      headers: bearer(fromPublisherKey),
    });
    stream.close();
    assert.equal(stream.status, 403);
  });
});

describe('one key for both Mercure roles (as jwt_key sets both on the reference hub)', () => {
  let hub: HubProcess;
  before(async () => {
    hub = await spawnHub([
      '--mercure-publisher-jwt-key',
      PUBLISHER_KEY,
      '--mercure-subscriber-jwt-key',
      PUBLISHER_KEY,
    ]);
  });
  after(() => hub?.stop());

  test('its tokens publish and subscribe everywhere, and are still not admin', async () => {
    const jwt = await sign(EVERYTHING, PUBLISHER_KEY);
    const stream = await openStream(`${hub.url}/v1/events?topic=a`, { headers: bearer(jwt) });
    try {
      assert.equal(stream.status, 200);
      assert.equal((await publishNative(hub.url, { topic: 'a', data: 1 }, jwt)).status, 202);
      await stream.untilData(1);
    } finally {
      stream.close();
    }
    const stats = await call(`${hub.url}/v1/stats`, { headers: bearer(jwt) });
    assert.deepEqual(Object.keys(JSON.parse(stats.text)).sort(), ['connections', 'tenant']);
    assertProblem(await call(`${hub.url}/metrics`, { headers: bearer(jwt) }), 403, /admin/);
  });
});

describe('HMAC secrets shorter than 32 bytes are refused at start', () => {
  const SHORT = 'x';
  const cases: [string, string[], Record<string, string>, RegExp][] = [
    ['--jwt-secret', ['--jwt-secret', SHORT], {}, /--jwt-secret.*1 byte.*32 bytes/s],
    [
      'HERALD_JWT_SECRET',
      [],
      { HERALD_JWT_SECRET: 'short-secret' },
      /HERALD_JWT_SECRET.*12 bytes.*32 bytes/s,
    ],
    [
      '--mercure-subscriber-jwt-key',
      ['--jwt-secret', PUBLISHER_KEY, '--mercure-subscriber-jwt-key', SHORT],
      {},
      /--mercure-subscriber-jwt-key.*1 byte.*32 bytes/s,
    ],
    [
      'MERCURE_PUBLISHER_JWT_KEY',
      [],
      { MERCURE_PUBLISHER_JWT_KEY: 'twenty-nine-bytes-of-secret!!', MERCURE_PUBLISHER_JWT_ALG: 'HS256' },
      /MERCURE_PUBLISHER_JWT_KEY.*29 bytes.*32 bytes/s,
    ],
  ];
  for (const [name, args, env, message] of cases) {
    test(`herald serve refuses a short ${name}, saying why`, async () => {
      let started: HubProcess | undefined;
      try {
        started = await spawnHub(args, env);
        assert.fail(`started with a short ${name}`);
      } catch (error) {
        assert.match((error as Error).message, /exited before listening/);
        assert.match((error as Error).message, message);
      } finally {
        await started?.stop();
      }
    });
  }

  test('HERALD_TEST_ONLY_ALLOW_WEAK_SECRETS=1 lets a test hub start with one, and only it does', async () => {
    const refused = await spawnHub(['--jwt-secret', SHORT], {
      HERALD_TEST_ONLY_ALLOW_WEAK_SECRETS: '0',
    }).then(
      async (wrongly) => {
        await wrongly.stop();
        return false;
      },
      (error: Error) => /exited before listening/.test(error.message),
    );
    assert.ok(refused, 'HERALD_TEST_ONLY_ALLOW_WEAK_SECRETS=0 does not allow it');
    const hub = await spawnHub(['--jwt-secret', SHORT], { HERALD_TEST_ONLY_ALLOW_WEAK_SECRETS: '1' });
    try {
      const jwt = await new SignJWT({ herald: { publish: ['*'] } })
        .setProtectedHeader({ alg: 'HS256' })
        .sign(new TextEncoder().encode(SHORT));
      assert.equal((await publishNative(hub.url, { topic: 'a', data: 1 }, jwt)).status, 202);
    } finally {
      await hub.stop();
    }
  });

  test('createHerald refuses a short auth.jwt secret unless told it is a test', async () => {
    let wrongly: { close(): Promise<void> } | undefined;
    try {
      assert.throws(() => {
        wrongly = createHerald({ auth: { jwt: { secrets: ['sixteen-bytes!!!'] } } });
      }, /secrets\[0\] is 16 bytes.*32 bytes.*testOnlyAllowWeakSecrets/s);
    } finally {
      await wrongly?.close();
    }
    const herald = createHerald({
      auth: { jwt: { secrets: ['sixteen-bytes!!!'], testOnlyAllowWeakSecrets: true } },
    });
    await herald.close();
  });
});
