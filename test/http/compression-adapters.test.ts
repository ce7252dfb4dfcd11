import assert from 'node:assert/strict';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, type TestContext, test } from 'node:test';
import { serve } from '@hono/node-server';
import Fastify from 'fastify';
import { Hono } from 'hono';
import { createHerald, type HeraldOptions } from '../../src/herald.ts';
import type { CompressionOption } from '../../src/http/compression.ts';
import { heraldFastify } from '../../src/http/fastify.ts';
import { eventsHandler, webHandler } from '../../src/http/web.ts';
import {
  assertCompressedHeaders,
  type CompressedStream,
  eventFrames,
  openCompressedStream,
} from '../helpers/compressed-stream.ts';

/**
 * Compression in the other adapters: the web one (Request → Response with a ReadableStream, here
 * under Hono on @hono/node-server, as a Next.js route handler runs it) and the Fastify plugin; each
 * takes its own `compression` option, which wins over the hub's.
 */

async function publish(origin: string, n: number): Promise<void> {
  const response = await fetch(`${origin}/v1/publish`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ topic: 'feed', type: 'item', data: { n, title: `item number ${n}` } }),
  });
  assert.equal(response.status, 202, await response.text());
}

/** Hono serving Herald's web handler at the root, and `eventsHandler` at /events. */
async function startWeb(t: TestContext, herald: HeraldOptions, adapter?: CompressionOption): Promise<string> {
  // A web Request carries no peer address: open, so this test may publish through it.
  const hub = createHerald({ heartbeatMs: 60_000, open: true, ...herald });
  const options = adapter === undefined ? {} : { compression: adapter };
  const handler = webHandler(hub, options);
  const events = eventsHandler(hub, options);
  const app = new Hono();
  app.get('/events', (c) => events(c.req.raw));
  app.all('/*', (c) => handler(c.req.raw));
  let server: Server | undefined;
  const port = await new Promise<number>((resolve) => {
    server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, (info: AddressInfo) =>
      resolve(info.port),
    ) as Server;
  });
  t.after(async () => {
    await hub.close();
    server?.closeAllConnections();
    await new Promise<void>((resolve) => server?.close(() => resolve()));
  });
  return `http://127.0.0.1:${port}`;
}

async function readLive(origin: string, path: string, coding: string | undefined, asked: string) {
  const stream = await openCompressedStream(`${origin}${path}`, { 'accept-encoding': asked });
  try {
    assert.equal(stream.status, 200);
    assertCompressedHeaders(stream.headers, coding);
    await stream.until((frames) => eventFrames(frames, 'herald.connected').length === 1, 'herald.connected');
    for (let n = 1; n <= 3; n++) {
      await publish(origin, n);
      await stream.until((frames) => eventFrames(frames, 'item').length === n, `event ${n} (${coding})`);
    }
    assert.match(eventFrames(stream.frames, 'item')[2] as string, /data: \{"n":3,"title":"item number 3"\}$/);
    return stream;
  } finally {
    stream.close();
  }
}

describe('compressed streams in the web adapter and the Fastify plugin', () => {
  test('web adapter: gzip, deflate and br streams decompress to the events as they are published', async (t) => {
    const origin = await startWeb(t, { compression: true });
    for (const coding of ['gzip', 'deflate', 'br'] as const) {
      await readLive(origin, '/v1/events?topic=feed', coding, coding);
    }
    // eventsHandler, the route of its own: the same.
    await readLive(origin, '/events?topic=feed', 'gzip', 'gzip, deflate, br');
  });

  test('web adapter: a client that refuses every coding gets identity', async (t) => {
    const origin = await startWeb(t, { compression: true });
    await readLive(origin, '/v1/events?topic=feed', undefined, 'gzip;q=0, br;q=0, deflate;q=0');
  });

  test("web adapter: its own option wins over the hub's, both ways", async (t) => {
    const off = await startWeb(t, { compression: true }, false);
    const stream = await openCompressedStream(`${off}/v1/events?topic=feed`, { 'accept-encoding': 'gzip' });
    try {
      assert.equal(stream.headers['content-encoding'], undefined);
    } finally {
      stream.close();
    }
    const on = await startWeb(t, {}, ['br']);
    await readLive(on, '/v1/events?topic=feed', 'br', 'gzip, br');
  });

  test('web adapter: a client that goes away mid-stream leaves a hub that serves the next one', async (t) => {
    const origin = await startWeb(t, { compression: true });
    const streams: CompressedStream[] = [];
    for (let i = 0; i < 5; i++) {
      const stream = await openCompressedStream(`${origin}/v1/events?topic=feed`, {
        'accept-encoding': 'gzip',
      });
      await stream.until(
        (frames) => eventFrames(frames, 'herald.connected').length === 1,
        'herald.connected',
      );
      streams.push(stream);
    }
    for (const stream of streams) stream.close();
    await readLive(origin, '/v1/events?topic=feed', 'gzip', 'gzip');
  });

  test('Fastify plugin: compression from its options', async (t) => {
    const herald = createHerald({ heartbeatMs: 60_000 });
    const app = Fastify();
    await app.register(heraldFastify, { herald, compression: ['deflate'] });
    await app.listen({ port: 0, host: '127.0.0.1' });
    t.after(async () => {
      await app.close();
      await herald.close();
    });
    const address = app.server.address() as AddressInfo;
    await readLive(`http://127.0.0.1:${address.port}`, '/v1/events?topic=feed', 'deflate', 'br, deflate');
  });
});
