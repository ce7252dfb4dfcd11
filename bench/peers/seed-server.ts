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
import type http from 'node:http';
import { parseArgs } from 'node:util';
import { servePeer } from './peer-http.ts';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    'heartbeat-ms': { type: 'string', default: '15000' },
  },
});
const heartbeatMs = Number(values['heartbeat-ms']);

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

servePeer(
  {
    stream,
    publish(topic, data, event) {
      const message: BusMessage = { data };
      if (event !== undefined) message.event = event;
      bus.emit(topic, message);
    },
  },
  Number(values.port),
);
