import assert from 'node:assert/strict';
import { type ClientHttp2Session, createSecureServer, constants as h2 } from 'node:http2';
import { request as httpsRequest, type RequestOptions } from 'node:https';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { type TLSSocket, connect as tlsConnect } from 'node:tls';
import { createHerald } from '../../src/herald.ts';
import { nodeHandler } from '../../src/http/node.ts';
import { resolveConfig } from '../../src/server/config.ts';
import { type RunningServer, serve } from '../../src/server/serve.ts';
import {
  type H2Response,
  H2SseStream,
  h2connect,
  h2request,
  type ResponseHeaders,
} from '../helpers/h2-client.ts';
import { spawnHub } from '../helpers/nodes.ts';
import { sleep } from '../helpers/server.ts';
import { makeCertificate, type TestCertificate } from '../helpers/tls.ts';

const CONNECTION_SPECIFIC = ['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade'];
const JSON_HEADERS = { 'content-type': 'application/json' };

function assertNoConnectionHeaders(headers: ResponseHeaders, what: string): void {
  for (const name of CONNECTION_SPECIFIC) {
    assert.equal(headers[name], undefined, `${what}: HTTP/2 response has a ${name} header`);
  }
}

async function statsOf(session: ClientHttp2Session) {
  const response = await h2request(session, 'GET', '/v1/stats');
  assert.equal(response.status, 200);
  return response.json() as {
    connections: { total: number; byTopic: Record<string, number> };
    events: { closed: Record<string, number> };
  };
}

async function eventually(check: () => Promise<boolean>, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`not within ${timeoutMs} ms: ${what}`);
    await sleep(20);
  }
}

const publish = (session: ClientHttp2Session, body: unknown) =>
  h2request(session, 'POST', '/v1/publish', JSON_HEADERS, JSON.stringify(body));

describe('HTTP/2 with --tls-cert and --tls-key', () => {
  let cert: TestCertificate;
  let running: RunningServer;
  let origin: string;
  const sessions: ClientHttp2Session[] = [];
  const warnings: Error[] = [];
  const onWarning = (warning: Error) => warnings.push(warning);

  const session = async () => {
    const opened = await h2connect(origin, cert.cert);
    sessions.push(opened);
    return opened;
  };
  const open = async (s: ClientHttp2Session, query: string, headers: Record<string, string> = {}) => {
    const stream = new H2SseStream(s, `/v1/events?${query}`, headers);
    await stream.opened;
    await stream.untilConnected();
    return stream;
  };

  before(async () => {
    cert = makeCertificate();
    process.on('warning', onWarning);
    running = await serve(
      resolveConfig(
        {
          port: 0,
          tlsCert: cert.certFile,
          tlsKey: cert.keyFile,
          heartbeat: '200ms',
          maxBodySize: '4KiB',
          corsOrigin: ['https://app.example'],
        },
        {},
      ),
    );
    origin = running.url;
  });

  after(async () => {
    process.off('warning', onWarning);
    for (const s of sessions) s.destroy();
    await running.close();
    cert.remove();
  });

  test('listens on https and speaks HTTP/2 when the client offers it', async () => {
    assert.match(origin, /^https:\/\/127\.0\.0\.1:\d+$/);
    const s = await session();
    assert.equal(s.alpnProtocol, 'h2');
    const health = await h2request(s, 'GET', '/healthz');
    assert.equal(health.status, 200);
    assert.deepEqual(health.json(), { status: 'ok' });
  });

  test('20 streams on one HTTP/2 session all receive what is published over HTTP/2', async () => {
    const s = await session();
    const streams = await Promise.all(Array.from({ length: 20 }, () => open(s, 'topic=fan/{id}')));
    // One TCP connection carries them all (this and the session of any earlier test).
    const connections = await new Promise<number>((resolve, reject) =>
      running.server.getConnections((error, count) => (error ? reject(error) : resolve(count))),
    );
    assert.ok(connections <= sessions.length, `${connections} connections for ${sessions.length} sessions`);
    for (const stream of streams) {
      assert.equal(stream.headers[':status'], 200);
      assert.equal(stream.headers['content-type'], 'text/event-stream; charset=utf-8');
      assertNoConnectionHeaders(stream.headers, 'event stream');
    }
    assert.equal((await statsOf(s)).connections.byTopic['fan/{id}'], 20);
    const single = await publish(s, { topic: 'fan/1', type: 'score', data: { n: 0 } });
    assert.equal(single.status, 202);
    const batch = await publish(
      s,
      [1, 2, 3, 4].map((n) => ({ topic: `fan/${n}`, type: 'score', data: { n } })),
    );
    assert.equal(batch.status, 202);
    const ids = [single.json().id, ...(batch.json().ids as string[])];
    await Promise.all(streams.map((stream) => stream.untilData(5)));
    for (const stream of streams) {
      assert.deepEqual(
        stream.data.map((event) => event.id),
        ids,
      );
      assert.deepEqual(
        stream.data.map((event) => JSON.parse(event.data).n),
        [0, 1, 2, 3, 4],
      );
    }
    for (const stream of streams) stream.close();
  });

  test('no connection-specific header on any kind of HTTP/2 response, and no warning', async () => {
    const s = await session();
    const checks: [string, Promise<H2Response>, number][] = [
      ['health JSON', h2request(s, 'GET', '/healthz'), 200],
      ['readiness JSON', h2request(s, 'GET', '/readyz'), 200],
      ['stats JSON', h2request(s, 'GET', '/v1/stats'), 200],
      ['publish 202', publish(s, { topic: 'kinds', data: 1 }), 202],
      ['long poll', h2request(s, 'GET', '/v1/events/poll?topic=kinds&wait=0'), 200],
      ['HEAD', h2request(s, 'HEAD', '/healthz'), 200],
      ['404 problem', h2request(s, 'GET', '/nowhere'), 404],
      ['405 problem with Allow', h2request(s, 'DELETE', '/v1/publish'), 405],
      ['400 problem', h2request(s, 'GET', '/v1/events'), 400],
      ['415 problem', h2request(s, 'POST', '/v1/publish', { 'content-type': 'text/plain' }, 'x'), 415],
      ['400 malformed JSON', h2request(s, 'POST', '/v1/publish', JSON_HEADERS, '{'), 400],
      // Answered with `connection: close` on HTTP/1.1, since the rest of the body is never read.
      [
        '413 problem',
        h2request(
          s,
          'POST',
          '/v1/publish',
          JSON_HEADERS,
          JSON.stringify({ topic: 't', data: 'x'.repeat(8192) }),
        ),
        413,
      ],
      [
        'CORS preflight',
        h2request(s, 'OPTIONS', '/v1/publish', {
          origin: 'https://app.example',
          'access-control-request-method': 'POST',
          'access-control-request-headers': 'content-type',
        }),
        204,
      ],
      ['plain OPTIONS', h2request(s, 'OPTIONS', '/v1/events'), 204],
    ];
    for (const [what, answer, status] of checks) {
      const response = await answer;
      assert.equal(response.status, status, `${what}: ${response.text}`);
      assertNoConnectionHeaders(response.headers, what);
      if (status >= 400) {
        assert.equal(response.headers['content-type'], 'application/problem+json; charset=utf-8', what);
        assert.equal(response.json().status, status, what);
      }
    }
    const preflight = await h2request(s, 'OPTIONS', '/v1/publish', {
      origin: 'https://app.example',
      'access-control-request-method': 'POST',
    });
    assert.equal(preflight.headers['access-control-allow-origin'], 'https://app.example');
    assert.equal((await h2request(s, 'DELETE', '/v1/publish')).headers.allow, 'POST');
    // The session survived every one of them.
    assert.equal((await h2request(s, 'GET', '/healthz')).status, 200);
    const http2Warnings = warnings.filter((warning) => /header|http2/i.test(warning.message));
    assert.deepEqual(
      http2Warnings.map((warning) => warning.message),
      [],
    );
  });

  test('an HTTP/1.1 client (ALPN http/1.1) streams and publishes on the same port', async () => {
    const { port } = new URL(origin);
    const call = (method: string, path: string, body?: string) =>
      new Promise<{ status: number; headers: Record<string, unknown>; socket: TLSSocket; body: string }>(
        (resolve, reject) => {
          const req = httpsRequest(
            {
              host: '127.0.0.1',
              port,
              method,
              path,
              ca: cert.cert,
              // Passed on to tls.connect, though https' types leave it out.
              ALPNProtocols: ['http/1.1'],
              agent: false,
              headers: body ? JSON_HEADERS : { accept: 'text/event-stream' },
            } as RequestOptions,
            (res) => {
              let text = '';
              res.setEncoding('utf8');
              const answer = () =>
                resolve({
                  status: res.statusCode ?? 0,
                  headers: res.headers,
                  socket: res.socket as TLSSocket,
                  body: text,
                });
              res.on('data', (chunk: string) => {
                text += chunk;
                if (method === 'GET' && text.includes('event: hello')) {
                  answer();
                  req.destroy();
                }
              });
              res.on('end', answer);
            },
          );
          req.on('error', reject);
          req.end(body);
        },
      );
    const streaming = call('GET', '/v1/events?topic=h1');
    const s = await session();
    await eventually(
      async () => (await statsOf(s)).connections.byTopic.h1 === 1,
      'the HTTP/1.1 stream to open',
    );
    const published = await call(
      'POST',
      '/v1/publish',
      JSON.stringify({ topic: 'h1', type: 'hello', data: 'hi' }),
    );
    assert.equal(published.status, 202);
    assert.equal(published.socket.alpnProtocol, 'http/1.1');
    const stream = await streaming;
    assert.equal(stream.status, 200);
    assert.equal(stream.headers.connection, 'keep-alive');
    assert.equal(stream.socket.alpnProtocol, 'http/1.1');
    assert.match(stream.body, /event: hello\ndata: hi\n/);
  });

  test('a long subscription URL fits on HTTP/2 and on the HTTP/1.1 fallback; malformed HTTP/1.1 gets a problem', async () => {
    const topics = Array.from(
      { length: 50 },
      (_, i) => `topic=${String(i).padStart(4, '0')}${'a'.repeat(990)}`,
    );
    const s = await session();
    const long = await h2request(s, 'GET', `/v1/events/poll?wait=0&${topics.join('&')}`);
    assert.equal(long.status, 200, long.text);
    const { port } = new URL(origin);
    const raw = (payload: string) =>
      new Promise<string>((resolve, reject) => {
        const socket = tlsConnect(
          {
            host: '127.0.0.1',
            port: Number(port),
            ca: cert.cert,
            servername: 'localhost',
            ALPNProtocols: ['http/1.1'],
          },
          () => socket.end(payload),
        );
        let text = '';
        socket.setEncoding('utf8');
        socket.on('data', (chunk: string) => {
          text += chunk;
        });
        socket.on('close', () => resolve(text));
        socket.on('error', reject);
      });
    const fits = await raw(
      `GET /v1/events/poll?wait=0&${topics.join('&')} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n`,
    );
    assert.match(fits, /^HTTP\/1\.1 200 /);
    const tooLong = await raw(`GET /v1/events?topic=${'a'.repeat(140_000)} HTTP/1.1\r\nhost: x\r\n\r\n`);
    assert.match(tooLong, /^HTTP\/1\.1 431 [\s\S]*application\/problem\+json[\s\S]*over 128 KiB/);
    const garbage = await raw('NOT HTTP\r\n\r\n');
    assert.match(garbage, /^HTTP\/1\.1 400 [\s\S]*"code":"bad-http"/);
  });

  test('closing one stream leaves the others on the session working, and the hub sees it go', async () => {
    const s = await session();
    const [first, second, third] = await Promise.all([1, 2, 3].map(() => open(s, 'topic=close-one')));
    assert.ok(first && second && third);
    const earlier = await statsOf(s);
    assert.equal(earlier.connections.byTopic['close-one'], 3);
    second.close();
    await eventually(
      async () => (await statsOf(s)).connections.byTopic['close-one'] === 2,
      'the hub to see the reset stream go',
    );
    const now = await statsOf(s);
    assert.equal(now.events.closed.client, (earlier.events.closed.client ?? 0) + 1);
    await publish(s, { topic: 'close-one', data: 'after' });
    await Promise.all([first.untilData(1), third.untilData(1)]);
    assert.equal(first.data[0]?.data, 'after');
    assert.equal(third.data[0]?.data, 'after');
    assert.equal(second.data.length, 0);
    assert.equal(s.closed || s.destroyed, false);
    first.close();
    third.close();
  });

  test('replay with Last-Event-ID over HTTP/2', async () => {
    const s = await session();
    const ids: string[] = [];
    for (const n of [1, 2, 3])
      ids.push((await publish(s, { topic: 'replay', data: `e${n}` })).json().id as string);
    const stream = await open(s, 'topic=replay', { 'last-event-id': ids[0] as string });
    await stream.untilData(2);
    await publish(s, { topic: 'replay', data: 'live' });
    await stream.untilData(3);
    assert.deepEqual(
      stream.data.map((event) => event.data),
      ['e2', 'e3', 'live'],
    );
    assert.equal(stream.data[1]?.id, ids[2]);
    stream.close();
  });

  test('heartbeats reach a quiet HTTP/2 stream', async () => {
    const s = await session();
    const stream = await open(s, 'topic=quiet');
    await stream.until(
      (st) => st.comments.filter((comment) => comment.trim() === 'hb').length >= 2,
      3000,
      'two heartbeats',
    );
    stream.close();
  });

  test('a long poll stops waiting when its HTTP/2 stream is reset', async () => {
    const s = await session();
    const poll = s.request({ ':path': '/v1/events/poll?topic=poll-abort&wait=30' });
    poll.on('error', () => {});
    await eventually(
      async () => (await statsOf(s)).connections.byTopic['poll-abort'] === 1,
      'the long poll to wait',
    );
    poll.close(h2.NGHTTP2_CANCEL);
    await eventually(
      async () => (await statsOf(s)).connections.byTopic['poll-abort'] === undefined,
      'the hub to stop waiting for a client that left',
      3000,
    );
  });

  test('a stalled HTTP/2 stream is held back alone and catches up on drain', async () => {
    const s = await session();
    const stalled = await open(s, 'topic=bulk');
    const reading = await open(s, 'topic=bulk');
    // The client stops reading: the stream's flow-control window fills, then the hub's writes wait.
    stalled.stream.pause();
    const count = 80;
    const data = 'x'.repeat(3000); // under the 4 KiB body limit set above
    for (let n = 0; n < count; n++) await publish(s, { topic: 'bulk', data: `${n}:${data}` });
    await reading.untilData(count);
    // What its window and buffers cannot take waits in its outbox until 'drain'.
    const { outbox } = (await h2request(s, 'GET', '/v1/stats')).json() as {
      outbox: { queuedEvents: number };
    };
    assert.ok(outbox.queuedEvents > 0, 'the paused stream should have events waiting in its outbox');
    stalled.stream.resume();
    await stalled.untilData(count);
    assert.deepEqual(
      stalled.data.map((event) => event.data.split(':')[0]),
      Array.from({ length: count }, (_, n) => String(n)),
    );
    stalled.close();
    reading.close();
  });

  test('the hub ends HTTP/2 streams on close, with a retry hint', async () => {
    const { cert: pem, key } = cert;
    const hub = await serve(resolveConfig({ port: 0, tlsCert: pem, tlsKey: key }, {}));
    assert.match(hub.url, /^https:/, 'PEM text works as well as a file');
    const s = await h2connect(hub.url, cert.cert);
    const streams = await Promise.all(
      [1, 2, 3].map(async () => {
        const stream = new H2SseStream(s, '/v1/events?topic=bye');
        await stream.untilConnected();
        return stream;
      }),
    );
    await hub.close();
    await Promise.all(streams.map((stream) => stream.until((st) => st.ended, 5000, 'the end')));
    for (const stream of streams) assert.equal(stream.retries.length, 2, 'a retry hint before the end');
    s.destroy();
  });
});

describe('TLS settings', () => {
  let cert: TestCertificate;
  let other: TestCertificate;
  before(() => {
    cert = makeCertificate();
    other = makeCertificate();
  });
  after(() => {
    cert.remove();
    other.remove();
  });

  const start = (settings: Record<string, unknown>) => serve(resolveConfig({ port: 0, ...settings }, {}));

  test('a certificate without a key, or a key without a certificate, is refused', async () => {
    await assert.rejects(start({ tlsCert: cert.certFile }), /--tls-key \(HERALD_TLS_KEY\) is required/);
    await assert.rejects(start({ tlsKey: cert.keyFile }), /--tls-cert \(HERALD_TLS_CERT\) is required/);
  });

  test('an unreadable file, a non-PEM file and a key of another certificate name the setting', async () => {
    await assert.rejects(
      start({ tlsCert: '/nonexistent/cert.pem', tlsKey: cert.keyFile }),
      /--tls-cert \(HERALD_TLS_CERT\): cannot read \/nonexistent\/cert\.pem/,
    );
    await assert.rejects(
      start({ tlsCert: cert.keyFile, tlsKey: cert.keyFile }),
      /--tls-cert \(HERALD_TLS_CERT\): not a PEM certificate/,
    );
    await assert.rejects(
      start({ tlsCert: cert.certFile, tlsKey: cert.certFile }),
      /--tls-key \(HERALD_TLS_KEY\): not a PEM private key/,
    );
    await assert.rejects(
      start({ tlsCert: cert.certFile, tlsKey: other.keyFile }),
      /--tls-key \(HERALD_TLS_KEY\) is not the private key of the certificate/,
    );
  });

  test('herald serve as a process: HTTP/2 on https, settings from the environment', async () => {
    const hub = await spawnHub([], { HERALD_TLS_CERT: cert.certFile, HERALD_TLS_KEY: cert.key });
    try {
      assert.match(hub.url, /^https:\/\/127\.0\.0\.1:\d+$/);
      const s = await h2connect(hub.url, cert.cert);
      const stream = new H2SseStream(s, '/v1/events?topic=proc');
      await stream.untilConnected();
      assert.equal((await publish(s, { topic: 'proc', data: 'over h2' })).status, 202);
      await stream.untilData(1);
      assert.equal(stream.data[0]?.data, 'over h2');
      stream.close();
      s.close();
    } finally {
      assert.equal(await hub.stop(), 0);
    }
  });

  test('herald serve as a process: a bad certificate stops the start with the setting named', async () => {
    await assert.rejects(
      spawnHub(['--tls-cert', '/nonexistent/cert.pem', '--tls-key', cert.keyFile]),
      /herald: --tls-cert \(HERALD_TLS_CERT\): cannot read/,
    );
  });
});

describe('nodeHandler in an app’s own HTTP/2 server', () => {
  test('streams, publishes and closes on the http2 compatibility API, without HTTP/1.1', async () => {
    const cert = makeCertificate();
    const herald = createHerald({ heartbeatMs: 60_000 });
    const handler = nodeHandler(herald, { basePath: '/realtime' });
    const server = createSecureServer({ cert: cert.cert, key: cert.key }, (req, res) => {
      if (req.url === '/') res.end('the app');
      else handler(req, res);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const s = await h2connect(`https://localhost:${(server.address() as AddressInfo).port}`, cert.cert);
    try {
      assert.equal((await h2request(s, 'GET', '/')).text, 'the app');
      const streams = await Promise.all(
        Array.from({ length: 10 }, async () => {
          const stream = new H2SseStream(s, '/realtime/v1/events?topic=embedded');
          await stream.untilConnected();
          return stream;
        }),
      );
      assertNoConnectionHeaders(streams[0]?.headers ?? {}, 'embedded stream');
      await herald.publish({ topic: 'embedded', data: 'from the app' });
      await Promise.all(streams.map((stream) => stream.untilData(1)));
      const published = await h2request(
        s,
        'POST',
        '/realtime/v1/publish',
        JSON_HEADERS,
        JSON.stringify({ topic: 'embedded', data: 'over h2' }),
      );
      assert.equal(published.status, 202);
      await Promise.all(streams.map((stream) => stream.untilData(2)));
      const missing = await h2request(s, 'GET', '/realtime/nowhere');
      assert.equal(missing.status, 404);
      assertNoConnectionHeaders(missing.headers, 'embedded 404');
      handler.closeStreams();
      await Promise.all(streams.map((stream) => stream.until((st) => st.ended, 5000, 'the end')));
      assert.equal((await herald.stats()).connections.total, 0);
    } finally {
      s.destroy();
      await herald.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      cert.remove();
    }
  });
});
