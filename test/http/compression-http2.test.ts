import assert from 'node:assert/strict';
import { createSecureServer } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import zlib from 'node:zlib';
import { createHerald } from '../../src/herald.ts';
import { nodeHandler } from '../../src/http/node.ts';
import { h2connect, h2request } from '../helpers/h2-client.ts';
import { makeCertificate } from '../helpers/tls.ts';

/**
 * HTTP/2 (node:http2's compatibility API through `nodeHandler`): a compressed stream is one
 * HTTP/2 stream of compressed DATA frames, each event decodable as soon as it arrives.
 */
test('HTTP/2: a br stream delivers each event as it is published', async () => {
  const certificate = makeCertificate();
  const herald = createHerald({ compression: true, heartbeatMs: 60_000, open: true });
  const server = createSecureServer(
    { cert: certificate.cert, key: certificate.key, allowHTTP1: true },
    nodeHandler(herald),
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const session = await h2connect(origin, certificate.cert);
  try {
    const stream = session.request({ ':path': '/v1/events?topic=feed', 'accept-encoding': 'br' });
    const headers = await new Promise<Record<string, unknown>>((resolve) => stream.once('response', resolve));
    assert.equal(headers[':status'], 200);
    assert.equal(headers['content-encoding'], 'br');
    assert.equal(headers.vary, 'Accept-Encoding');
    let text = '';
    const decoder = zlib.createBrotliDecompress({ flush: zlib.constants.BROTLI_OPERATION_FLUSH });
    stream.pipe(decoder).on('data', (chunk: Buffer) => {
      text += chunk.toString('utf8');
    });
    // Closing the stream from this side cuts the body short of its end: not a failure of the hub.
    let closing = false;
    let failure: Error | undefined;
    decoder.on('error', (error) => {
      if (!closing) failure = error;
    });
    const until = async (needle: string) => {
      const deadline = Date.now() + 10_000;
      while (!text.includes(needle)) {
        assert.ok(Date.now() < deadline, `no ${needle} in ${JSON.stringify(text)}`);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    };
    await until('event: herald.connected');
    for (let n = 1; n <= 3; n++) {
      const response = await h2request(
        session,
        'POST',
        '/v1/publish',
        { 'content-type': 'application/json' },
        JSON.stringify({ topic: 'feed', type: 'item', data: { n } }),
      );
      assert.equal(response.status, 202);
      await until(`data: {"n":${n}}`);
    }
    assert.equal(failure, undefined);
    closing = true;
    stream.close();
  } finally {
    session.close();
    await herald.close();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});
