import { backoffDelay } from './backoff.ts';
import { RecentIds } from './dedup.ts';
import { classify, HeraldClientError, problemOf } from './errors.ts';
import { createParser, type SseEvent } from './sse-parser.ts';
import { defaultStore, type LastEventIdStore } from './store.ts';
import { createWatchdog } from './watchdog.ts';

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
export interface GapInfo {
  /** The last id the client had when the gap began (null when unknown). */
  readonly lastEventId: string | null;
  /** `unknown` id, `expired` (older than the history, or before a hub restart), `overflow` (too slow). */
  readonly reason: string;
  /** With `overflow`: how many events were dropped. */
  readonly dropped?: number;
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

type Handler<T> = (value: T) => void;

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

/** One HTTP connection: a stream, an EventSource, or a sequence of long polls. */
interface Connection {
  readonly abort: AbortController;
  readonly poll: boolean;
  /** A stream tried while polling: its failure is quiet, its success ends the polling. */
  probe: boolean;
  /** The query it was opened with (topics and filters), to tell whether the topics changed since. */
  readonly query: string;
  /** The Last-Event-ID it was opened with. */
  sent?: string | undefined;
  token?: string | undefined;
  /** `herald.connected`'s connectionId. */
  id?: string;
  /** `herald.connected`'s secret: what proves a subscription change comes from this stream's holder. */
  secret?: string;
  /** Any byte received. */
  bytes?: boolean;
  /** Given up by the watchdog. */
  silent?: boolean;
  /** A successor was opened after `herald.reauth`. */
  renewing?: boolean;
  /** For EventSource: the types listened to. */
  listen?: (type: string) => void;
}

const HERALD = 'herald.';
const EMPTY_STREAMS_BEFORE_POLLING = 3;
const POLL_WAIT_SEC = 25;

const parseData = (raw: string): unknown => {
  try {
    return JSON.parse(raw);
  } catch {
    return raw;
  }
};

const listOf = (topics: string | readonly string[]): string[] =>
  typeof topics === 'string' ? [topics] : [...topics];

/** Reports a handler's exception without breaking the stream, as EventTarget does. */
const report = (error: unknown): void => {
  setTimeout(() => {
    throw error;
  });
};

/** Creates a client and starts connecting. */
export function createClient<Events extends Record<string, unknown> = Record<string, unknown>>(
  options: ClientOptions,
): HeraldClient<Events> {
  const { types = [], tags = {}, heartbeatMs = 15_000, probeMs = 60_000, parse = parseData } = options;
  const { initialMs = 500, maxMs = 30_000 } = options.backoff ?? {};
  const eventSource = options.transport === 'eventsource';
  const autoPolling = options.polling !== 'never' && !eventSource;
  const credentials: RequestCredentials = options.withCredentials ? 'include' : 'same-origin';
  const doFetch: typeof fetch = options.fetch ?? ((input, init) => fetch(input, init));
  const watchLimit = heartbeatMs * 2.5;
  const global = globalThis as Partial<Window & typeof globalThis>;
  // Relative to the page; always ends with one slash, so `v1/events` resolves below it.
  const root = `${new URL(options.url, global.location?.href)}`.replace(/\/*$/, '/');

  let topics = listOf(options.topics);
  const query = (): string => {
    const params = new URLSearchParams();
    for (const topic of topics) params.append('topic', topic);
    for (const type of types) params.append('type', type);
    if (options.tenant !== undefined) params.append('tenant', options.tenant);
    for (const [name, values] of Object.entries(tags)) {
      for (const value of listOf(values)) params.append(`tag.${name}`, value);
    }
    return `${params}`;
  };

  const store = options.store === undefined ? defaultStore() : options.store;
  const storeKey = options.storeKey ?? `herald:${root}?${query()}`;
  let lastEventId: string | undefined;
  try {
    lastEventId = store?.get(storeKey) ?? undefined;
  } catch {
    // A store that cannot be read is a store without an id.
  }

  let status: ClientStatus = 'connecting';
  let reason: string | undefined;
  let connectionId: string | undefined;
  let polling = false;
  let closed = false;
  let attempt = 0;
  let retryHint: number | undefined;
  let unauthorized = 0;
  let emptyStreams = 0;
  let retryTimer: ReturnType<typeof setTimeout> | undefined;
  let probeTimer: ReturnType<typeof setTimeout> | undefined;
  const connections = new Set<Connection>();
  const handlers = new Map<string, Set<Handler<HeraldMessage<never>>>>();
  const statusHandlers = new Set<Handler<StatusChange>>();
  const gapHandlers = new Set<Handler<GapInfo>>();
  const recent = new RecentIds();
  const watchdog = createWatchdog<Connection>();

  const emit = <T>(set: Set<Handler<T>> | undefined, value: T): void => {
    if (set) {
      for (const handler of [...set]) {
        try {
          handler(value);
        } catch (error) {
          report(error);
        }
      }
    }
  };
  const add = <T>(set: Set<Handler<T>>, handler: Handler<T>) => {
    set.add(handler);
    return () => void set.delete(handler);
  };

  const setStatus = (next: ClientStatus, why?: string, error?: HeraldClientError): void => {
    if (next === status && why === reason) return;
    status = next;
    reason = why;
    emit(statusHandlers, error ? { status, reason, error } : why ? { status, reason } : { status });
  };

  const remember = (id: string): void => {
    lastEventId = id;
    try {
      store?.set(storeKey, id);
    } catch {
      // Storage full or blocked: the id is still used for this client's reconnections.
    }
  };

  const token = async (connection: Connection): Promise<string | undefined> => {
    const value = options.token;
    connection.token = typeof value === 'function' ? await value() : value;
    return connection.token;
  };

  const headers = (bearer: string | undefined, extra?: Record<string, string>): Record<string, string> =>
    bearer ? { ...extra, authorization: `Bearer ${bearer}` } : { ...extra };

  // ---- events -------------------------------------------------------------------------------

  const deliver = (id: string, type: string, raw: string): void => {
    if (id) {
      if (!recent.add(id)) return;
      remember(id);
    }
    let data: unknown;
    try {
      data = parse(raw, type);
    } catch (error) {
      // The application's parser failed on this event: reported, and the stream goes on.
      report(error);
      return;
    }
    const message: HeraldMessage<never> = { id, type, data: data as never, raw };
    emit(handlers.get(type), message);
    emit(handlers.get('*'), message);
  };

  const onEvent = (connection: Connection, { id, type, data }: SseEvent): void => {
    if (connection.abort.signal.aborted) return;
    if (!type.startsWith(HERALD)) {
      deliver(id, type, data);
      return;
    }
    let payload: Record<string, unknown>;
    try {
      payload = JSON.parse(data);
    } catch {
      return;
    }
    if (type === 'herald.connected') {
      connection.id = payload.connectionId as string;
      connection.secret = payload.secret as string;
      connectionId = connection.id;
      // Its id is where this stream resumes from. When that is what was sent, the client may
      // already be further on (the stream it replaces kept delivering): keep the later id.
      if (id && id !== connection.sent) remember(id);
      for (const other of connections) if (other !== connection) other.abort.abort();
      connection.probe = polling = false;
      clearTimeout(probeTimer);
      attempt = unauthorized = emptyStreams = 0;
      setStatus('open');
      // The topics changed while this stream was being opened: open one with the new list.
      if (connection.query !== query()) resync();
    } else if (type === 'herald.gap') {
      emit(gapHandlers, payload as unknown as GapInfo);
    } else if (type === 'herald.reauth' && !connection.renewing) {
      // The token expires soon: open the next stream with a fresh one now; this one carries on
      // until that one is connected, and the ids both deliver are de-duplicated.
      connection.renewing = true;
      open(true);
    } else {
      // Another notice of the hub (`herald.stats`, on the dashboard's topic): only for handlers
      // of that very type. It has no id of its own (the one it shows is the stream's last), so it
      // is neither de-duplicated nor remembered.
      emit(handlers.get(type), { id: '', type, data: payload as never, raw: data });
    }
  };

  // ---- connections --------------------------------------------------------------------------

  const endpoint = (path: string, params: string, extra = ''): string =>
    `${root}v1/${path}?${params}${extra}`;

  const stream = async (connection: Connection): Promise<void> => {
    const bearer = await token(connection);
    for (const other of connections) {
      // Renewing with the token that is about to expire would be refused again at once.
      if (bearer && other.renewing && other.token === bearer) throw new Error('the token was not renewed');
    }
    const sent = lastEventId;
    connection.sent = sent;
    const response = await doFetch(endpoint('events', connection.query), {
      headers: headers(
        bearer,
        sent ? { accept: 'text/event-stream', 'last-event-id': sent } : { accept: 'text/event-stream' },
      ),
      signal: connection.abort.signal,
      cache: 'no-store',
      credentials,
    });
    if (!response.ok) throw await problemOf(response);
    const body = response.body;
    if (!body || !/^text\/event-stream/i.test(response.headers.get('content-type') ?? '')) {
      // A 200 that is not an event stream: something between here and the hub (a proxy, a
      // captive portal) answers instead of it. Long polling may get through.
      await body?.cancel();
      throw new HeraldClientError(
        200,
        `not an event stream (${response.headers.get('content-type')})`,
        'not-a-stream',
      );
    }
    const parser = createParser(
      (event) => onEvent(connection, event),
      (ms) => {
        retryHint = ms;
      },
    );
    const reader = body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      connection.bytes = true;
      watchdog.touch(connection);
      parser.feed(value);
    }
  };

  const nativeEventSource = async (connection: Connection): Promise<void> => {
    const bearer = await token(connection);
    const sent = lastEventId;
    connection.sent = sent;
    const extra = new URLSearchParams();
    if (sent) extra.set('lastEventId', sent);
    if (bearer) extra.set('access_token', bearer);
    if (connection.abort.signal.aborted) return;
    const Source = options.EventSource ?? EventSource;
    const source = new Source(endpoint('events', connection.query, `&${extra}`), {
      withCredentials: !!options.withCredentials,
    });
    const listening = new Set<string>();
    // A native EventSource only dispatches the named types it is listening to.
    connection.listen = (type) => {
      if (type === '*' || listening.has(type)) return;
      listening.add(type);
      source.addEventListener(type, (event: MessageEvent) =>
        onEvent(connection, { id: event.lastEventId, type, data: event.data }),
      );
    };
    for (const type of [
      'message',
      'herald.connected',
      'herald.gap',
      'herald.reauth',
      ...types,
      ...handlers.keys(),
    ]) {
      connection.listen(type);
    }
    await new Promise<void>((resolve, reject) => {
      connection.abort.signal.addEventListener('abort', () => resolve());
      // It cannot say why (no status, no body); its own reconnection would skip the fresh token
      // and the backoff, so it is closed and this client reconnects.
      source.onerror = () => reject(new Error('the EventSource failed'));
    }).finally(() => source.close());
  };

  const poll = async (connection: Connection): Promise<void> => {
    const { signal } = connection.abort;
    // The first poll answers at once, so the client knows it gets through (and where the log is).
    for (let wait = 0; ; wait = POLL_WAIT_SEC) {
      const bearer = await token(connection);
      const after = lastEventId;
      // The watchdog covers the wait the hub may take, plus the usual allowance.
      watchdog.watch(connection, wait * 1000 + watchLimit, () => expire(connection));
      const response = await doFetch(
        endpoint(
          'events/poll',
          query(),
          `&wait=${wait}&limit=100${after ? `&after=${encodeURIComponent(after)}` : ''}`,
        ),
        { headers: headers(bearer), signal, cache: 'no-store', credentials },
      );
      if (!response.ok) throw await problemOf(response);
      const batch: {
        events: { id: string; type: string; data: string; retry?: number }[];
        lastEventId: string;
        gap?: string;
      } = await response.json();
      if (signal.aborted) return;
      attempt = unauthorized = 0;
      setStatus('open', 'polling');
      if (batch.gap) emit(gapHandlers, { lastEventId: after ?? null, reason: batch.gap });
      for (const event of batch.events) {
        if (event.retry !== undefined) retryHint = event.retry;
        deliver(event.id, event.type, event.data);
        if (signal.aborted) return;
      }
      if (batch.lastEventId) remember(batch.lastEventId);
    }
  };

  const expire = (connection: Connection): void => {
    connection.silent = true;
    connection.abort.abort();
  };

  /** Opens a connection; `overlap` keeps the others until it is connected (token refresh, probe). */
  const open = (overlap = false, probe = false): void => {
    if (!probe) {
      clearTimeout(retryTimer);
      retryTimer = undefined;
    }
    if (!overlap) for (const other of connections) other.abort.abort();
    // Without a topic there is nothing to ask for: subscribe() opens the connection.
    if (closed || topics.length === 0) return;
    const isPoll = polling && !probe;
    const connection: Connection = { abort: new AbortController(), poll: isPoll, probe, query: query() };
    connections.add(connection);
    if (!isPoll && !eventSource) watchdog.watch(connection, watchLimit, () => expire(connection));
    (isPoll ? poll : eventSource ? nativeEventSource : stream)(connection).then(
      () => ended(connection),
      (error: unknown) => ended(connection, error),
    );
  };

  /** A connection ended: decide what follows from how. */
  const ended = (connection: Connection, error?: unknown): void => {
    connections.delete(connection);
    watchdog.unwatch(connection);
    if (connection.id === connectionId) connectionId = undefined;
    // A probe that failed (or was cut short by a new poll): the next one is due in probeMs.
    if (connection.probe) {
      scheduleProbe();
      return;
    }
    // Closed, or replaced on purpose: nothing to do. (The watchdog's abort is not on purpose.)
    if (closed || (connection.abort.signal.aborted && !connection.silent)) return;
    const refusal = error instanceof HeraldClientError && error.status > 200 ? error : undefined;
    const kind = refusal ? classify(refusal.status) : 'transient';
    if (refusal && (kind === 'fatal' || (kind === 'auth' && unauthorized++ > 0))) {
      shut(refusal.message, refusal);
      return;
    }
    if (kind === 'auth') {
      open(connections.size > 0); // at once, with a fresh token
      return;
    }
    // Silent from the start: bytes held back somewhere (or a dead network; polling copes with both).
    if (connection.silent && !connection.bytes && !connection.poll) emptyStreams++;
    const notAStream = error instanceof HeraldClientError && error.status === 200;
    if (autoPolling && !connection.poll && (notAStream || emptyStreams >= EMPTY_STREAMS_BEFORE_POLLING)) {
      // Streams get through but their bytes do not (a buffering proxy): long-poll instead, and
      // try streaming again now and then.
      polling = true;
      emptyStreams = 0;
      scheduleProbe();
      open();
      return;
    }
    // Another connection carries on (a refreshed stream being opened, or the one it replaces).
    if (connections.size > 0) return;
    const why = connection.silent
      ? `no data for ${watchLimit} ms`
      : error === undefined
        ? 'the stream ended'
        : error instanceof Error
          ? error.message
          : String(error);
    setStatus('reconnecting', why, refusal);
    if (global.navigator?.onLine === false) return; // `online` reconnects
    // The hub's `retry:` is a floor, as for EventSource (WHATWG HTML §9.2.3): the jitter that
    // spreads clients cut off together is added to it, never taken from it.
    const delay = (retryHint ?? 0) + backoffDelay(attempt++, retryHint ?? initialMs, maxMs);
    retryTimer = setTimeout(() => open(), Math.max(delay, refusal?.retryAfterMs ?? 0));
  };

  const scheduleProbe = (): void => {
    clearTimeout(probeTimer);
    if (polling && !closed) probeTimer = setTimeout(() => open(true, true), probeMs);
  };

  /** Opens a stream with the current topics unless one is already on its way. */
  const resync = (): void => {
    const current = query();
    for (const connection of connections) if (!connection.id && connection.query === current) return;
    if (polling) open();
    else open(true);
  };

  const onOnline = (): void => {
    if (!closed && connections.size === 0) open();
  };
  const onOffline = (): void => {
    // Attempts would fail anyway: wait for `online` instead of burning through the backoff.
    clearTimeout(retryTimer);
  };

  const shut = (why: string, error?: HeraldClientError): void => {
    closed = true;
    clearTimeout(retryTimer);
    clearTimeout(probeTimer);
    watchdog.stop();
    for (const connection of connections) connection.abort.abort();
    connections.clear();
    connectionId = undefined;
    global.removeEventListener?.('online', onOnline);
    global.removeEventListener?.('offline', onOffline);
    setStatus('closed', why, error);
    handlers.clear();
    statusHandlers.clear();
    gapHandlers.clear();
  };

  // ---- subscriptions ------------------------------------------------------------------------

  const change = async (action: 'subscribe' | 'unsubscribe', list: string[]): Promise<void> => {
    if (closed) throw new HeraldClientError(0, 'the client is closed');
    const before = topics;
    topics =
      action === 'subscribe'
        ? [...new Set([...topics, ...list])]
        : topics.filter((topic) => !list.includes(topic));
    let connection: Connection | undefined;
    for (const candidate of connections)
      if (candidate.id === connectionId && connectionId) connection = candidate;
    // No open stream: the next connection asks for the new list. Polling, or idle (there was
    // no topic): that is now.
    if (!connection) {
      if (polling || (connections.size === 0 && retryTimer === undefined)) open();
      return;
    }
    let bearer = connection.token;
    for (let tries = 0; ; tries++) {
      let response: Response;
      try {
        response = await doFetch(`${root}v1/subscriptions`, {
          method: 'POST',
          headers: headers(bearer, { 'content-type': 'application/json' }),
          body: JSON.stringify({
            connectionId: connection.id,
            secret: connection.secret,
            action,
            topics: list,
          }),
          credentials,
        });
      } catch {
        // No answer: whether the change was made is unknown, so a stream with the new list
        // replaces this one (seamlessly, from Last-Event-ID).
        resync();
        return;
      }
      if (response.ok) return;
      const refusal = await problemOf(response);
      // The stream is gone, or on another node: open one with the new list; Last-Event-ID makes the
      // switch seamless.
      if (refusal.status === 404) {
        resync();
        return;
      }
      if (refusal.status === 401 && tries === 0) {
        bearer = await token(connection);
        continue;
      }
      // Refused: the list is what it was, for what this call changed.
      topics =
        action === 'subscribe'
          ? topics.filter((topic) => before.includes(topic) || !list.includes(topic))
          : [...new Set([...topics, ...list.filter((topic) => before.includes(topic))])];
      throw refusal;
    }
  };

  global.addEventListener?.('online', onOnline);
  global.addEventListener?.('offline', onOffline);
  open();

  return {
    get status() {
      return status;
    },
    get lastEventId() {
      return lastEventId;
    },
    get connectionId() {
      return connectionId;
    },
    get mode() {
      return polling ? 'poll' : 'stream';
    },
    get topics() {
      return topics;
    },
    on(type: string, handler: Handler<HeraldMessage<never>>) {
      const set = handlers.get(type) ?? new Set();
      handlers.set(type, set);
      for (const connection of connections) connection.listen?.(type);
      return add(set, handler);
    },
    onStatus: (handler) => add(statusHandlers, handler),
    onGap: (handler) => add(gapHandlers, handler),
    subscribe: (list) => change('subscribe', listOf(list)),
    unsubscribe: (list) => change('unsubscribe', listOf(list)),
    close: () => {
      if (!closed) shut('closed by the application');
    },
  } as HeraldClient<Events>;
}
