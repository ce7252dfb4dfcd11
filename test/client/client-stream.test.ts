import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, test } from 'node:test';
import { createClient, memoryStore } from '../../src/client/index.ts';
import { createHerald } from '../../src/herald.ts';
import { nodeHandler } from '../../src/http/node.ts';
import { sleep, startHub } from '../helpers/server.ts';
import { record, recordingFetch, sseResponse, until, untilStatus } from './helpers.ts';

interface DealerEvents extends Record<string, unknown> {
  'ai-score': { avi: number; ati: number; cis: number };
  msrp: { vin: string; new: number };
}

describe('herald/client in Node against a real hub', () => {
  const cleanups: (() => unknown)[] = [];
  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  test('receives typed events; herald.* never reach on("*"); filters by type and tag', async () => {
    const hub = await startHub();
    cleanups.push(() => hub.close());
    const client = createClient<DealerEvents>({
      url: hub.url,
      topics: ['dealers/{dealerId}/scores'],
      types: ['ai-score', 'message'],
      tags: { dealerId: ['S1', 'S2'] },
      store: null,
    });
    cleanups.push(() => client.close());
    const seen = record(client);
    const scores: number[] = [];
    client.on('ai-score', (message) => scores.push(message.data.avi)); // typed: data.avi is a number
    await untilStatus(client, 'open');
    assert.match(client.connectionId ?? '', /.+/);
    assert.equal(seen.statuses[0]?.status, 'open');

    await hub.publish([
      {
        topic: 'dealers/S1/scores',
        type: 'ai-score',
        data: { avi: 66, ati: 72, cis: 69 },
        tags: { dealerId: 'S1' },
      },
      {
        topic: 'dealers/S3/scores',
        type: 'ai-score',
        data: { avi: 1, ati: 1, cis: 1 },
        tags: { dealerId: 'S3' },
      },
      { topic: 'dealers/S2/scores', type: 'msrp', data: { vin: 'X', new: 1 }, tags: { dealerId: 'S2' } },
      { topic: 'dealers/S2/scores', data: 'plain text', tags: { dealerId: 'S2' } },
      { topic: 'dealers/S2/scores', data: '{"already":"json"}', tags: { dealerId: 'S2' } },
    ]);
    await until(() => seen.messages.length === 3, 5000, 'three events');
    assert.deepEqual(scores, [66]);
    assert.deepEqual(
      seen.messages.map((m) => [m.type, m.data, m.raw]),
      [
        ['ai-score', { avi: 66, ati: 72, cis: 69 }, '{"avi":66,"ati":72,"cis":69}'],
        ['message', 'plain text', 'plain text'],
        ['message', { already: 'json' }, '{"already":"json"}'],
      ],
    );
    assert.ok(seen.messages.every((m) => !m.type.startsWith('herald.')));
    assert.equal(client.lastEventId, seen.messages.at(-1)?.id);
  });

  test('an unsubscribed handler is not called again', async () => {
    const hub = await startHub();
    cleanups.push(() => hub.close());
    const client = createClient({ url: hub.url, topics: ['t'], store: null });
    cleanups.push(() => client.close());
    const got: unknown[] = [];
    const off = client.on('*', (m) => got.push(m.data));
    await untilStatus(client, 'open');
    await hub.publish({ topic: 't', data: 1 });
    await until(() => got.length === 1);
    off();
    await hub.publish({ topic: 't', data: 2 });
    await sleep(100);
    assert.deepEqual(got, [1]);
  });

  test('resumes with Last-Event-ID after the hub ends streams (max lifetime): nothing missed, nothing twice', async () => {
    const hub = await startHub({ maxLifetimeMs: 300, retryMs: 60 });
    cleanups.push(() => hub.close());
    const client = createClient({ url: hub.url, topics: ['progress'], store: null });
    cleanups.push(() => client.close());
    const seen = record(client);
    await untilStatus(client, 'open');
    const published: number[] = [];
    for (let i = 0; i < 120; i++) {
      await hub.publish({ topic: 'progress', data: i });
      published.push(i);
      await sleep(10);
    }
    await until(() => seen.messages.length >= published.length, 10_000, 'every event');
    await sleep(100);
    assert.deepEqual(seen.data(), published);
    const reconnections = seen.statuses.filter((s) => s.status === 'reconnecting');
    assert.ok(reconnections.length >= 2, `${reconnections.length} reconnections`);
    assert.equal(reconnections[0]?.reason, 'the stream ended');
  });

  test('a hub restarted on the same port: herald.gap (expired) through onGap, then everything published since', async () => {
    const first = await startHub({ retryMs: 50 });
    const port = Number(new URL(first.url).port);
    const client = createClient({
      url: first.url,
      topics: ['orders'],
      store: null,
      backoff: { initialMs: 50, maxMs: 200 },
    });
    cleanups.push(() => client.close());
    const seen = record(client);
    await untilStatus(client, 'open');
    await first.publish([
      { topic: 'orders', data: 'before 1' },
      { topic: 'orders', data: 'before 2' },
    ]);
    await until(() => seen.messages.length === 2);
    const lastBefore = client.lastEventId;
    await first.close();

    // A new process: a new Herald (a new epoch of ids) on the same port.
    const herald = createHerald({ retryMs: 50 });
    const server = createServer(nodeHandler(herald));
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    cleanups.push(async () => {
      await herald.close();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    });
    assert.equal((server.address() as AddressInfo).port, port);
    // Published before the client is back: it must still get them.
    await herald.publish({ topic: 'orders', data: 'after 1' });
    await herald.publish({ topic: 'orders', data: 'after 2' });
    await until(() => seen.messages.length === 4, 10_000, 'the events of the new hub');
    await herald.publish({ topic: 'orders', data: 'after 3' });
    await until(() => seen.messages.length === 5);
    assert.deepEqual(seen.data(), ['before 1', 'before 2', 'after 1', 'after 2', 'after 3']);
    assert.deepEqual(seen.gaps, [{ lastEventId: lastBefore, reason: 'expired' }]);
  });

  test('a new client with the same store resumes where the last one stopped (a page reload)', async () => {
    const hub = await startHub();
    cleanups.push(() => hub.close());
    const store = memoryStore();
    const page = () => createClient({ url: hub.url, topics: ['feed'], store });
    const first = page();
    const seenFirst = record(first);
    await untilStatus(first, 'open');
    await hub.publish({ topic: 'feed', data: 'seen by the first page' });
    await until(() => seenFirst.messages.length === 1);
    first.close();
    await hub.publish({ topic: 'feed', data: 'published during the reload' });

    const fetcher = recordingFetch();
    const second = createClient({ url: hub.url, topics: ['feed'], store, fetch: fetcher.fetch });
    cleanups.push(() => second.close());
    const seenSecond = record(second);
    await untilStatus(second, 'open');
    await hub.publish({ topic: 'feed', data: 'live' });
    await until(() => seenSecond.messages.length === 2);
    assert.deepEqual(seenSecond.data(), ['published during the reload', 'live']);
    assert.equal(fetcher.streams()[0]?.headers.get('last-event-id'), seenFirst.messages[0]?.id);
  });

  test('the watchdog: a stream silent for 2.5× the heartbeat is reconnected, and resumes', async () => {
    const hub = await startHub({ heartbeatMs: 60_000, retryMs: 20 });
    cleanups.push(() => hub.close());
    const client = createClient({ url: hub.url, topics: ['quiet'], store: null, heartbeatMs: 100 });
    cleanups.push(() => client.close());
    const seen = record(client);
    await untilStatus(client, 'open');
    await until(() => seen.statuses.some((s) => s.status === 'reconnecting'), 2000, 'a reconnection');
    assert.equal(seen.statuses.find((s) => s.status === 'reconnecting')?.reason, 'no data for 250 ms');
    await hub.publish({ topic: 'quiet', data: 'still here' });
    await until(() => seen.messages.length === 1, 3000);
    assert.equal(client.mode, 'stream', 'bytes came before the silence: not a buffering proxy');
  });

  test('a stream that gets heartbeats is left alone', async () => {
    const hub = await startHub({ heartbeatMs: 40 });
    cleanups.push(() => hub.close());
    const client = createClient({ url: hub.url, topics: ['quiet'], store: null, heartbeatMs: 40 });
    cleanups.push(() => client.close());
    const seen = record(client);
    await untilStatus(client, 'open');
    const connectionId = client.connectionId;
    await sleep(600);
    assert.deepEqual(
      seen.statuses.map((s) => s.status),
      ['open'],
    );
    assert.equal(client.connectionId, connectionId);
  });
});

describe('herald/client reconnection timing', () => {
  const random = Math.random;
  after(() => {
    Math.random = random;
  });

  test("the server's retry: is the base delay; a healthy open resets the backoff", async () => {
    Math.random = () => 0.999; // the top of each jitter range
    let n = 0;
    const fetcher = recordingFetch(() => {
      n++;
      if (n <= 3) return sseResponse('retry: 150\n\n'); // opens, sends a retry hint, ends
      if (n === 4)
        return sseResponse('retry: 10\n\nid: e-1\nevent: herald.connected\ndata: {"connectionId":"c"}\n\n');
      return sseResponse('');
    });
    const client = createClient({
      url: 'http://hub.invalid',
      topics: ['t'],
      store: null,
      fetch: fetcher.fetch,
    });
    await until(() => fetcher.calls.length >= 6, 5000);
    client.close();
    const at = fetcher.calls.map((c) => c.at);
    const gaps = at.slice(1).map((t, i) => t - (at[i] as number));
    // Without the hint: 500 · 2^attempt. With it: 150, 300, 600; then after the healthy open: 10, 20.
    assert.ok(gaps[0] !== undefined && gaps[0] >= 140 && gaps[0] < 400, `${gaps}`);
    assert.ok(gaps[1] !== undefined && gaps[1] >= 290 && gaps[1] < 700, `${gaps}`);
    assert.ok(gaps[2] !== undefined && gaps[2] >= 590 && gaps[2] < 1200, `${gaps}`);
    assert.ok(gaps[4] !== undefined && gaps[4] < 100, `reset after the open: ${gaps}`);
  });

  test('Retry-After on 503 and 429 is a minimum', async () => {
    Math.random = () => 0; // no delay of its own
    let n = 0;
    const fetcher = recordingFetch(() => {
      n++;
      if (n === 1)
        return new Response('{"detail":"shutting down","code":"shutting-down"}', {
          status: 503,
          headers: { 'retry-after': '1' },
        });
      if (n === 2)
        return new Response('{"detail":"slow down"}', { status: 429, headers: { 'retry-after': '1' } });
      return sseResponse('id: e-1\nevent: herald.connected\ndata: {"connectionId":"c"}\n\n');
    });
    const client = createClient({
      url: 'http://hub.invalid',
      topics: ['t'],
      store: null,
      fetch: fetcher.fetch,
    });
    const seen = record(client);
    await until(() => fetcher.calls.length >= 3, 5000);
    client.close();
    const [a, b, c] = fetcher.calls.map((call) => call.at) as [number, number, number];
    assert.ok(b - a >= 990, `${b - a} ms after the 503`);
    assert.ok(c - b >= 990, `${c - b} ms after the 429`);
    const reconnecting = seen.statuses.filter((s) => s.status === 'reconnecting');
    assert.equal(reconnecting[0]?.reason, 'shutting down');
    assert.equal(reconnecting[0]?.error?.status, 503);
    assert.equal(reconnecting[1]?.reason, 'slow down');
  });

  test('network errors are transient, with growing delays', async () => {
    Math.random = () => 0.999;
    const fetcher = recordingFetch(() => Promise.reject(new TypeError('fetch failed')));
    const client = createClient({
      url: 'http://hub.invalid',
      topics: ['t'],
      store: null,
      fetch: fetcher.fetch,
      backoff: { initialMs: 20, maxMs: 80 },
    });
    const seen = record(client);
    await until(() => fetcher.calls.length >= 6, 5000);
    client.close();
    const at = fetcher.calls.map((c) => c.at);
    const gaps = at.slice(1).map((t, i) => t - (at[i] as number));
    assert.ok((gaps[0] as number) < (gaps[2] as number), `${gaps}`);
    assert.ok(
      gaps.every((g) => g < 200),
      `capped at 80 ms: ${gaps}`,
    );
    assert.equal(seen.statuses[0]?.status, 'reconnecting');
    assert.equal(seen.statuses[0]?.reason, 'fetch failed');
    assert.equal(seen.statuses.at(-1)?.status, 'closed');
  });
});
