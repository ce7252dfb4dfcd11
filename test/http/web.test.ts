import assert from 'node:assert/strict';
import type { IncomingMessage, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, type TestContext, test } from 'node:test';
import { serve } from '@hono/node-server';
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { type Context, Hono } from 'hono';
import { createHerald, type Herald } from '../../src/herald.ts';
import { webHandler } from '../../src/http/web.ts';
import { sleep } from '../helpers/server.ts';
import { openStream, type SseStream } from '../helpers/sse-client.ts';

const MAX_BODY_BYTES = 1024;

/** Polls `herald.stats()` until it reports `count` open streams, for at most `timeoutMs`. */
async function untilConnections(herald: Herald, count: number, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let total = (await herald.stats()).connections.total;
  while (total !== count) {
    if (Date.now() > deadline)
      assert.fail(`expected ${count} open streams within ${timeoutMs} ms; still ${total}`);
    await sleep(20);
    total = (await herald.stats()).connections.total;
  }
}

async function assertProblem(response: Response, status: number, code: string): Promise<{ detail: string }> {
  assert.equal(response.status, status);
  assert.equal(response.headers.get('content-type'), 'application/problem+json; charset=utf-8');
  const problem = (await response.json()) as { status: number; code: string; detail: string };
  assert.equal(problem.status, status);
  assert.equal(problem.code, code);
  assert.ok(problem.detail.length > 0);
  return problem;
}

/** Hono on @hono/node-server with Herald under /api/herald, on a free loopback port. */
async function startHono(t: TestContext) {
  const herald = createHerald({ heartbeatMs: 60_000, maxBodyBytes: MAX_BODY_BYTES });
  // @hono/node-server knows the socket: with the peer's address, an open hub knows it is local.
  const handler = (c: Context) =>
    webHandler(herald, {
      basePath: '/api/herald',
      clientAddress: () => (c.env as { incoming: IncomingMessage }).incoming.socket.remoteAddress,
    })(c.req.raw);
  const app = new Hono();
  app.get('/', (c) => c.text('the app'));
  app.all('/api/herald/*', handler);
  let server: Server | undefined;
  const port = await new Promise<number>((resolve) => {
    server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, (info: AddressInfo) =>
      resolve(info.port),
    ) as Server;
  });
  const origin = `http://127.0.0.1:${port}`;
  const streams: SseStream[] = [];
  t.after(async () => {
    for (const stream of streams) stream.close();
    await herald.close();
    server?.closeAllConnections();
    await new Promise<void>((resolve) => server?.close(() => resolve()));
  });
  return {
    herald,
    origin,
    /** Opens a stream under /api/herald and waits for its `herald.connected` event. */
    async subscribe(query: string) {
      const stream = await openStream(`${origin}/api/herald/v1/events?${query}`);
      streams.push(stream);
      await stream.until(
        (s) => s.events.some((e) => e.type === 'herald.connected'),
        5000,
        'herald.connected',
      );
      return stream;
    },
    publish(body: string, headers: Record<string, string> = { 'content-type': 'application/json' }) {
      return fetch(`${origin}/api/herald/v1/publish`, { method: 'POST', headers, body });
    },
  };
}

describe('webHandler in Hono on @hono/node-server, under /api/herald', () => {
  test('a stream receives events published over HTTP and in-process', async (t) => {
    const { herald, subscribe, publish } = await startHono(t);
    const stream = await subscribe('topic=orders');
    assert.equal(stream.status, 200);
    assert.equal(stream.headers['content-type'], 'text/event-stream; charset=utf-8');
    assert.equal(stream.headers['cache-control'], 'no-cache, no-transform');
    assert.equal(stream.headers['x-accel-buffering'], 'no');
    assert.equal(stream.retry, 1000);

    const response = await publish(
      JSON.stringify({ topic: 'orders', type: 'order.created', data: { po: 'PO-1' } }),
    );
    assert.equal(response.status, 202);
    const { id } = (await response.json()) as { id: string };
    const inProcessId = await herald.publish({ topic: 'orders', data: 'shipped' });

    await stream.untilData(2);
    assert.deepEqual(
      stream.data.map((e) => [e.id, e.type, e.data]),
      [
        [id, 'order.created', '{"po":"PO-1"}'],
        [inProcessId, 'message', 'shipped'],
      ],
    );
  });

  test('multi-line and non-ASCII data round-trip byte-exact', async (t) => {
    const { subscribe, publish } = await startHono(t);
    const stream = await subscribe('topic=text');
    const texts = [
      'first line\nsecond line\n\nafter a blank line',
      'Zürich · 東京 · São Paulo · 🎉🚗',
      'id: not-a-field\nevent: not-a-field\r\ncarriage return',
      '',
    ];
    const response = await publish(JSON.stringify(texts.map((data) => ({ topic: 'text', data }))));
    assert.equal(response.status, 202);
    await stream.untilData(texts.length);
    // SSE normalizes CR LF to LF on the way: a line break is a line break.
    assert.deepEqual(
      stream.data.map((e) => e.data),
      texts.map((text) => text.replace(/\r\n/g, '\n')),
    );
  });

  test('bad input gets problem+json', async (t) => {
    const { origin, publish } = await startHono(t);
    await assertProblem(await publish('{"topic": '), 400, 'malformed-json');
    await assertProblem(await publish('{}', { 'content-type': 'text/plain' }), 415, 'unsupported-media-type');
    const tooLarge = await assertProblem(
      await publish(JSON.stringify({ topic: 'a', data: 'x'.repeat(MAX_BODY_BYTES * 4) })),
      413,
      'body-too-large',
    );
    assert.match(tooLarge.detail, /the limit is 1 KiB/);
    const noTopic = await assertProblem(await fetch(`${origin}/api/herald/v1/events`), 400, 'topic-required');
    assert.match(noTopic.detail, /topic is required/);
    const wrongMethod = await fetch(`${origin}/api/herald/v1/publish`, { method: 'PUT' });
    assert.equal(wrongMethod.headers.get('allow'), 'POST');
    await assertProblem(wrongMethod, 405, 'method-not-allowed');
    await assertProblem(await fetch(`${origin}/api/herald/v1/nope`), 404, 'not-found');
    // The rest of the app is Hono's.
    assert.equal(await (await fetch(`${origin}/`)).text(), 'the app');
  });

  test('when the client disconnects, the subscriber is released', async (t) => {
    const { herald, subscribe } = await startHono(t);
    const first = await subscribe('topic=orders');
    const second = await subscribe('topic=orders');
    assert.equal((await herald.stats()).connections.total, 2);
    first.close();
    await untilConnections(herald, 1);
    second.close();
    await untilConnections(herald, 0);
    assert.equal((await herald.stats()).events.closed.client, 2);
  });
});

/** Reads SSE events off a Response body, as a browser's EventSource would. */
class BodyReader {
  readonly events: EventSourceMessage[] = [];
  readonly reader: ReadableStreamDefaultReader<Uint8Array>;
  private readonly decoder = new TextDecoder();
  private readonly parser = createParser({ onEvent: (event) => this.events.push(event) });

  constructor(body: ReadableStream<Uint8Array>) {
    this.reader = body.getReader();
  }

  /** Reads until `count` events have arrived, for at most `timeoutMs`. */
  async until(count: number, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.events.length < count) {
      const done = await this.read(deadline, `${count} events`);
      if (done) assert.fail(`the stream ended after ${this.events.length} events`);
    }
  }

  /** Reads until the body ends, for at most `timeoutMs`. */
  async untilEnd(timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!(await this.read(deadline, 'the end of the body'))) {}
  }

  /** Reads one chunk into the parser; true when the body has ended. */
  private async read(deadline: number, what: string): Promise<boolean> {
    const left = deadline - Date.now();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`timed out waiting for ${what}; got ${this.events.length} events`)),
        Math.max(0, left),
      );
    });
    try {
      const { done, value } = await Promise.race([this.reader.read(), timeout]);
      if (!done) this.parser.feed(this.decoder.decode(value, { stream: true }));
      return done;
    } finally {
      clearTimeout(timer);
    }
  }
}

describe('webHandler called directly, as a Next.js App Router route handler', () => {
  // app/api/herald/[...path]/route.ts: `export const GET = handler; export const POST = handler;`
  function route(t: TestContext) {
    // A route handler's Request carries no address: this app says its network is its own.
    const herald = createHerald({ heartbeatMs: 60_000, open: true });
    t.after(() => herald.close());
    const handler = webHandler(herald, { basePath: '/api/herald' });
    const GET = handler;
    const POST = handler;
    return { herald, GET, POST };
  }

  test('the Response body streams the first events; cancelling it releases the subscriber', async (t) => {
    const { herald, GET, POST } = route(t);
    const response = await GET(new Request('http://localhost:3000/api/herald/v1/events?topic=orders'));
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('content-type'), 'text/event-stream; charset=utf-8');
    assert.equal(response.headers.get('cache-control'), 'no-cache, no-transform');
    // Never a Connection header: the server in front may speak HTTP/2.
    assert.equal(response.headers.get('connection'), null);
    assert.ok(response.body !== null);
    const body = new BodyReader(response.body);
    await body.until(1);
    assert.equal(body.events[0]?.event, 'herald.connected');
    assert.equal((await herald.stats()).connections.total, 1);

    const published = await POST(
      new Request('http://localhost:3000/api/herald/v1/publish', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ topic: 'orders', type: 'order.created', data: 'PO-1\nZürich' }),
      }),
    );
    assert.equal(published.status, 202);
    const { id } = (await published.json()) as { id: string };
    await body.until(2);
    assert.deepEqual(
      [body.events[1]?.id, body.events[1]?.event, body.events[1]?.data],
      [id, 'order.created', 'PO-1\nZürich'],
    );

    await body.reader.cancel();
    await untilConnections(herald, 0);
    assert.equal((await herald.stats()).events.closed.client, 1);
  });

  test('aborting the request signal releases the subscriber and ends the body', async (t) => {
    const { herald, GET } = route(t);
    const controller = new AbortController();
    const response = await GET(
      new Request('http://localhost:3000/api/herald/v1/events?topic=orders', { signal: controller.signal }),
    );
    assert.ok(response.body !== null);
    const body = new BodyReader(response.body);
    await body.until(1);
    assert.equal((await herald.stats()).connections.total, 1);
    controller.abort();
    await untilConnections(herald, 0);
    // A runtime that never cancels the body itself still sees it end.
    await body.untilEnd();
  });

  test('a request aborted before its Response is made opens no subscriber', async (t) => {
    const { herald, GET } = route(t);
    const controller = new AbortController();
    controller.abort();
    const response = await GET(
      new Request('http://localhost:3000/api/herald/v1/events?topic=orders', { signal: controller.signal }),
    );
    assert.equal((await herald.stats()).connections.total, 0);
    assert.equal(await response.text(), '');
  });

  test('a reader slower than the events gets them all, in order, as it reads (backpressure)', async (t) => {
    const { herald, GET } = route(t);
    const response = await GET(new Request('http://localhost:3000/api/herald/v1/events?topic=bulk'));
    assert.ok(response.body !== null);
    const body = new BodyReader(response.body);
    await body.until(1);
    const payload = 'x'.repeat(1024);
    const batch = (from: number) =>
      Array.from({ length: 200 }, (_, i) => ({ topic: 'bulk', data: `${from + i} ${payload}` }));
    // 200 KiB in one flush: the stream's 64 KiB queue is full after it ...
    const ids = await herald.publish(batch(0));
    await sleep(50);
    assert.equal((await herald.stats()).outbox.queuedEvents, 0);
    // ... so what follows waits in the hub's outbox until the reader takes some.
    ids.push(...(await herald.publish(batch(200))));
    await sleep(50);
    assert.equal(
      (await herald.stats()).outbox.queuedEvents,
      200,
      'the hub holds events while the stream is full',
    );
    await body.until(1 + ids.length);
    assert.deepEqual(
      body.events.slice(1).map((e) => e.id),
      ids,
    );
    assert.equal((await herald.stats()).outbox.queuedEvents, 0);
    await body.reader.cancel();
    await untilConnections(herald, 0);
  });

  test('a path outside the basePath is not served as a Herald route', async (t) => {
    const { herald, GET } = route(t);
    const response = await GET(new Request('http://localhost:3000/v1/events?topic=orders'));
    await assertProblem(response, 404, 'not-found');
    assert.equal((await herald.stats()).connections.total, 0);
  });
});

describe('an embedded hub without authentication', () => {
  test('answers publishes, stream changes, stats, metrics and the dashboard only on this machine', async (t) => {
    const herald = createHerald({ heartbeatMs: 60_000 });
    t.after(() => herald.close());
    const from = (address: string | undefined) =>
      webHandler(herald, { basePath: '/api/herald', clientAddress: () => address });
    const publish = (address: string | undefined) =>
      from(address)(
        new Request('http://hub.example/api/herald/v1/publish', {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ topic: 'orders', data: 1 }),
        }),
      );
    for (const address of [undefined, '203.0.113.9', '::ffff:10.0.0.1']) {
      const refused = await publish(address);
      const problem = await assertProblem(refused, 403, 'loopback-only');
      assert.match(problem.detail, /open: true/);
      for (const path of ['v1/stats', 'metrics', 'dashboard']) {
        const answer = await from(address)(new Request(`http://hub.example/api/herald/${path}`));
        await assertProblem(answer, 403, 'loopback-only');
      }
      // Anyone may still subscribe, but not as an admin of every tenant.
      const stream = await from(address)(new Request('http://hub.example/api/herald/v1/events?topic=orders'));
      assert.equal(stream.status, 200);
      await stream.body?.cancel();
      const all = await from(address)(
        new Request('http://hub.example/api/herald/v1/events?topic=x&tenant=*'),
      );
      await assertProblem(all, 403, 'tenant-forbidden');
    }
    for (const address of ['127.0.0.1', '::1', '::ffff:127.0.0.1']) {
      assert.equal((await publish(address)).status, 202, address);
    }
  });

  test('open: true lets every client publish; dashboard: false and metrics: false serve neither', async (t) => {
    const herald = createHerald({ heartbeatMs: 60_000, open: true, dashboard: false, metrics: false });
    t.after(() => herald.close());
    const handler = webHandler(herald, { clientAddress: () => '203.0.113.9' });
    const published = await handler(
      new Request('http://hub.example/v1/publish', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ topic: 'orders', data: 1 }),
      }),
    );
    assert.equal(published.status, 202);
    assert.equal((await handler(new Request('http://hub.example/dashboard'))).status, 404);
    assert.equal((await handler(new Request('http://hub.example/metrics'))).status, 404);
    assert.equal((await handler(new Request('http://hub.example/v1/stats'))).status, 200);
  });
});
