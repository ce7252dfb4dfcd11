/**
 * How the load generators talk to a peer: the subscribe request and the publish request. Workers
 * are child processes, so a target names its protocol and each worker looks it up here.
 */

export interface PublishRequest {
  readonly method: 'POST';
  /** Path and query. */
  readonly path: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
}

export interface WireProtocol {
  /** Path and query of the SSE stream of one topic. */
  subscribePath(topic: string): string;
  /**
   * When a stream counts as subscribed. `first-event`: the server sends something (Herald's
   * `herald.connected`) only once the subscriber is registered, so events published afterwards
   * cannot be missed. `headers`: for peers that stay silent until the first event.
   */
  readonly readyAfter: 'headers' | 'first-event';
  /** Most events one publish request may carry. */
  readonly maxBatch: number;
  /** One request publishing `payloads` (benchmark payloads, ASCII) to `topic`, in order. */
  publish(topic: string, payloads: readonly string[]): PublishRequest;
  /** A JSON endpoint with the server's own counters, fetched after a run when there is one. */
  readonly statsPath?: string;
  /**
   * How a reconnecting client resumes: `last-event-id`, the id of the last event it read sent as
   * the `Last-Event-ID` header (ids as the server wrote them in `id:` lines); `none`, the peer keeps
   * no history and a reconnect starts at the next event.
   */
  readonly replay: 'last-event-id' | 'none';
  /**
   * One request publishing each event to its own topic, in order (S4 spreads events over many
   * topics). Without it, the publisher sends one request per event, several at once.
   */
  publishEach?(events: readonly TopicEvent[]): PublishRequest;
  /**
   * Whether a subscription may select topics with an RFC 6570 URI template (`t/7/{leaf}`) passed
   * to `subscribePath` (S4 subscribes half its streams that way); exact topics only otherwise.
   */
  readonly templates?: boolean;
}

export interface TopicEvent {
  readonly topic: string;
  readonly data: string;
}

const JSON_HEADERS = { 'content-type': 'application/json' };

/** Herald's native API v1: a JSON string as `data` goes out verbatim. */
const herald: WireProtocol = {
  subscribePath: (topic) => `/v1/events?topic=${encodeURIComponent(topic)}`,
  readyAfter: 'first-event',
  maxBatch: 1000,
  publish(topic, payloads) {
    const body =
      payloads.length === 1
        ? JSON.stringify({ topic, data: payloads[0] })
        : JSON.stringify(payloads.map((data) => ({ topic, data })));
    return { method: 'POST', path: '/v1/publish', headers: JSON_HEADERS, body };
  },
  statsPath: '/v1/stats',
  replay: 'last-event-id',
  publishEach(events) {
    const body = JSON.stringify(events.map(({ topic, data }) => ({ topic, data })));
    return { method: 'POST', path: '/v1/publish', headers: JSON_HEADERS, body };
  },
  templates: true,
};

/**
 * Herald with `presence=1` on every stream (S10): streams that also hear who joins and leaves
 * their topic, so that the hub watches it. Publishing is Herald's.
 */
const heraldPresence: WireProtocol = {
  ...herald,
  subscribePath: (topic) => `${herald.subscribePath(topic)}&presence=1`,
};

/** One `{ topic, data }` JSON body per event: the seed-style server and better-sse take no batch. */
function singleJson(path: string) {
  return (topic: string, payloads: readonly string[]): PublishRequest => {
    if (payloads.length !== 1) throw new Error(`${path} takes one event per request`);
    return {
      method: 'POST',
      path,
      headers: JSON_HEADERS,
      body: JSON.stringify({ topic, data: payloads[0] }),
    };
  };
}

/** bench/peers/seed-server.ts: a hello event once subscribed; `data:` (the payload JSON-encoded), no ids. */
const seed: WireProtocol = {
  subscribePath: (topic) => `/events?topic=${encodeURIComponent(topic)}`,
  readyAfter: 'first-event',
  maxBatch: 1,
  publish: singleJson('/publish'),
  replay: 'none',
};

/**
 * bench/peers/better-sse-server.ts: a hello event once registered; each event as `event:`, `id:`
 * (a UUID) and `data:` with the payload JSON-encoded (a quoted string).
 */
const betterSse: WireProtocol = {
  subscribePath: (topic) => `/events?topic=${encodeURIComponent(topic)}`,
  readyAfter: 'first-event',
  maxBatch: 1,
  publish: singleJson('/publish'),
  // It reads Last-Event-ID into `session.lastId` but keeps no history to replay from.
  replay: 'none',
};

/**
 * Nchan (bench/peers/nchan-config.ts): the raw request body is the message; a stream needs
 * `Accept: text/event-stream` (the workers send it) and starts with `: hi` once
 * subscribed; each message as `id: <time>:<tag>` and `data:`; replays from its message buffer.
 */
const nchan: WireProtocol = {
  subscribePath: (topic) => `/sub?topic=${encodeURIComponent(topic)}`,
  readyAfter: 'first-event',
  maxBatch: 1,
  publish(topic, payloads) {
    if (payloads.length !== 1) throw new Error('nchan takes one message per request');
    return {
      method: 'POST',
      path: `/pub?topic=${encodeURIComponent(topic)}`,
      headers: { 'content-type': 'text/plain' },
      body: payloads[0] ?? '',
    };
  },
  replay: 'last-event-id',
};

export const PROTOCOLS = {
  herald,
  'herald-presence': heraldPresence,
  seed,
  'better-sse': betterSse,
  nchan,
} satisfies Record<string, WireProtocol>;

export type ProtocolName = keyof typeof PROTOCOLS;

export function protocolNamed(name: string): WireProtocol {
  const protocol = (PROTOCOLS as Record<string, WireProtocol>)[name];
  if (protocol === undefined) throw new Error(`unknown protocol ${JSON.stringify(name)}`);
  return protocol;
}
