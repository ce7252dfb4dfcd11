import assert from 'node:assert/strict';
import { describe, type TestContext, test } from 'node:test';
import Fastify from 'fastify';
import { createHerald, type HeraldOptions } from '../../src/herald.ts';
import { heraldFastify } from '../../src/http/fastify.ts';
import { sleep } from '../helpers/server.ts';
import { openStream, type SseStream } from '../helpers/sse-client.ts';

const MAX_BODY_BYTES = 1024;

/** Fastify with Herald under /realtime and a JSON route of its own, on a free loopback port. */
async function start(t: TestContext, options: HeraldOptions = {}) {
  const herald = createHerald({ heartbeatMs: 60_000, maxBodyBytes: MAX_BODY_BYTES, ...options });
  const app = Fastify();
  // What @fastify/cors does: headers on the reply, set before the route runs.
  app.addHook('onRequest', async (_request, reply) => {
    reply.header('access-control-allow-origin', 'https://app.example');
  });
  await app.register(heraldFastify, { herald, prefix: '/realtime' });
  app.post('/echo', async (request) => ({ received: request.body }));
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();
  assert.ok(address !== null && typeof address === 'object');
  const origin = `http://127.0.0.1:${address.port}`;
  const streams: SseStream[] = [];
  t.after(async () => {
    for (const stream of streams) stream.close();
    await app.close();
    await herald.close();
  });
  return {
    herald,
    app,
    origin,
    /** Opens a stream under /realtime and waits for its `herald.connected` event. */
    async subscribe(query: string) {
      const stream = await openStream(`${origin}/realtime/v1/events?${query}`);
      streams.push(stream);
      await stream.until(
        (s) => s.events.some((e) => e.type === 'herald.connected'),
        5000,
        'herald.connected',
      );
      return stream;
    },
    publish(body: string, headers: Record<string, string> = { 'content-type': 'application/json' }) {
      return fetch(`${origin}/realtime/v1/publish`, { method: 'POST', headers, body });
    },
  };
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

describe('heraldFastify plugin in Fastify 5, registered with prefix /realtime', () => {
  test('a stream receives events published over HTTP and in-process', async (t) => {
    const { herald, subscribe, publish } = await start(t);
    const stream = await subscribe('topic=orders');
    assert.equal(stream.status, 200);
    assert.equal(stream.headers['content-type'], 'text/event-stream; charset=utf-8');
    assert.equal(stream.headers['cache-control'], 'no-cache, no-transform');

    const response = await publish(
      JSON.stringify({ topic: 'orders', type: 'order.created', data: { po: 'PO-1' } }),
    );
    assert.equal(response.status, 202);
    const { id } = (await response.json()) as { id: string };
    const inProcessId = await herald.publish({ topic: 'orders', data: 'Zürich · 東京\nsecond line' });

    await stream.untilData(2);
    assert.deepEqual(
      stream.data.map((e) => [e.id, e.type, e.data]),
      [
        [id, 'order.created', '{"po":"PO-1"}'],
        [inProcessId, 'message', 'Zürich · 東京\nsecond line'],
      ],
    );
  });

  test('headers set by Fastify hooks (CORS) reach the stream and the problem responses', async (t) => {
    const { subscribe, publish } = await start(t);
    const stream = await subscribe('topic=orders');
    assert.equal(stream.headers['access-control-allow-origin'], 'https://app.example');
    assert.equal(stream.headers['content-type'], 'text/event-stream; charset=utf-8');
    const problem = await publish('nope');
    assert.equal(problem.headers.get('access-control-allow-origin'), 'https://app.example');
    await assertProblem(problem, 400, 'malformed-json');
  });

  test("the app's own JSON route still parses JSON: the plugin's parsers stay inside the plugin", async (t) => {
    const { origin } = await start(t);
    const response = await fetch(`${origin}/echo`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ hello: 'world', n: 1 }),
    });
    assert.equal(response.status, 200);
    assert.deepEqual(await response.json(), { received: { hello: 'world', n: 1 } });
    // Fastify's own 415 for a type it has no parser for, outside the plugin.
    const unknownType = await fetch(`${origin}/echo`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-unknown' },
      body: 'x',
    });
    assert.equal(unknownType.status, 415);
  });

  test('malformed JSON gets a 400 problem with code malformed-json', async (t) => {
    const { publish } = await start(t);
    const problem = await assertProblem(await publish('{"topic": "orders", "data": '), 400, 'malformed-json');
    assert.match(problem.detail, /not valid JSON/);
  });

  test('a publish that is not JSON gets a 415 problem from Herald, not from Fastify', async (t) => {
    const { publish } = await start(t);
    await assertProblem(
      await publish('topic=orders', { 'content-type': 'text/plain' }),
      415,
      'unsupported-media-type',
    );
    await assertProblem(await publish('{}', {}), 415, 'unsupported-media-type');
  });

  test('a body over maxBodyBytes gets a 413 problem', async (t) => {
    const { origin, publish, subscribe } = await start(t);
    const stream = await subscribe('topic=orders');
    const big = JSON.stringify({ topic: 'orders', data: 'x'.repeat(MAX_BODY_BYTES * 4) });
    const problem = await assertProblem(await publish(big), 413, 'body-too-large');
    assert.match(problem.detail, /the limit is 1 KiB/);
    // The same limit on a chunked body, whose size is only known while reading it.
    const chunked = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode(big));
        controller.close();
      },
    });
    const response = await fetch(`${origin}/realtime/v1/publish`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: chunked,
      duplex: 'half',
    } as RequestInit);
    await assertProblem(response, 413, 'body-too-large');
    // A refused publish never touches another connection.
    await sleep(50);
    assert.equal(stream.ended, false);
    assert.equal(stream.data.length, 0);
  });

  test('an unknown path under the prefix gets a 404 problem, and other paths stay Fastify’s', async (t) => {
    const { origin } = await start(t);
    await assertProblem(await fetch(`${origin}/realtime/v1/nope`), 404, 'not-found');
    const health = await fetch(`${origin}/realtime/healthz`);
    assert.equal(health.status, 200);
    assert.deepEqual(await health.json(), { status: 'ok' });
    const outside = await fetch(`${origin}/nope`);
    assert.equal(outside.status, 404);
    assert.equal(((await outside.json()) as { error: string }).error, 'Not Found');
  });

  test('fastify.close() ends open streams with a retry hint instead of waiting for them forever', async (t) => {
    const { herald, app, subscribe } = await start(t);
    const stream = await subscribe('topic=orders');
    let timer: ReturnType<typeof setTimeout> | undefined;
    const outcome = await Promise.race([
      app.close().then(() => 'closed'),
      new Promise((resolve) => {
        timer = setTimeout(() => resolve('still waiting after 5 s'), 5000);
      }),
    ]);
    clearTimeout(timer);
    assert.equal(outcome, 'closed');
    await stream.untilEnded();
    // The goodbye is a retry hint between 1× and 2× retryMs, so clients come back spread out.
    assert.match(stream.raw, /\nretry: \d+\n\n$/);
    assert.ok((stream.retry ?? 0) >= 1000 && (stream.retry ?? 0) <= 2000);
    const stats = await herald.stats();
    assert.equal(stats.connections.total, 0);
    assert.equal(stats.events.closed.shutdown, 1);
    // The hub is the caller's and keeps running.
    assert.equal(typeof (await herald.publish({ topic: 'orders', data: 'still up' })), 'string');
  });

  test('when the client disconnects, the hub forgets the stream', async (t) => {
    const { herald, subscribe } = await start(t);
    const stream = await subscribe('topic=orders');
    assert.equal((await herald.stats()).connections.total, 1);
    stream.close();
    const deadline = Date.now() + 5000;
    while ((await herald.stats()).connections.total !== 0) {
      assert.ok(Date.now() < deadline, 'the stream is still counted 5 s after its client left');
      await sleep(20);
    }
  });
});
