/**
 * The SSE server teams write by hand (the seeds' style), as a benchmark peer: one in-process
 * EventEmitter as the bus, one listener per open stream that does `res.write` for each event,
 * a `GET /events?topic=` stream with a hello event and a heartbeat comment per connection, and a
 * `POST /publish` taking `{ topic, data, event? }` as JSON, whose `data` each listener sends as
 * JSON (a string as a quoted string). Written competently (one write per event, no logging per
 * event, listeners removed on close), so that what is measured is the pattern itself, not a
 * careless copy of it.
 *
 * Usage: node bench/peers/seed-server.ts [--port 0] [--heartbeat-ms 15000]
 * Prints `listening on http://127.0.0.1:<port>` once it accepts connections.
 */
import { EventEmitter } from 'node:events';
import http from 'node:http';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    'heartbeat-ms': { type: 'string', default: '15000' },
  },
});
const heartbeatMs = Number(values['heartbeat-ms']);
const MAX_BODY = 1024 * 1024;

/** What travels on the bus: the published value, not yet serialized. */
interface BusMessage {
  event?: string;
  data: unknown;
}

const bus = new EventEmitter();
// One listener per subscriber on the topic's event name: thousands of them is the point here.
bus.setMaxListeners(0);

function stream(req: http.IncomingMessage, res: http.ServerResponse, topic: string): void {
  res.writeHead(200, {
    'content-type': 'text/event-stream',
    'cache-control': 'no-cache, no-transform',
    connection: 'keep-alive',
    'x-accel-buffering': 'no',
  });
  // Each listener serializes what the bus carries, as the seeds' routes do: the bus holds objects,
  // and a route may shape or filter them for its own client before writing.
  const listener = (message: BusMessage) => {
    const data = JSON.stringify(message.data);
    res.write(
      message.event === undefined ? `data: ${data}\n\n` : `event: ${message.event}\ndata: ${data}\n\n`,
    );
  };
  bus.on(topic, listener);
  // Sent once the listener is on the bus: a client that has read it cannot miss later events.
  res.write(`event: hello\ndata: ${JSON.stringify({ type: 'connected', topic, ts: Date.now() })}\n\n`);
  const heartbeat = setInterval(() => res.write(`: heartbeat ${Date.now()}\n\n`), heartbeatMs);
  req.on('close', () => {
    clearInterval(heartbeat);
    bus.off(topic, listener);
  });
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
    const message: BusMessage = { data: body.data };
    if (typeof body.event === 'string') message.event = body.event;
    bus.emit(body.topic, message);
    res.writeHead(202, { 'content-type': 'application/json' }).end('{"ok":true}');
  });
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://localhost');
  if (req.method === 'GET' && url.pathname === '/events') {
    const topic = url.searchParams.get('topic');
    if (topic === null || topic === '') res.writeHead(400).end('topic required\n');
    else stream(req, res, topic);
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
