import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, type TestContext, test } from 'node:test';
import { createHerald, type Herald } from '../../src/herald.ts';
import { nodeHandler } from '../../src/http/node.ts';
import { sleep } from '../helpers/server.ts';
import { openStream, type SseStream } from '../helpers/sse-client.ts';

interface Mounted {
  readonly herald: Herald;
  readonly server: Server;
  /** `http://127.0.0.1:<port>`, without the base path. */
  readonly origin: string;
  /** Opens a stream under /realtime and waits for its `herald.connected` event. */
  subscribe(query: string): Promise<SseStream>;
}

/** A real node:http server with Herald under /realtime, torn down when the test ends. */
async function mount(t: TestContext): Promise<Mounted> {
  // A long heartbeat keeps comments out of the exact byte checks below.
  const herald = createHerald({ heartbeatMs: 60_000 });
  const server = createServer(nodeHandler(herald, { basePath: '/realtime' }));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const streams: SseStream[] = [];
  t.after(async () => {
    for (const stream of streams) stream.close();
    await herald.close();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return {
    herald,
    server,
    origin,
    async subscribe(query) {
      const stream = await openStream(`${origin}/realtime/v1/events?${query}`);
      streams.push(stream);
      await stream.until(
        (s) => s.events.some((e) => e.type === 'herald.connected'),
        5000,
        'herald.connected',
      );
      return stream;
    },
  };
}

async function connections(herald: Herald): Promise<number> {
  return (await herald.stats()).connections.total;
}

/** Polls `herald.stats()` until it reports `count` open streams, for at most `timeoutMs`. */
async function untilConnections(herald: Herald, count: number, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let total = await connections(herald);
  while (total !== count) {
    if (Date.now() > deadline)
      assert.fail(`expected ${count} open streams within ${timeoutMs} ms; still ${total}`);
    await sleep(20);
    total = await connections(herald);
  }
}

async function assertProblem(
  response: Response,
  status: number,
  code: string,
): Promise<Record<string, unknown>> {
  assert.equal(response.status, status);
  assert.equal(response.headers.get('content-type'), 'application/problem+json; charset=utf-8');
  const problem = (await response.json()) as Record<string, unknown>;
  assert.equal(problem.status, status);
  assert.equal(problem.code, code);
  assert.equal(typeof problem.detail, 'string');
  assert.ok((problem.detail as string).length > 0);
  return problem;
}

describe('nodeHandler on node:http, mounted under basePath /realtime', () => {
  test('a stream under /realtime receives events published over HTTP and in-process', async (t) => {
    const { herald, origin, subscribe } = await mount(t);
    const stream = await subscribe('topic=orders');
    assert.equal(stream.status, 200);
    assert.equal(stream.retry, 1000);
    const connected = JSON.parse(stream.events[0]?.data ?? '{}') as Record<string, unknown>;
    assert.equal(typeof connected.connectionId, 'string');
    assert.equal(typeof connected.lastEventId, 'string');

    const response = await fetch(`${origin}/realtime/v1/publish`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ topic: 'orders', type: 'order.created', data: { po: 'PO-1' } }),
    });
    assert.equal(response.status, 202);
    const { id: httpId } = (await response.json()) as { id: string };
    const inProcessId = await herald.publish({ topic: 'orders', data: 'shipped' });

    await stream.untilData(2);
    assert.deepEqual(
      stream.data.map((e) => [e.id, e.type, e.data]),
      [
        [httpId, 'order.created', '{"po":"PO-1"}'],
        [inProcessId, 'message', 'shipped'],
      ],
    );
  });

  test('paths outside /realtime get a 404 problem, not a Herald route', async (t) => {
    const { origin } = await mount(t);
    // The same route without the base path, a look-alike prefix, and a root path.
    for (const path of ['/v1/events?topic=orders', '/realtimeX/v1/stats', '/', '/healthz']) {
      await assertProblem(await fetch(`${origin}${path}`), 404, 'not-found');
    }
    // Under the base path, a path Herald does not serve is a 404 problem too.
    await assertProblem(await fetch(`${origin}/realtime/v1/nope`), 404, 'not-found');
    // And the base path itself maps onto Herald's routes.
    const health = await fetch(`${origin}/realtime/healthz`);
    assert.equal(health.status, 200);
    assert.deepEqual(await health.json(), { status: 'ok' });
  });

  test('a method a route does not take gets 405 with an Allow header', async (t) => {
    const { origin } = await mount(t);
    const wrongPublish = await fetch(`${origin}/realtime/v1/publish`, { method: 'GET' });
    assert.equal(wrongPublish.headers.get('allow'), 'POST');
    await assertProblem(wrongPublish, 405, 'method-not-allowed');
    const wrongEvents = await fetch(`${origin}/realtime/v1/events?topic=a`, { method: 'DELETE' });
    assert.equal(wrongEvents.headers.get('allow'), 'GET');
    await assertProblem(wrongEvents, 405, 'method-not-allowed');
  });

  test('an HTTP/1.1 stream has exactly the SSE headers and nothing that would buffer it', async (t) => {
    const { subscribe } = await mount(t);
    const stream = await subscribe('topic=orders');
    const {
      date,
      'transfer-encoding': transferEncoding,
      'x-request-id': requestId,
      ...rest
    } = stream.headers;
    // Which request opened the stream, as its log lines name it.
    assert.match(String(requestId), /^[0-9a-f-]{36}$/);
    assert.deepEqual(rest, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      'x-accel-buffering': 'no',
      connection: 'keep-alive',
    });
    // What node:http adds by itself: a date, and chunked framing (never a Content-Length on a stream).
    assert.equal(typeof date, 'string');
    assert.equal(transferEncoding, 'chunked');
    // The first bytes are exactly the retry hint and the connected event.
    assert.match(stream.raw, /^retry: 1000\n\nid: [^\n]+\nevent: herald\.connected\ndata: \{[^\n]+\}\n\n$/);
  });

  test('closeStreams() ends open streams with a retry hint so server.close() can finish', async (t) => {
    const herald = createHerald({ heartbeatMs: 60_000 });
    const handler = nodeHandler(herald, { basePath: '/realtime' });
    const server = createServer(handler);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    t.after(async () => {
      await herald.close();
      server.closeAllConnections();
      if (server.listening) server.close();
    });
    const stream = await openStream(
      `http://127.0.0.1:${(server.address() as AddressInfo).port}/realtime/v1/events?topic=a`,
    );
    t.after(() => stream.close());
    await stream.until((s) => s.events.length >= 1, 5000, 'herald.connected');
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    handler.closeStreams();
    await stream.untilEnded();
    await closed;
    assert.match(stream.raw, /\nretry: \d+\n\n$/);
    assert.equal((await herald.stats()).connections.total, 0);
    // The hub itself keeps running.
    assert.equal(typeof (await herald.publish({ topic: 'a', data: 'still up' })), 'string');
  });

  test('a stream requested after herald.close() is refused with a 503 problem, not left open', async (t) => {
    const { herald, origin } = await mount(t);
    await herald.close();
    const stream = await openStream(`${origin}/realtime/v1/events?topic=orders`);
    t.after(() => stream.close());
    assert.equal(stream.status, 503);
    await stream.untilEnded();
    assert.equal(JSON.parse(stream.raw).code, 'shutting-down');
    assert.equal((await herald.stats()).connections.total, 0);
  });

  test('when the client disconnects, the hub forgets the stream', async (t) => {
    const { herald, subscribe } = await mount(t);
    const first = await subscribe('topic=orders');
    const second = await subscribe('topic=orders');
    assert.equal(await connections(herald), 2);
    first.close();
    await untilConnections(herald, 1);
    second.close();
    await untilConnections(herald, 0);
    assert.equal((await herald.stats()).events.closed.client, 2);
    // Publishing to a topic nobody listens to any more is still fine.
    assert.equal(typeof (await herald.publish({ topic: 'orders', data: 'after' })), 'string');
  });
});
