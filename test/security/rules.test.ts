import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { sleep, startHub, type TestHub } from '../helpers/server.ts';
import { bearer, SECRET, token } from '../helpers/tokens.ts';

const APP = 'https://app.example';

describe('rules of a hub with JWT auth', () => {
  let hub: TestHub;
  let publisher: Record<string, string>;
  before(async () => {
    hub = await startHub({
      auth: { jwt: { secrets: [SECRET] } },
      corsOrigins: [APP],
      limits: { streamsPerSubject: 2, publishesPerSecondPerSubject: 10, publishBurstPerSubject: 20 },
    });
    publisher = bearer(await token({ tenant: 'shop', publish: ['orders/{id}'], sub: 'checkout' }));
  });
  after(() => hub.close());

  test('a redacted field never appears in the bytes sent to a subscriber without the permission', async () => {
    const clerk = await hub.subscribe('topic=orders/9', {
      headers: bearer(await token({ tenant: 'shop', sub: 'clerk' })),
    });
    const accountant = await hub.subscribe('topic=orders/9', {
      headers: bearer(await token({ tenant: 'shop', sub: 'accountant', permissions: ['billing:read'] })),
    });
    await Promise.all([clerk, accountant].map((s) => s.until((x) => x.events.length >= 1)));
    const answer = await hub.publish(
      {
        topic: 'orders/9',
        data: {
          order: 9,
          total: 120,
          card: { last4: '4242', holder: 'Ada Lovelace' },
          email: 'ada@example.com',
        },
        redact: { '/card': 'billing:read', '/email': 'pii:read' },
      },
      publisher,
    );
    assert.equal(answer.status, 202);
    await Promise.all([clerk, accountant].map((s) => s.untilData(1)));
    assert.deepEqual(JSON.parse(clerk.data[0]?.data ?? ''), { order: 9, total: 120 });
    for (const secret of ['4242', 'Ada Lovelace', 'ada@example.com', 'card', 'email']) {
      assert.ok(!clerk.raw.includes(secret), `the clerk's bytes do not contain ${secret}`);
    }
    assert.deepEqual(JSON.parse(accountant.data[0]?.data ?? ''), {
      order: 9,
      total: 120,
      card: { last4: '4242', holder: 'Ada Lovelace' },
    });
    assert.ok(!accountant.raw.includes('ada@example.com'));
    assert.equal(clerk.data[0]?.id, accountant.data[0]?.id, 'the same event, in two visibilities');
    clerk.close();
    accountant.close();
  });

  test('an admin may watch every tenant; a tenant token sees only its own figures', async () => {
    const admin = await token({ admin: true, sub: 'ops' });
    const watcher = await hub.subscribe('topic=*&tenant=*', { headers: bearer(admin) });
    await watcher.until((s) => s.events.length >= 1);
    await hub.publish({ topic: 'orders/1', data: 'shop order' }, publisher);
    await hub.publish({ topic: 'x', data: 'other tenant', tenant: 'other' }, bearer(admin));
    await watcher.untilData(2);
    assert.deepEqual(
      watcher.data.map((e) => e.data),
      ['shop order', 'other tenant'],
    );

    const full = await (await fetch(`${hub.url}/v1/stats`, { headers: bearer(admin) })).json();
    assert.equal(full.broker, 'memory');
    assert.ok(full.connections.byTenant['*'] >= 1);
    const scoped = await (
      await fetch(`${hub.url}/v1/stats`, { headers: bearer(await token({ tenant: 'shop', sub: 'reader' })) })
    ).json();
    assert.deepEqual(Object.keys(scoped).sort(), ['connections', 'tenant']);
    assert.equal(scoped.tenant, 'shop');
    assert.equal((await fetch(`${hub.url}/v1/stats`)).status, 401);
    watcher.close();
  });

  test('CORS: an allowed origin gets its preflight and the headers on streams and errors; others do not', async () => {
    const preflight = await fetch(`${hub.url}/v1/publish`, {
      method: 'OPTIONS',
      headers: {
        origin: APP,
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'authorization',
      },
    });
    assert.equal(preflight.status, 204);
    assert.equal(preflight.headers.get('access-control-allow-origin'), APP);
    assert.equal(preflight.headers.get('access-control-allow-credentials'), 'true');
    assert.match(preflight.headers.get('access-control-allow-methods') ?? '', /POST/);
    assert.match(preflight.headers.get('access-control-allow-headers') ?? '', /authorization/i);

    const denied = await fetch(`${hub.url}/v1/publish`, {
      method: 'OPTIONS',
      headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' },
    });
    assert.equal(denied.status, 403);
    assert.equal(denied.headers.get('access-control-allow-origin'), null);

    const refused = await fetch(`${hub.url}/v1/events?topic=a`, { headers: { origin: APP } });
    assert.equal(refused.status, 401);
    assert.equal(
      refused.headers.get('access-control-allow-origin'),
      APP,
      'a page can read why it was refused',
    );

    const stream = await hub.subscribe('topic=a', {
      headers: { origin: APP, ...bearer(await token({ tenant: 'shop', sub: 'page' })) },
    });
    assert.equal(stream.headers['access-control-allow-origin'], APP);
    stream.close();
  });

  test('a cookie-authenticated publish needs an allowed Origin (CSRF); a bearer token does not', async () => {
    const cookie = `herald_token=${await token({ tenant: 'shop', publish: ['orders/{id}'], sub: 'browser' })}`;
    const withoutOrigin = await hub.publish({ topic: 'orders/5', data: 1 }, { cookie });
    assert.equal(withoutOrigin.status, 403);
    assert.equal(withoutOrigin.body.code, 'origin-not-allowed');
    const fromElsewhere = await hub.publish(
      { topic: 'orders/5', data: 1 },
      { cookie, origin: 'https://evil.example' },
    );
    assert.equal(fromElsewhere.status, 403);
    const fromApp = await hub.publish({ topic: 'orders/5', data: 1 }, { cookie, origin: APP });
    assert.equal(fromApp.status, 202);
    // The token in a cookie also opens streams (what a page with EventSource has).
    const stream = await hub.subscribe('topic=orders/5', { headers: { cookie } });
    assert.equal(stream.status, 200);
    stream.close();
  });

  test('the access_token query parameter opens a stream (native EventSource cannot set headers)', async () => {
    const jwt = await token({ tenant: 'shop', sub: 'native' });
    const stream = await hub.subscribe(`topic=orders/6&access_token=${jwt}`);
    assert.equal(stream.status, 200);
    stream.close();
  });

  test('only the credential that opened a stream may change its subscriptions, even with its secret', async () => {
    const owner = bearer(await token({ tenant: 'shop', sub: 'owner' }));
    const stream = await hub.subscribe('topic=a', { headers: owner });
    await stream.until((s) => s.events.length >= 1);
    const { connectionId, secret } = JSON.parse(stream.events[0]?.data ?? '{}');
    const change = (headers: Record<string, string>) =>
      fetch(`${hub.url}/v1/subscriptions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: JSON.stringify({ connectionId, secret, action: 'subscribe', topics: ['orders/{id}'] }),
      });
    // The secret leaked to another user of the tenant: the subject check still stops it.
    const intruder = await change(bearer(await token({ tenant: 'shop', sub: 'intruder' })));
    assert.equal(intruder.status, 403);
    assert.equal((await intruder.json()).code, 'not-your-stream');
    assert.equal((await change({})).status, 401);
    assert.equal((await change(owner)).status, 200);
    stream.close();
  });

  test('a poll sees redacted fields only with the permission, like a stream', async () => {
    const first = await hub.publish(
      { topic: 'orders/77', data: { id: 77, card: '4242' }, redact: { '/card': 'billing:read' } },
      publisher,
    );
    const poll = async (permissions: string[]) => {
      const headers = bearer(await token({ tenant: 'shop', sub: 'poller', permissions }));
      const after = `${String(first.body.id).split('-')[0]}-0`;
      const response = await fetch(`${hub.url}/v1/events/poll?topic=orders/77&after=${after}&wait=0`, {
        headers,
      });
      return (await response.json()).events.map((e: { data: string }) => JSON.parse(e.data));
    };
    assert.deepEqual(await poll([]), [{ id: 77 }]);
    assert.deepEqual(await poll(['billing:read']), [{ id: 77, card: '4242' }]);
  });

  test('open streams per subject are limited, and a slot frees when a stream closes', async () => {
    const headers = bearer(await token({ tenant: 'shop', sub: 'greedy' }));
    const first = await hub.subscribe('topic=a', { headers });
    const second = await hub.subscribe('topic=a', { headers });
    const third = await hub.subscribe('topic=a', { headers });
    assert.equal(third.status, 429);
    assert.match(third.raw, /this subject already has 2 open streams; the limit is 2/);
    assert.ok(Number(third.headers['retry-after']) >= 1);
    first.close();
    for (let i = 0; i < 50 && (await hub.herald.stats()).connections.total > 1; i++) await sleep(20);
    const again = await hub.subscribe('topic=a', { headers });
    assert.equal(again.status, 200);
    second.close();
    again.close();
  });

  test('publishes per subject are rate-limited by events, with Retry-After', async () => {
    const headers = bearer(await token({ tenant: 'shop', publish: ['*'], sub: 'bursty' }));
    const batch = Array.from({ length: 15 }, (_, i) => ({ topic: 'b', data: i }));
    assert.equal((await hub.publish(batch, headers)).status, 202);
    const limited = await hub.publish(batch, headers);
    assert.equal(limited.status, 429);
    assert.equal(limited.body.code, 'publish-rate-exceeded');
    assert.ok(Number(limited.headers.get('retry-after')) >= 1);
  });
});
