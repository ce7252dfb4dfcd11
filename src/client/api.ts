import type { GapPayload, HistoryPayload } from '../core/protocol/system-events.ts';
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

/**
 * An event of an event map as handlers get it: its `type` names one of `K`, and tells its `data`
 * apart (an `on('*')` handler narrows with `if (message.type === 'msrp')`).
 */
export type EventMessage<
  Events extends Record<string, unknown>,
  K extends keyof Events & string = keyof Events & string,
> = {
  [T in K]: HeraldMessage<Events[T]> & { readonly type: T };
}[K];

export interface StatusChange {
  readonly status: ClientStatus;
  /** Why: the server's detail for a refusal, `polling` when open over long polling, etc. */
  readonly reason?: string;
  /** The refusal that closed the client or made it reconnect, when there was one. */
  readonly error?: HeraldClientError;
}

/** `herald.gap`: events may have been missed, re-fetch the state they describe. */
export type GapInfo = GapPayload;

/** `herald.history`: the history asked for (`rewind`, `since`, `snapshot`) has been delivered; live events follow. */
export type HistoryInfo = HistoryPayload;

/** What `subscribe()`, `unsubscribe()` and `setFilter()` change: topics, event types, tags. */
export interface FilterChange {
  topics?: string | readonly string[];
  types?: string | readonly string[];
  tags?: Readonly<Record<string, string | readonly string[]>>;
}

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
  /**
   * Ask for `herald.presence` notices of who joins and leaves the stream's exact topics, on every
   * node (the token needs the `presence:members` permission, or admin): what `usePresence` keeps
   * its members up to date with. Default false.
   */
  presence?: boolean;
  /** A bearer token, or a function called before every connection (so it can refresh it). */
  token?: string | (() => string | Promise<string>);
  /**
   * `fetch` (default): a streaming fetch, with the token in the `Authorization` header.
   * `eventsource`: the native `EventSource`, with the token in the URL (`access_token`), which ends
   * up in logs and history: only when fetch streaming is not an option.
   */
  transport?: 'fetch' | 'eventsource';
  /**
   * Start with the last N matching events, then live. Like `since` and `snapshot`, asked for only
   * by a connection with no id to resume from; when any of the three is set, a stored id is not
   * used at creation (a reloaded page needs its state again, not a resume).
   */
  rewind?: number;
  /** Start with the events since then: a Date, epoch ms, an ISO time with a zone, or a duration (`5m`). */
  since?: string | number | Date;
  /** Start with the latest event of every key the subscription matches, then live. */
  snapshot?: 'latest';
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
  /**
   * One stream for all the tabs of an origin (per hub and credential): the tab elected with Web
   * Locks holds it and relays each tab's events over BroadcastChannel. Default: on in a browser
   * window that has both, for a client with a `token`; `false` turns it off; `true` also shares
   * with cookie authentication (the hub must allow the origin: `--cors-origin`), between workers,
   * or between the worker threads of a Node process. Never with `transport: 'eventsource'` or
   * `tenant`.
   */
  shareTabs?: boolean;
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
  /** The event types it wants; empty for every type. */
  readonly types: readonly string[];
  /** The tags it wants, by name; empty for any tag. */
  readonly tags: Readonly<Record<string, readonly string[]>>;
  /**
   * Calls `handler` for every event of `type` (`*`: every event but `herald.*`; a hub notice such
   * as `herald.stats` only by its own type). Returns the unsubscribe.
   */
  on<K extends keyof Events & string>(type: K, handler: Handler<EventMessage<Events, K>>): () => void;
  on(type: '*', handler: Handler<EventMessage<Events>>): () => void;
  /** A hub notice (no published event has a `herald.` type, so an event map never names one). */
  on(type: `herald.${string}`, handler: Handler<HeraldMessage<unknown>>): () => void;
  onStatus(handler: Handler<StatusChange>): () => void;
  onGap(handler: Handler<GapInfo>): () => void;
  /** Called once the history asked for (`rewind`, `since`, `snapshot`) has been delivered. */
  onHistory(handler: Handler<HistoryInfo>): () => void;
  /**
   * Adds topics (a string or a list), or types and tag values, to the open stream
   * (`POST /v1/subscriptions`); later connections ask for them too. Types or tag values added
   * to a stream that takes every type (or any value of that tag) change nothing.
   */
  subscribe(change: string | readonly string[] | FilterChange): Promise<void>;
  /**
   * Removes topics, or types and tag values, from the open stream and from later connections.
   * Removing a stream's last type or tag value, or from one that takes them all, is refused (400).
   */
  unsubscribe(change: string | readonly string[] | FilterChange): Promise<void>;
  /** Replaces the types (`[]`: every type) and/or the tags (`{}`: any tag) of the open stream and later connections. */
  setFilter(filter: Pick<FilterChange, 'types' | 'tags'>): Promise<void>;
  /**
   * Who is on `topic` across the hub's cluster (`GET /v1/presence`): streams, distinct subjects,
   * and the subjects themselves when the token may see them. Needs a subscribe grant on the topic.
   */
  presence(topic: string): Promise<PresenceInfo>;
  /** Ends the connection and every timer and listener. The client cannot be reopened. */
  close(): void;
}

/** Who is on a topic (`GET /v1/presence`). */
export interface PresenceInfo {
  readonly topic: string;
  /** Streams on the topic across the cluster. */
  readonly connections: number;
  /** Distinct subjects among them. */
  readonly subjects: number;
  /** Each subject and its streams: only when the token may see them (admin, `presence:members`). */
  readonly members?: readonly { readonly subject: string; readonly connections: number }[];
  /** Nodes that did not answer in time: their streams are not counted. */
  readonly incomplete: readonly string[];
}
