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
};

export const PROTOCOLS = { herald } satisfies Record<string, WireProtocol>;

export type ProtocolName = keyof typeof PROTOCOLS;

export function protocolNamed(name: string): WireProtocol {
  const protocol = (PROTOCOLS as Record<string, WireProtocol>)[name];
  if (protocol === undefined) throw new Error(`unknown protocol ${JSON.stringify(name)}`);
  return protocol;
}
