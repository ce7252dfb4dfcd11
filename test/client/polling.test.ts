import assert from 'node:assert/strict';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, test } from 'node:test';
import { createClient, type HeraldClient } from '../../src/client/index.ts';
import { sleep, startHub, type TestHub } from '../helpers/server.ts';
import { record, until } from './helpers.ts';

type ProxyMode = 'text' | 'silent' | 'pass';

interface Proxy {
  readonly url: string;
  mode: ProxyMode;
  /** Requests for /v1/events and /v1/events/poll that reached the proxy. */
  readonly counts: { streams: number; polls: number };
  close(): Promise<void>;
}

/**
 * A proxy in front of the hub that breaks streaming the way real ones do: `text` answers streams
 * with 200 text/plain and never a byte, `silent` with 200 text/event-stream and never a byte (a
 * buffering proxy); `pass` lets them through. Everything else (polls) is always forwarded.
 */
async function startProxy(hub: TestHub, mode: ProxyMode): Promise<Proxy> {
  const target = new URL(hub.url);
  const counts = { streams: 0, polls: 0 };
  const proxy: { mode: ProxyMode } = { mode };
  const server: Server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    if (path === '/v1/events') counts.streams++;
    if (path === '/v1/events/poll') counts.polls++;
    if (path === '/v1/events' && proxy.mode !== 'pass') {
      res.writeHead(200, { 'content-type': proxy.mode === 'text' ? 'text/plain' : 'text/event-stream' });
      res.flushHeaders();
      return; // and never a byte
    }
    const upstream = request(
      { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on('error', () => res.destroy());
    res.on('close', () => upstream.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    get mode() {
      return proxy.mode;
    },
    set mode(next) {
      proxy.mode = next;
    },
    counts,
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** Publishes `count` events on `topic`, a few ms apart, returning their data in order. */
async function publishSeries(hub: TestHub, from: number, count: number): Promise<number[]> {
  const sent: number[] = [];
  for (let i = from; i < from + count; i++) {
    await hub.publish({ topic: 'jobs', data: i });
    sent.push(i);
    await sleep(8);
  }
  return sent;
}

describe('polling fallback', () => {
  const cleanups: (() => unknown)[] = [];
  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  const start = async (mode: ProxyMode) => {
    const hub = await startHub({ heartbeatMs: 50, retryMs: 20 });
    const proxy = await startProxy(hub, mode);
    const client = createClient({
      url: proxy.url,
      topics: ['jobs'],
      store: null,
      heartbeatMs: 100,
      probeMs: 300,
      backoff: { initialMs: 20, maxMs: 100 },
    });
    cleanups.push(
      () => hub.close(),
      // A long poll the hub still holds would keep this process alive for its whole wait after
      // the hub closed: an event ends them.
      () => hub.publish({ topic: ['jobs', 'more'], data: 'wake the pending polls' }),
      () => proxy.close(),
      () => client.close(),
    );
    return { hub, proxy, client, seen: record(client) };
  };

  /** Publishes while the client polls, lets streams through, publishes while it streams again. */
  async function polledThenStreamed(
    hub: TestHub,
    proxy: Proxy,
    client: HeraldClient,
    seen: ReturnType<typeof record>,
  ) {
    const published = await publishSeries(hub, 0, 40);
    await until(() => seen.messages.length >= published.length, 10_000, 'the polled events');
    assert.equal(client.mode, 'poll');
    assert.ok(proxy.counts.polls >= 2, `${proxy.counts.polls} polls`);

    // Events keep coming while the proxy starts passing streams through.
    const during = publishSeries(hub, 40, 60);
    await sleep(50);
    proxy.mode = 'pass';
    published.push(...(await during));
    await until(() => client.mode === 'stream', 5000, 'streaming again');
    assert.equal(client.status, 'open');
    assert.ok(client.connectionId, 'a stream connection');
    published.push(...(await publishSeries(hub, 100, 20)));
    await until(() => seen.messages.length >= published.length, 10_000, 'every event');
    await sleep(100);
    assert.deepEqual(seen.data(), published, 'in order, none missed, none twice');
    const polls = proxy.counts.polls;
    await sleep(300);
    assert.equal(proxy.counts.polls, polls, 'polling stopped');
    assert.equal((await hub.herald.stats()).connections.total, 1);
  }

  test('a proxy answering streams with 200 text/plain: long polling at once, streaming again when it passes them', async () => {
    const { hub, proxy, client, seen } = await start('text');
    // Events published before the client first gets through are not its business: wait for that.
    await until(() => client.mode === 'poll' && client.status === 'open', 3000, 'polling');
    assert.deepEqual(seen.statuses.at(-1), { status: 'open', reason: 'polling' });
    await polledThenStreamed(hub, proxy, client, seen);
    assert.deepEqual(seen.statuses.at(-1), { status: 'open' });
  });

  test('a buffering proxy (200 text/event-stream, no byte): polling after 3 silent streams, then back', async () => {
    const { hub, proxy, client, seen } = await start('silent');
    await until(() => client.mode === 'poll' && client.status === 'open', 5000, 'polling');
    assert.equal(proxy.counts.streams, 3);
    await polledThenStreamed(hub, proxy, client, seen);
  });

  test("polling: 'never' keeps trying streams", async () => {
    const hub = await startHub();
    const proxy = await startProxy(hub, 'text');
    const client = createClient({
      url: proxy.url,
      topics: ['jobs'],
      store: null,
      polling: 'never',
      backoff: { initialMs: 10, maxMs: 20 },
    });
    cleanups.push(
      () => hub.close(),
      () => proxy.close(),
      () => client.close(),
    );
    const seen = record(client);
    await until(() => proxy.counts.streams >= 5, 3000);
    assert.equal(client.mode, 'stream');
    assert.equal(proxy.counts.polls, 0);
    assert.match(seen.statuses[0]?.reason ?? '', /not an event stream/);
  });

  test('topics changed while polling are polled at once', async () => {
    const { hub, client, seen } = await start('text');
    await until(() => client.mode === 'poll' && client.status === 'open', 3000, 'polling');
    await client.subscribe('more');
    await hub.publish({ topic: 'more', data: 'more' });
    await until(() => seen.messages.length === 1, 3000);
    assert.deepEqual(seen.data(), ['more']);
  });
});
