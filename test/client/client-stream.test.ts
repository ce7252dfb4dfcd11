import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, afterEach, describe, mock, test } from 'node:test';
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
    await until(() => seen.statuses.some((s) => s.status === 'reconnecting'), 20_000, 'a reconnection');
    assert.equal(seen.statuses.find((s) => s.status === 'reconnecting')?.reason, 'no data for 250 ms');
    await hub.publish({ topic: 'quiet', data: 'still here' });
    await until(() => seen.messages.length === 1, 20_000);
    assert.equal(client.mode, 'stream', 'bytes came before the silence: not a buffering proxy');
  });

  test('a stream that gets heartbeats is left alone', async () => {
    // Heartbeats every 100 ms; the client gives up after 1.5 s of silence (2.5 × 600 ms). Over
    // 3.5 s, more than twice that: a stream without heartbeats would have been given up, while
    // a machine busy enough to hold this process back for a moment does not make it fail.
    const hub = await startHub({ heartbeatMs: 100 });
    cleanups.push(() => hub.close());
    const client = createClient({ url: hub.url, topics: ['quiet'], store: null, heartbeatMs: 600 });
    cleanups.push(() => client.close());
    const seen = record(client);
    await untilStatus(client, 'open');
    const connectionId = client.connectionId;
    await sleep(3500);
    assert.deepEqual(
      seen.statuses.map((s) => s.status),
      ['open'],
    );
    assert.equal(client.connectionId, connectionId);
  });
});

describe('herald/client reconnection timing (fake timers: no bound depends on how busy the machine is)', () => {
  const random = Math.random;
  afterEach(() => {
    Math.random = random;
    mock.timers.reset();
  });

  /**
   * Fake setTimeout and Date from 0; `advance` then moves time on 1 ms at a time, letting the
   * client's promises and streams settle (on real setImmediate) between steps. A delay is then
   * measured in fake milliseconds, exactly, however slowly the machine runs the steps.
   */
  function fakeTime(): { advance(done: () => boolean, limitMs?: number): Promise<void> } {
    mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 0 });
    return {
      async advance(done, limitMs = 10_000) {
        for (let ms = 0; !done(); ms++) {
          if (ms > limitMs) throw new Error(`not done after ${limitMs} ms of fake time`);
          for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
          mock.timers.tick(1);
        }
      },
    };
  }

  /** The fake times of the client's requests, and the gaps between them. */
  const gapsOf = (times: readonly number[]) => times.slice(1).map((t, i) => t - (times[i] as number));
  /** `gap` is `expected` ms, give or take the 1 ms steps. */
  const about = (gap: number | undefined, expected: number) =>
    gap !== undefined && gap >= Math.floor(expected) && gap <= Math.ceil(expected) + 2;

  test("the server's retry: is the floor and the base delay; a healthy open resets the backoff", async () => {
    const time = fakeTime();
    Math.random = () => 0.999; // the top of each jitter range
    const times: number[] = [];
    const fetcher = recordingFetch(() => {
      times.push(Date.now());
      const n = times.length;
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
    await time.advance(() => times.length >= 6);
    client.close();
    const gaps = gapsOf(times);
    // Without the hint: 500 · 2^attempt. With it, the hint plus 150, 300, 600 (× 0.999): never
    // sooner than the hint. After the healthy open the attempts start again from the new hint.
    assert.ok(about(gaps[0], 150 + 149.85), `${gaps}`);
    assert.ok(about(gaps[1], 150 + 299.7), `${gaps}`);
    assert.ok(about(gaps[2], 150 + 599.4), `${gaps}`);
    assert.ok(about(gaps[3], 10 + 9.99), `reset after the open: ${gaps}`);
    assert.ok(about(gaps[4], 10 + 19.98), `reset after the open: ${gaps}`);
  });

  test("no reconnect comes sooner than the server's retry:, however the jitter falls", async () => {
    const time = fakeTime();
    Math.random = () => 0; // the bottom of each jitter range
    const times: number[] = [];
    const fetcher = recordingFetch(() => {
      times.push(Date.now());
      return sseResponse('retry: 400\n\nid: e-1\nevent: herald.connected\ndata: {"connectionId":"c"}\n\n');
    });
    const client = createClient({
      url: 'http://hub.invalid',
      topics: ['t'],
      store: null,
      fetch: fetcher.fetch,
    });
    await time.advance(() => times.length >= 4);
    client.close();
    for (const gap of gapsOf(times)) assert.ok(gap >= 400, `${gapsOf(times)}`);
  });

  test('Retry-After on 503 and 429 is a minimum', async () => {
    const time = fakeTime();
    Math.random = () => 0; // no delay of its own
    const times: number[] = [];
    const fetcher = recordingFetch(() => {
      times.push(Date.now());
      const n = times.length;
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
    await time.advance(() => times.length >= 3);
    client.close();
    const [afterRefused, afterSlowDown] = gapsOf(times);
    assert.ok(about(afterRefused, 1000), `${afterRefused} ms after the 503`);
    assert.ok(about(afterSlowDown, 1000), `${afterSlowDown} ms after the 429`);
    const reconnecting = seen.statuses.filter((s) => s.status === 'reconnecting');
    assert.equal(reconnecting[0]?.reason, 'shutting down');
    assert.equal(reconnecting[0]?.error?.status, 503);
    assert.equal(reconnecting[1]?.reason, 'slow down');
  });

  test('network errors are transient, with growing delays up to the cap', async () => {
    const time = fakeTime();
    Math.random = () => 0.999;
    const times: number[] = [];
    const fetcher = recordingFetch(() => {
      times.push(Date.now());
      return Promise.reject(new TypeError('fetch failed'));
    });
    const client = createClient({
      url: 'http://hub.invalid',
      topics: ['t'],
      store: null,
      fetch: fetcher.fetch,
      backoff: { initialMs: 20, maxMs: 80 },
    });
    const seen = record(client);
    await time.advance(() => times.length >= 6);
    client.close();
    const gaps = gapsOf(times);
    // 20 · 2^attempt, capped at 80 (× 0.999).
    const expected = [19.98, 39.96, 79.92, 79.92, 79.92];
    assert.ok(
      expected.every((ms, i) => about(gaps[i], ms)),
      `${gaps} (expected ${expected})`,
    );
    assert.equal(seen.statuses[0]?.status, 'reconnecting');
    assert.equal(seen.statuses[0]?.reason, 'fetch failed');
    assert.equal(seen.statuses.at(-1)?.status, 'closed');
  });
});
