import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { type AddressInfo, connect, type Socket } from 'node:net';
import { describe, type TestContext, test } from 'node:test';
import { createHerald, type Herald } from '../../src/herald.ts';
import { nodeHandler } from '../../src/http/node.ts';
import { sleep } from '../helpers/server.ts';

/**
 * Once a stream is open, node:http's parser for the next request on its connection is released
 * (src/http/release.ts). What a client and the host server see of the connection must not change
 * but for one thing: a stream the server ends takes its connection with it.
 */

interface Setup {
  readonly herald: Herald;
  readonly server: Server;
  readonly port: number;
}

async function setup(t: TestContext): Promise<Setup> {
  const herald = createHerald({ heartbeatMs: 60_000 });
  const server = createServer(nodeHandler(herald));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(async () => {
    await herald.close();
    server.closeAllConnections();
    if (server.listening) await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return { herald, server, port: (server.address() as AddressInfo).port };
}

interface RawStream {
  readonly socket: Socket;
  /** Everything received so far, as text. */
  text(): string;
  /** Resolves when the server has closed its side (or the socket is gone). */
  readonly ended: Promise<void>;
}

/** A raw HTTP/1.1 stream, resolved once the connected event is in (and the parser released). */
async function openRaw(port: number, topic: string): Promise<RawStream> {
  const socket = connect({ port, host: '127.0.0.1' });
  let received = '';
  socket.setEncoding('latin1');
  socket.on('data', (chunk: string) => {
    received += chunk;
  });
  const ended = new Promise<void>((resolve) => {
    socket.on('end', resolve);
    socket.on('close', resolve);
  });
  socket.write(`GET /v1/events?topic=${topic} HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n`);
  const deadline = Date.now() + 5000;
  while (!received.includes('herald.connected')) {
    if (Date.now() > deadline) assert.fail(`no herald.connected; got ${JSON.stringify(received)}`);
    await sleep(5);
  }
  // The release happens on the next turn of the event loop.
  await new Promise((resolve) => setImmediate(resolve));
  await sleep(10);
  return { socket, text: () => received, ended };
}

async function untilConnections(herald: Herald, count: number): Promise<void> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const total = (await herald.stats()).connections.total;
    if (total === count) return;
    if (Date.now() > deadline) assert.fail(`expected ${count} open streams; still ${total}`);
    await sleep(10);
  }
}

describe('an open stream’s HTTP/1.1 connection', () => {
  test('still delivers events', async (t) => {
    const { herald, port } = await setup(t);
    const stream = await openRaw(port, 'a');
    t.after(() => stream.socket.destroy());
    await herald.publish({ topic: 'a', data: '{"n":1}' });
    const deadline = Date.now() + 5000;
    while (!stream.text().includes('data: {"n":1}')) {
      if (Date.now() > deadline) assert.fail('the event did not arrive');
      await sleep(5);
    }
  });

  test('a client that leaves, by closing or by half-closing, is forgotten', async (t) => {
    const { herald, port } = await setup(t);
    const closing = await openRaw(port, 'a');
    const halfClosing = await openRaw(port, 'b');
    await untilConnections(herald, 2);
    closing.socket.destroy();
    await untilConnections(herald, 1);
    halfClosing.socket.end();
    await untilConnections(herald, 0);
    await halfClosing.ended;
  });

  test('a stream the hub ends closes its connection after the retry hint', async (t) => {
    const { herald, port } = await setup(t);
    const stream = await openRaw(port, 'a');
    t.after(() => stream.socket.destroy());
    await herald.close();
    // At once, not when node:http's keep-alive timeout would have closed it.
    await Promise.race([stream.ended, sleep(2000).then(() => assert.fail('the connection stayed open'))]);
    // The chunked body is terminated before the connection closes.
    assert.match(stream.text(), /retry: \d+\n\n\r\n0\r\n\r\n$/);
  });

  test('server.closeAllConnections() still closes open streams', async (t) => {
    const { server, herald, port } = await setup(t);
    const stream = await openRaw(port, 'a');
    await untilConnections(herald, 1);
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeAllConnections();
    await stream.ended;
    await closed;
    await untilConnections(herald, 0);
  });

  test('a request pipelined behind a stream does not reach the host', async (t) => {
    const herald = createHerald({ heartbeatMs: 60_000 });
    let requests = 0;
    const handler = nodeHandler(herald);
    const server = createServer((req, res) => {
      requests++;
      handler(req, res);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    t.after(async () => {
      await herald.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    });
    const stream = await openRaw((server.address() as AddressInfo).port, 'a');
    t.after(() => stream.socket.destroy());
    stream.socket.write('GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n');
    await sleep(50);
    assert.equal(requests, 1);
    assert.doesNotMatch(stream.text(), /"status"/);
    // The stream goes on.
    await herald.publish({ topic: 'a', data: '"after"' });
    const deadline = Date.now() + 5000;
    while (!stream.text().includes('data: "after"')) {
      if (Date.now() > deadline) assert.fail('the event did not arrive');
      await sleep(5);
    }
  });
});
