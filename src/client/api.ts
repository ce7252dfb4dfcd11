import type { GapPayload } from '../core/protocol/system-events.ts';
import type { HeraldClientError } from './errors.ts';
import type { LastEventIdStore } from './store.ts';

/** The client's public shape: its options, what it is, and what its handlers get. */

export type ClientStatus = 'connecting' | 'open' | 'reconnecting' | 'closed';

/** An event as handlers get it. */
export interface HeraldMessage<T = unknown> {
  /** The event's id: opaque, unique within the hub's log. */
  readonly id: string;
  /** The SSE event type; `message` for an untyped event. */
  readonly type: string;
  /** `raw` through `parse` (by default JSON, or the string itself when it is not JSON). */
  readonly data: T;
  /** The data as it came on the wire. */
  readonly raw: string;
}

export interface StatusChange {
  readonly status: ClientStatus;
  /** Why: the server's detail for a refusal, `polling` when open over long polling, etc. */
  readonly reason?: string;
  /** The refusal that closed the client or made it reconnect, when there was one. */
  readonly error?: HeraldClientError;
}

/** `herald.gap`: events may have been missed, re-fetch the state they describe. */
export type GapInfo = GapPayload;

export interface ClientOptions {
  /** The hub's base URL (`https://hub.example.com`, or `/realtime` relative to the page). */
  url: string;
  /**
   * Topic selectors: exact topics, `*`, or URI templates such as `dealers/{dealerId}/scores`. May be
   * empty: the client then connects when `subscribe()` gives it one.
   */
  topics: readonly string[];
  /** Only these event types (the hub filters). */
  types?: readonly string[];
  /** Only events with these tags (the hub filters): `{ dealerId: 'STORE1', vin: ['A', 'B'] }`. */
  tags?: Readonly<Record<string, string | readonly string[]>>;
  /** Admin credentials only: watch this tenant instead of the credential's own, or `*` for every tenant. */
  tenant?: string;
  /** A bearer token, or a function called before every connection (so it can refresh it). */
  token?: string | (() => string | Promise<string>);
  /**
   * `fetch` (default): a streaming fetch, with the token in the `Authorization` header.
   * `eventsource`: the native `EventSource`, with the token in the URL (`access_token`), which ends
   * up in logs and history: only when fetch streaming is not an option.
   */
  transport?: 'fetch' | 'eventsource';
  /** Where the last event id is kept across reloads; `null` for nowhere. Default: sessionStorage in a browser, memory otherwise. */
  store?: LastEventIdStore | null;
  /** The store key. Default: derived from the URL, topics, types and tags. */
  storeKey?: string;
  /** Reconnection delays: full jitter over `initialMs · 2^attempt`, capped at `maxMs`. Default 500 ms and 30 s. */
  backoff?: { initialMs?: number; maxMs?: number };
  /** The hub's heartbeat interval (default 15 000 ms): a stream silent for 2.5× as long is reconnected. */
  heartbeatMs?: number;
  /** `auto` (default): fall back to long polling when streams keep failing (a buffering proxy). */
  polling?: 'auto' | 'never';
  /** While long polling, how often streaming is tried again. Default 60 000 ms. */
  probeMs?: number;
  /** Send cookies to another origin too (`credentials: 'include'`, `withCredentials`). */
  withCredentials?: boolean;
  /** The fetch to use. Default: the global one. */
  fetch?: typeof fetch;
  /** The EventSource constructor for `transport: 'eventsource'`. Default: the global one. */
  EventSource?: typeof EventSource;
  /** Turns raw data into `message.data`. Default: JSON, or the string itself when it is not JSON. */
  parse?: (raw: string, type: string) => unknown;
}

export type Handler<T> = (value: T) => void;

export interface HeraldClient<Events extends Record<string, unknown> = Record<string, unknown>> {
  readonly status: ClientStatus;
  /** The last event id handled (what a reconnection resumes from). */
  readonly lastEventId: string | undefined;
  /** The open stream's id (from `herald.connected`); undefined while not streaming. */
  readonly connectionId: string | undefined;
  /** `stream`, or `poll` while it has fallen back to long polling. */
  readonly mode: 'stream' | 'poll';
  /** The topic selectors the client wants (what the next connection asks for). */
  readonly topics: readonly string[];
  /**
   * Calls `handler` for every event of `type` (`*`: every event but `herald.*`; a hub notice such
   * as `herald.stats` only by its own type). Returns the unsubscribe.
   */
  on<K extends keyof Events & string>(type: K, handler: Handler<HeraldMessage<Events[K]>>): () => void;
  on(type: '*', handler: Handler<HeraldMessage<Events[keyof Events]>>): () => void;
  onStatus(handler: Handler<StatusChange>): () => void;
  onGap(handler: Handler<GapInfo>): () => void;
  /** Adds topics to the open stream (`POST /v1/subscriptions`); later connections ask for them too. */
  subscribe(topics: string | readonly string[]): Promise<void>;
  /** Removes topics from the open stream and from later connections. */
  unsubscribe(topics: string | readonly string[]): Promise<void>;
  /** Ends the connection and every timer and listener. The client cannot be reopened. */
  close(): void;
}
