/**
 * better-sse 0.16 as a benchmark peer, used the way its documentation shows: a node:http server,
 * one `Channel` per topic (created on first use), a `Session` per `GET /events?topic=` registered
 * with it, and a `POST /publish` taking `{ topic, data, event? }` as JSON that calls
 * `channel.broadcast`. Defaults are kept (JSON serializer, a random UUID as each event's id),
 * except the keep-alive interval, which follows the benchmark's heartbeat, and no `retry:` preamble.
 *
 * better-sse keeps no history: a `Last-Event-ID` only sets `session.lastId`, nothing is replayed.
 *
 * Usage: node bench/peers/better-sse-server.ts [--port 0] [--heartbeat-ms 10000]
 * Prints `listening on http://127.0.0.1:<port>` once it accepts connections.
 */
import http from 'node:http';
import { parseArgs } from 'node:util';
import { type Channel, createChannel, createSession } from 'better-sse';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    'heartbeat-ms': { type: 'string', default: '10000' },
  },
});
const keepAlive = Number(values['heartbeat-ms']);
const MAX_BODY = 1024 * 1024;

const channels = new Map<string, Channel>();

function channelOf(topic: string): Channel {
  let channel = channels.get(topic);
  if (channel === undefined) {
    channel = createChannel();
    channels.set(topic, channel);
  }
  return channel;
}

async function stream(req: http.IncomingMessage, res: http.ServerResponse, topic: string): Promise<void> {
  // No `retry:` preamble: it would be a block the client reads before the session is registered,
  // and the benchmark counts a stream subscribed at its first block.
  const session = await createSession(req, res, { keepAlive, retry: null });
  const channel = channelOf(topic);
  channel.register(session);
  // Pushed once registered: a client that has read it cannot miss later broadcasts.
  session.push({ type: 'connected', topic }, 'hello');
}

function publish(req: http.IncomingMessage, res: http.ServerResponse): void {
  const chunks: Buffer[] = [];
  let size = 0;
  req.on('data', (chunk: Buffer) => {
    size += chunk.length;
    if (size > MAX_BODY) {
      res.writeHead(413).end();
      req.destroy();
      return;
    }
    chunks.push(chunk);
  });
  req.on('end', () => {
    let body: { topic?: unknown; data?: unknown; event?: unknown };
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      res.writeHead(400, { 'content-type': 'application/json' }).end('{"error":"invalid JSON"}');
      return;
    }
    if (typeof body.topic !== 'string' || body.data === undefined) {
      res.writeHead(400, { 'content-type': 'application/json' }).end('{"error":"topic and data required"}');
      return;
    }
    channels.get(body.topic)?.broadcast(body.data, typeof body.event === 'string' ? body.event : undefined);
    res.writeHead(202, { 'content-type': 'application/json' }).end('{"ok":true}');
  });
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://localhost');
  if (req.method === 'GET' && url.pathname === '/events') {
    const topic = url.searchParams.get('topic');
    if (topic === null || topic === '') res.writeHead(400).end('topic required\n');
    else
      stream(req, res, topic).catch((error: unknown) => {
        process.stderr.write(`session failed: ${error instanceof Error ? error.message : error}\n`);
        res.destroy();
      });
  } else if (req.method === 'POST' && url.pathname === '/publish') {
    publish(req, res);
  } else {
    res.writeHead(404).end();
  }
});

server.listen(Number(values.port), '127.0.0.1', () => {
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no TCP address');
  process.stdout.write(`listening on http://127.0.0.1:${address.port}\n`);
});

for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => process.exit(0));
