import assert from 'node:assert/strict';
import { type IncomingHttpHeaders, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, type TestContext, test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import compression from 'compression';
import express, { type Express } from 'express';
import { createHerald, type Herald } from '../../src/herald.ts';
import { nodeHandler } from '../../src/http/node.ts';
import { sleep } from '../helpers/server.ts';
import { openStream, type SseStream, type StreamOptions } from '../helpers/sse-client.ts';

/** Large enough for compression()'s default 1 KiB threshold. */
const GREETING = 'hello from the host app\n'.repeat(200);

interface Running {
  readonly origin: string;
  /** Opens a stream under /realtime and waits for its `herald.connected` event. */
  subscribe(query: string, options?: StreamOptions): Promise<SseStream>;
}

/** Listens on a free loopback port; the server, its streams and the hub end with the test. */
async function listen(t: TestContext, app: Express, herald: Herald): Promise<Running> {
  const server = await new Promise<Server>((resolve, reject) => {
    const started = app.listen(0, '127.0.0.1', (error?: Error) => (error ? reject(error) : resolve(started)));
  });
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const streams: SseStream[] = [];
  t.after(async () => {
    for (const stream of streams) stream.close();
    await herald.close();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return {
    origin,
    async subscribe(query, options) {
      const stream = await openStream(`${origin}/realtime/v1/events?${query}`, options);
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

/** A GET that does not decode anything, so the test sees the bytes on the wire. */
function get(
  url: string,
  headers: Record<string, string>,
): Promise<{ status: number; headers: IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

function publish(origin: string, body: unknown): Promise<Response> {
  return fetch(`${origin}/realtime/v1/publish`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
}

describe('nodeHandler in Express 5, behind compression()', () => {
  async function start(t: TestContext) {
    const herald = createHerald({ heartbeatMs: 60_000 });
    const app = express();
    app.use(compression());
    app.get('/hello', (_req, res) => {
      res.type('text/plain').send(GREETING);
    });
    app.use('/realtime', nodeHandler(herald));
    app.get('/realtime/custom', (_req, res) => {
      res.json({ from: 'express' });
    });
    return { herald, ...(await listen(t, app, herald)) };
  }

  test("the app's own route still works and is gzip-compressed", async (t) => {
    const { origin } = await start(t);
    const plain = await get(`${origin}/hello`, {});
    assert.equal(plain.status, 200);
    assert.equal(plain.headers['content-encoding'], undefined);
    assert.equal(plain.body.toString('utf8'), GREETING);

    // Proves compression() is really active in this app, so the SSE test below means something.
    const gzipped = await get(`${origin}/hello`, { 'accept-encoding': 'gzip' });
    assert.equal(gzipped.status, 200);
    assert.equal(gzipped.headers['content-encoding'], 'gzip');
    assert.ok(gzipped.body.length < GREETING.length / 4, `${gzipped.body.length} bytes is not compressed`);
    assert.equal(gunzipSync(gzipped.body).toString('utf8'), GREETING);
  });

  test('events arrive one by one through compression(), each while the stream is still open', async (t) => {
    const { herald, subscribe } = await start(t);
    const stream = await subscribe('topic=progress', { headers: { 'accept-encoding': 'gzip' } });
    assert.equal(stream.status, 200);
    // `no-transform` keeps compression() away from the stream: the bytes are plain SSE.
    assert.equal(stream.headers['content-encoding'], undefined);
    assert.equal(stream.headers['content-type'], 'text/event-stream; charset=utf-8');

    for (let i = 0; i < 5; i++) {
      const id = await herald.publish({ topic: 'progress', type: 'step', data: `step ${i}` });
      // A buffering middleware would hold the event indefinitely (until a 16 KiB gzip block fills
      // or the response ends), so each event arriving on its own, before the next is published,
      // proves there is none. No bound on how soon: a busy machine may take a while, a buffer
      // takes forever (the wait is only so long that it cannot be the machine).
      await stream.untilData(i + 1, 20_000);
      assert.equal(stream.ended, false, 'the stream is still open');
      const event = stream.data[i];
      assert.deepEqual([event?.id, event?.type, event?.data], [id, 'step', `step ${i}`]);
      await sleep(50);
      // Exactly one event per publish so far: nothing is held back and released in a batch.
      assert.equal(stream.data.length, i + 1);
    }
  });

  test('an unknown path under the mount falls through to Express', async (t) => {
    const { origin } = await start(t);
    // A route defined after Herald's mount still answers.
    const custom = await fetch(`${origin}/realtime/custom`);
    assert.equal(custom.status, 200);
    assert.deepEqual(await custom.json(), { from: 'express' });
    // Nothing else matches: Express's own 404, not a Herald problem.
    const missing = await fetch(`${origin}/realtime/nope`);
    assert.equal(missing.status, 404);
    assert.match(missing.headers.get('content-type') ?? '', /^text\/html/);
    assert.match(await missing.text(), /Cannot GET \/realtime\/nope/);
    // Herald's own routes under the mount are Herald's.
    const stats = await fetch(`${origin}/realtime/v1/stats`);
    assert.equal(stats.status, 200);
    assert.equal(((await stats.json()) as { connections: { total: number } }).connections.total, 0);
  });
});

describe('nodeHandler in Express 5, behind express.json()', () => {
  async function start(t: TestContext) {
    const herald = createHerald({ heartbeatMs: 60_000, maxBodyBytes: 1024 });
    const app = express();
    // Reads and parses every JSON body before Herald sees the request.
    app.use(express.json());
    app.use('/realtime', nodeHandler(herald));
    return { herald, ...(await listen(t, app, herald)) };
  }

  test('publishes whose body express.json() already parsed are accepted and streamed', async (t) => {
    const { origin, subscribe } = await start(t);
    const stream = await subscribe('topic=orders');

    const single = await publish(origin, {
      topic: 'orders',
      type: 'order.created',
      data: { po: 'PO-1', qty: 2 },
    });
    assert.equal(single.status, 202);
    const { id } = (await single.json()) as { id: string };
    assert.equal(typeof id, 'string');

    const batch = await publish(origin, [
      { topic: 'orders', data: 'Zürich\nline two' },
      { topic: 'orders', data: 'third' },
    ]);
    assert.equal(batch.status, 202);
    const { ids } = (await batch.json()) as { ids: string[] };
    assert.equal(ids.length, 2);

    await stream.untilData(3);
    assert.deepEqual(
      stream.data.map((e) => [e.id, e.type, e.data]),
      [
        [id, 'order.created', '{"po":"PO-1","qty":2}'],
        [ids[0], 'message', 'Zürich\nline two'],
        [ids[1], 'message', 'third'],
      ],
    );
  });

  test("Herald's maxBodyBytes still applies to a body express.json() parsed (its own limit is 100 KiB)", async (t) => {
    const { origin } = await start(t);
    const response = await publish(origin, { topic: 'orders', data: 'x'.repeat(4096) });
    assert.equal(response.status, 413);
    assert.equal(response.headers.get('content-type'), 'application/problem+json; charset=utf-8');
    const problem = (await response.json()) as { detail: string; code: string };
    assert.equal(problem.code, 'body-too-large');
    assert.match(problem.detail, /the limit is 1 KiB/);
  });

  test('a parsed body that breaks a rule still gets a Herald problem', async (t) => {
    const { origin } = await start(t);
    const response = await publish(origin, { data: 'no topic' });
    assert.equal(response.status, 400);
    assert.equal(response.headers.get('content-type'), 'application/problem+json; charset=utf-8');
    const problem = (await response.json()) as { detail: string; code: string };
    assert.equal(typeof problem.code, 'string');
    assert.match(problem.detail, /topic/);
  });
});
