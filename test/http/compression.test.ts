import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { HeraldMessage } from '../../src/client/api.ts';
import { createClient } from '../../src/client/index.ts';
import { awakeCompressors, restIdleCompressors } from '../../src/http/compression.ts';
import { CONTENT_CODINGS } from '../../src/http/content-coding.ts';
import {
  assertCompressedHeaders,
  type CompressedStream,
  eventFrames,
  openCompressedStream,
} from '../helpers/compressed-stream.ts';
import { sleep, startHub, startServe, type TestHub } from '../helpers/server.ts';

/**
 * Compressed event streams on node:http (`herald serve` and `nodeHandler`): what a client that
 * sends `Accept-Encoding` reads, decompressed as it arrives, is the uncompressed stream's frames,
 * each event as soon as it is published.
 */

const JSON_EVENT = (n: number) => ({
  topic: 'orders/42',
  type: 'order.updated',
  data: { orderId: 'ord_42', status: n % 2 === 0 ? 'paid' : 'shipped', total: 10 + n, n },
});

async function withHub(options: Parameters<typeof startHub>[0], run: (hub: TestHub) => Promise<void>) {
  const hub = await startHub(options);
  const streams: CompressedStream[] = [];
  try {
    await run(hub);
  } finally {
    for (const stream of streams) stream.close();
    await hub.close();
  }
}

/** Opens a stream and waits for its `herald.connected`. */
async function connected(hub: TestHub, query: string, acceptEncoding?: string): Promise<CompressedStream> {
  const stream = await openCompressedStream(
    `${hub.url}/v1/events?${query}`,
    acceptEncoding === undefined ? {} : { 'accept-encoding': acceptEncoding },
  );
  assert.equal(stream.status, 200);
  await stream.until((frames) => eventFrames(frames, 'herald.connected').length === 1, 'herald.connected');
  return stream;
}

describe('compressed streams (node:http)', () => {
  for (const coding of CONTENT_CODINGS) {
    test(`${coding}: each event arrives before the next is published, the same frames as uncompressed`, async () => {
      await withHub({ compression: true, heartbeatMs: 60_000 }, async (hub) => {
        const compressed = await connected(hub, 'topic=orders/42', coding);
        const plain = await connected(hub, 'topic=orders/42');
        try {
          assertCompressedHeaders(compressed.headers, coding);
          assertCompressedHeaders(plain.headers, undefined);
          for (let n = 1; n <= 5; n++) {
            const published = await hub.publish(JSON_EVENT(n));
            assert.equal(published.status, 202);
            // Flushed with the write: no later event is needed to push this one out.
            await compressed.until(
              (frames) => eventFrames(frames, 'order.updated').length === n,
              `event ${n} on the ${coding} stream`,
              15_000,
            );
            await plain.until((frames) => eventFrames(frames, 'order.updated').length === n, `event ${n}`);
          }
          assert.deepEqual(
            eventFrames(compressed.frames, 'order.updated'),
            eventFrames(plain.frames, 'order.updated'),
          );
          // A burst goes out as one flushed piece, and still arrives whole.
          const burst = await fetch(`${hub.url}/v1/publish`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify(Array.from({ length: 50 }, (_, i) => JSON_EVENT(100 + i))),
          });
          assert.equal(burst.status, 202);
          await compressed.until((frames) => eventFrames(frames, 'order.updated').length === 55, 'the burst');
          await plain.until((frames) => eventFrames(frames, 'order.updated').length === 55, 'the burst');
          assert.deepEqual(
            eventFrames(compressed.frames, 'order.updated'),
            eventFrames(plain.frames, 'order.updated'),
          );
          assert.ok(
            compressed.wireBytes() < plain.wireBytes(),
            `${coding}: ${compressed.wireBytes()} bytes on the wire, uncompressed ${plain.wireBytes()}`,
          );
        } finally {
          compressed.close();
          plain.close();
        }
      });
    });
  }

  test('heartbeats are flushed too, and a closing hub ends the stream with a valid trailer', async () => {
    const hub = await startHub({ compression: ['gzip'], heartbeatMs: 50 });
    let stream: CompressedStream | undefined;
    try {
      stream = await connected(hub, 'topic=quiet', 'gzip');
      await stream.until(
        (frames) => frames.some((frame) => frame.startsWith(':')),
        'a heartbeat comment with no event published',
      );
    } finally {
      await hub.close();
    }
    // herald.close() ends every stream after a retry hint: the gzip member is finished, CRC and all.
    await stream.ended;
    assert.ok(
      stream.frames.some((frame) => frame.startsWith('retry:')),
      'the retry hint came before the end',
    );
  });

  for (const coding of ['gzip', 'deflate'] as const) {
    test(`${coding}: an idle stream frees its compressor, the next event wakes a fresh one, the body stays one valid ${coding}`, async () => {
      const hub = await startHub({ compression: true, heartbeatMs: 50 });
      let compressed: CompressedStream | undefined;
      let plain: CompressedStream | undefined;
      try {
        compressed = await connected(hub, 'topic=orders/42', coding);
        plain = await connected(hub, 'topic=orders/42');
        assert.equal(awakeCompressors(), 0, 'an idle stream has no compressor: herald.connected went stored');
        await hub.publish(JSON_EVENT(1));
        await compressed.until((frames) => eventFrames(frames, 'order.updated').length === 1, 'event 1');
        assert.equal(awakeCompressors(), 1, 'a second write within 10 s: the stream is busy');
        // Two sweeps: the first sees the event, the second finds nothing since and frees it.
        restIdleCompressors();
        restIdleCompressors();
        assert.equal(awakeCompressors(), 0, 'the compressor rests');
        // Heartbeats go out while it rests (stored, uncompressed), without waking it.
        const beats = compressed.frames.filter((frame) => frame.startsWith(':')).length;
        await compressed.until(
          (frames) => frames.filter((frame) => frame.startsWith(':')).length >= beats + 2,
          'heartbeats while resting',
        );
        assert.equal(awakeCompressors(), 0, 'heartbeats do not wake it');
        for (let n = 2; n <= 3; n++) {
          await hub.publish(JSON_EVENT(n));
          await compressed.until((frames) => eventFrames(frames, 'order.updated').length === n, `event ${n}`);
        }
        assert.equal(awakeCompressors(), 1, 'the next event woke a fresh compressor');
        await plain.until((frames) => eventFrames(frames, 'order.updated').length === 3, 'the plain stream');
        assert.deepEqual(
          eventFrames(compressed.frames, 'order.updated'),
          eventFrames(plain.frames, 'order.updated'),
        );
      } finally {
        await hub.close();
      }
      // The trailer's checksum and length cover everything both compressors and the stored
      // heartbeats carried: the decoder accepts the end.
      await compressed?.ended;
      assert.equal(awakeCompressors(), 0, 'released with the stream');
    });
  }

  test('q=0, unknown codings and no header: identity, with Vary', async () => {
    await withHub({ compression: true }, async (hub) => {
      const cases: [string | undefined, string | undefined][] = [
        [undefined, undefined],
        ['gzip;q=0, deflate;q=0, br;q=0', undefined],
        ['zstd, compress', undefined],
        ['*;q=0', undefined],
        ['identity;q=0', undefined],
        [';;, ,q=1;', undefined],
        ['gzip;q=0, *', 'deflate'],
        ['br;q=0.5, gzip;q=0', 'br'],
        ['GZIP;Q=0.1', 'gzip'],
        ['x-gzip', 'gzip'],
        // The server's order, whatever the client prefers above 0.
        ['br;q=1, gzip;q=0.2', 'gzip'],
        ['*', 'gzip'],
      ];
      for (const [accept, expected] of cases) {
        const stream = await connected(hub, 'topic=a', accept);
        try {
          assertCompressedHeaders(stream.headers, expected);
          await hub.publish({ topic: 'a', type: 'ping', data: { accept: accept ?? null } });
          await stream.until((frames) => eventFrames(frames, 'ping').length === 1, `the event (${accept})`);
        } finally {
          stream.close();
        }
      }
    });
  });

  test('compression off (the default): identity even when asked, and no Vary', async () => {
    await withHub({}, async (hub) => {
      const stream = await connected(hub, 'topic=a', 'gzip, deflate, br');
      try {
        assert.equal(stream.headers['content-encoding'], undefined);
        assert.equal(stream.headers.vary, undefined);
      } finally {
        stream.close();
      }
    });
  });

  test('a list offers only its codings, in its order', async () => {
    await withHub({ compression: ['br', 'gzip'] }, async (hub) => {
      const both = await connected(hub, 'topic=a', 'gzip, br');
      const deflateOnly = await connected(hub, 'topic=a', 'deflate');
      try {
        assertCompressedHeaders(both.headers, 'br');
        assertCompressedHeaders(deflateOnly.headers, undefined);
      } finally {
        both.close();
        deflateOnly.close();
      }
    });
    await assert.rejects(
      () => startHub({ compression: ['zstd' as 'gzip'] }),
      /"zstd" is not a content coding Herald sends; use gzip, deflate, br/,
    );
  });

  test('resume: a compressed stream with Last-Event-ID gets what it missed, then live events', async () => {
    await withHub({ compression: true }, async (hub) => {
      const first = await hub.publish(JSON_EVENT(1));
      const missed = [];
      for (let n = 2; n <= 4; n++) missed.push(await hub.publish(JSON_EVENT(n)));
      const stream = await openCompressedStream(`${hub.url}/v1/events?topic=orders/42`, {
        'accept-encoding': 'br',
        'last-event-id': String(first.body.id),
      });
      try {
        assertCompressedHeaders(stream.headers, 'br');
        await stream.until((frames) => eventFrames(frames, 'order.updated').length === 3, 'the replay');
        await hub.publish(JSON_EVENT(5));
        await stream.until((frames) => eventFrames(frames, 'order.updated').length === 4, 'the live event');
        const ids = eventFrames(stream.frames, 'order.updated').map((frame) => frame.split('\n')[0]);
        assert.deepEqual(
          ids.slice(0, 3),
          missed.map((m) => `id: ${m.body.id}`),
        );
      } finally {
        stream.close();
      }
    });
  });

  test('Mercure subscribers are compressed the same way', async () => {
    await withHub({ compression: true }, async (hub) => {
      const stream = await openCompressedStream(`${hub.url}/.well-known/mercure?topic=orders/42`, {
        'accept-encoding': 'deflate',
      });
      try {
        assert.equal(stream.status, 200);
        assertCompressedHeaders(stream.headers, 'deflate');
        await sleep(50);
        await hub.publish(JSON_EVENT(1));
        await stream.until(
          (frames) => frames.some((frame) => frame.includes('"orderId":"ord_42"')),
          'the update',
        );
      } finally {
        stream.close();
      }
    });
  });

  test('herald serve --compression on: the Herald client in Node (fetch decompresses) gets every event', async () => {
    const hub = await startServe({ compression: 'on', heartbeat: '60s' });
    const encodings: (string | undefined)[] = [];
    // Records what the hub answered the client's stream with before fetch decodes it.
    const recordingFetch: typeof fetch = async (input, init) => {
      const response = await fetch(input, init);
      if (String(input).includes('/v1/events'))
        encodings.push(response.headers.get('content-encoding') ?? undefined);
      return response;
    };
    const client = createClient({ url: hub.url, topics: ['orders/42'], fetch: recordingFetch });
    const received: HeraldMessage[] = [];
    client.on('order.updated', (message) => {
      received.push(message);
    });
    try {
      const deadline = Date.now() + 10_000;
      while (client.status !== 'open') {
        assert.ok(Date.now() < deadline, `the client did not open: ${client.status}`);
        await sleep(20);
      }
      for (let n = 1; n <= 3; n++) {
        await hub.publish(JSON_EVENT(n));
        while (received.length < n) {
          assert.ok(Date.now() < deadline + 10_000, `event ${n} did not arrive`);
          await sleep(10);
        }
      }
      assert.deepEqual(
        received.map((message) => (message.data as { n: number }).n),
        [1, 2, 3],
      );
      // Node's fetch asks for gzip, deflate and br; the hub prefers gzip.
      assert.equal(encodings[0], 'gzip');
    } finally {
      client.close();
      await hub.close();
    }
  });

  test('herald serve refuses a coding it does not send, naming the ones it does', async () => {
    await assert.rejects(
      () => startServe({ compression: 'gzip,zstd' }),
      /"zstd" is not a coding Herald sends/,
    );
  });
});
