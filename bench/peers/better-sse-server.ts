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
import type http from 'node:http';
import { parseArgs } from 'node:util';
import { type Channel, createChannel, createSession } from 'better-sse';
import { servePeer } from './peer-http.ts';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    'heartbeat-ms': { type: 'string', default: '10000' },
  },
});
const keepAlive = Number(values['heartbeat-ms']);

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

servePeer(
  {
    stream,
    publish(topic, data, event) {
      channels.get(topic)?.broadcast(data, event);
    },
  },
  Number(values.port),
);
