import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { EventSource } from 'eventsource';
import { createClient } from '../../src/client/index.ts';
import { sleep, startHub } from '../helpers/server.ts';
import { bearer, SECRET, token } from '../helpers/tokens.ts';
import { problem, record, recordingFetch, until, untilStatus } from './helpers.ts';

describe('herald/client credentials and refusals', () => {
  const cleanups: (() => unknown)[] = [];
  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });
  const jwtHub = (options = {}) =>
    startHub({ auth: { jwt: { secrets: [SECRET], clockToleranceSec: 0 } }, retryMs: 50, ...options });

  test('the token goes in the Authorization header, never in the URL', async () => {
    const hub = await jwtHub();
    cleanups.push(() => hub.close());
    const jwt = await token({ sub: 'alice' });
    const fetcher = recordingFetch();
    const client = createClient({
      url: hub.url,
      topics: ['t'],
      token: jwt,
      store: null,
      fetch: fetcher.fetch,
    });
    cleanups.push(() => client.close());
    await untilStatus(client, 'open');
    const [call] = fetcher.streams();
    assert.equal(call?.headers.get('authorization'), `Bearer ${jwt}`);
    assert.doesNotMatch(call?.url ?? '', /access_token|eyJ/);
  });

  test('herald.reauth: a fresh token and a seamless new stream; nothing missed, nothing twice, never "reconnecting"', async () => {
    const hub = await jwtHub({ reauthLeadMs: 1000 });
    cleanups.push(() => hub.close());
    let tokens = 0;
    const client = createClient({
      url: hub.url,
      topics: ['progress'],
      store: null,
      token: async () => {
        tokens++;
        return token({ sub: 'user', expiresIn: 2 });
      },
    });
    cleanups.push(() => client.close());
    const seen = record(client);
    await untilStatus(client, 'open');
    const publisher = bearer(await token({ sub: 'worker', publish: ['progress'] }));
    const published: string[] = [];
    const started = Date.now();
    for (let i = 0; Date.now() - started < 3500; i++) {
      assert.equal((await hub.publish({ topic: 'progress', data: `step ${i}` }, publisher)).status, 202);
      published.push(`step ${i}`);
      await sleep(10);
    }
    await until(() => seen.messages.length >= published.length, 5000, 'every step');
    await sleep(100);
    assert.deepEqual(seen.data(), published);
    assert.ok(tokens >= 3, `${tokens} tokens: refreshed at least twice`);
    assert.deepEqual(
      seen.statuses.map((s) => s.status),
      ['open'],
    );
    const stats = await hub.herald.stats();
    assert.equal(stats.connections.total, 1, 'the old streams were dropped');
  });

  test('a token that cannot be renewed: no reconnection storm on herald.reauth, then fatal at expiry', async () => {
    const hub = await jwtHub({ reauthLeadMs: 1000 });
    cleanups.push(() => hub.close());
    const fetcher = recordingFetch();
    const jwt = await token({ sub: 'static', expiresIn: 2 });
    const client = createClient({
      url: hub.url,
      topics: ['t'],
      token: jwt,
      store: null,
      fetch: fetcher.fetch,
    });
    cleanups.push(() => client.close());
    const seen = record(client);
    await untilStatus(client, 'closed', 5000);
    // The stream, then at expiry: a reconnection refused (401) and the one retry allowed (401).
    assert.equal(fetcher.streams().length, 3, `${fetcher.streams().length} stream requests`);
    assert.equal(seen.statuses.at(-1)?.error?.code, 'token-expired');
  });

  test('401: the token function is called again once; a second 401 in a row is fatal, with the detail', async () => {
    const hub = await jwtHub();
    cleanups.push(() => hub.close());
    const wrong = await token({ sub: 'mallory', secret: 'another-secret-that-is-long-enough-for-hs256!' });
    const expected = await (await fetch(`${hub.url}/v1/events?topic=t`, { headers: bearer(wrong) })).json();
    let calls = 0;
    const client = createClient({
      url: hub.url,
      topics: ['t'],
      store: null,
      token: () => {
        calls++;
        return wrong;
      },
    });
    const seen = record(client);
    await untilStatus(client, 'closed');
    assert.equal(calls, 2);
    const closed = seen.statuses.at(-1);
    assert.equal(closed?.status, 'closed');
    assert.equal(closed?.reason, expected.detail);
    assert.equal(closed?.error?.status, 401);
    assert.equal(closed?.error?.code, expected.code);
    assert.ok(!seen.statuses.some((s) => s.status === 'reconnecting'), 'no backoff for a refused token');
  });

  test('401 once, then a fresh token works', async () => {
    const hub = await jwtHub();
    cleanups.push(() => hub.close());
    const tokens = [await token({ sub: 'u', expiresIn: -10 }), await token({ sub: 'u' })];
    let calls = 0;
    const client = createClient({
      url: hub.url,
      topics: ['t'],
      store: null,
      token: () => tokens[calls++] as string,
    });
    cleanups.push(() => client.close());
    await untilStatus(client, 'open');
    assert.equal(calls, 2);
  });

  test('400 is fatal with the detail (a malformed topic template)', async () => {
    const hub = await startHub();
    cleanups.push(() => hub.close());
    const client = createClient({ url: hub.url, topics: ['orders/{id'], store: null });
    const seen = record(client);
    await untilStatus(client, 'closed');
    assert.equal(seen.statuses.at(-1)?.error?.status, 400);
    assert.match(seen.statuses.at(-1)?.reason ?? '', /template|\{/);
  });

  test('403 and 404 are fatal with the detail; nothing is retried', async () => {
    for (const [status, code] of [
      [403, 'tenant-forbidden'],
      [404, 'not-found'],
    ] as const) {
      const fetcher = recordingFetch(() => problem(status, code, `refused with ${status}`));
      const client = createClient({
        url: 'http://hub.invalid/base',
        topics: ['t'],
        store: null,
        fetch: fetcher.fetch,
      });
      const seen = record(client);
      await untilStatus(client, 'closed');
      await sleep(50);
      assert.equal(fetcher.calls.length, 1);
      assert.equal(fetcher.calls[0]?.url, 'http://hub.invalid/base/v1/events?topic=t');
      assert.deepEqual(
        seen.statuses.map((s) => [s.status, s.reason, s.error?.code]),
        [['closed', `refused with ${status}`, code]],
      );
    }
  });

  test('transport "eventsource": token and resume point in the query, events typed, resumes across lifetimes', async () => {
    const hub = await jwtHub({ maxLifetimeMs: 300 });
    cleanups.push(() => hub.close());
    const jwt = await token({ sub: 'legacy' });
    const urls: string[] = [];
    class RecordingEventSource extends EventSource {
      constructor(url: string | URL, init?: EventSourceInit) {
        urls.push(String(url));
        super(url, init);
      }
    }
    const client = createClient({
      url: hub.url,
      topics: ['legacy'],
      token: jwt,
      transport: 'eventsource',
      EventSource: RecordingEventSource as unknown as typeof globalThis.EventSource,
      store: null,
    });
    cleanups.push(() => client.close());
    const seen = record(client);
    const scores: unknown[] = [];
    client.on('score', (m) => scores.push(m.data));
    await untilStatus(client, 'open');
    const publisher = bearer(await token({ sub: 'w', publish: ['legacy'] }));
    const published: number[] = [];
    for (let i = 0; i < 60; i++) {
      await hub.publish({ topic: 'legacy', type: 'score', data: i }, publisher);
      published.push(i);
      await sleep(15);
    }
    await until(() => seen.messages.length >= published.length, 10_000, 'every event');
    assert.deepEqual(scores, published);
    assert.ok(urls.length >= 2, 'reconnected');
    const resumed = new URL(urls.at(-1) as string);
    assert.equal(resumed.searchParams.get('access_token'), jwt);
    assert.match(resumed.searchParams.get('lastEventId') ?? '', /.+-\d+/);
  });
});
