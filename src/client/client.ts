import type {
  ClientOptions,
  ClientStatus,
  FilterChange,
  GapInfo,
  Handler,
  HeraldClient,
  HeraldMessage,
  HistoryInfo,
  StatusChange,
} from './api.ts';
import { backoffDelay } from './backoff.ts';
import { RecentIds } from './dedup.ts';
import { classify, HeraldClientError } from './errors.ts';
import { poll } from './polling.ts';
import { presenceOf } from './presence.ts';
import { type Connection, emit, type Session } from './session.ts';
import { defaultStore } from './store.ts';
import { nativeEventSource, stream } from './stream.ts';
import { change, listOf } from './subscriptions.ts';
import { createWatchdog } from './watchdog.ts';

const EMPTY_STREAMS_BEFORE_POLLING = 3;

const parseData = (raw: string): unknown => {
  try {
    return JSON.parse(raw);
  } catch {
    return raw;
  }
};

/** A list of topics is a change of topics. */
const changeOf = (given: string | readonly string[] | FilterChange): FilterChange =>
  typeof given === 'string' || Array.isArray(given) ? { topics: given as string[] } : (given as FilterChange);

/**
 * Creates a client and starts connecting. This is the connection's lifecycle: which connection to
 * open, and what follows when one ends (reconnect with backoff, renew the token, fall back to long
 * polling and probe for streaming again, or close).
 */
export function createClient<Events extends Record<string, unknown> = Record<string, unknown>>(
  options: ClientOptions,
): HeraldClient<Events> {
  const { heartbeatMs = 15_000, probeMs = 60_000, parse = parseData, rewind, since, snapshot } = options;
  const { initialMs = 500, maxMs = 30_000 } = options.backoff ?? {};
  const eventSource = options.transport === 'eventsource';
  const autoPolling = options.polling !== 'never' && !eventSource;
  const global = globalThis as Partial<Window & typeof globalThis>;
  // One stream for the tabs: where tabs share an origin (a browser window: not a worker, nor Node
  // or a DOM faked in it, unless asked for), and both APIs exist. Not by default for a cookie: the
  // hub lets a cookie open channels (a POST) only from an origin it was told to allow. An admin's `tenant` view asks for what a shared stream
  // cannot carry. Loaded only then: the other clients do not pay for it.
  const shareTabs =
    options.shareTabs !== false &&
    !eventSource &&
    options.tenant === undefined &&
    (options.shareTabs === true ||
      (options.token !== undefined &&
        typeof global.Window === 'function' &&
        global instanceof global.Window)) &&
    !!global.navigator?.locks &&
    typeof global.BroadcastChannel === 'function';
  const doFetch: typeof fetch = options.fetch ?? ((input, init) => fetch(input, init));
  // Relative to the page; always ends with one slash, so `v1/events` resolves below it.
  const root = `${new URL(options.url, global.location?.href)}`.replace(/\/*$/, '/');

  const queryOf = (topics: readonly string[], types: readonly string[], tags: Session['tags']): string => {
    const params = new URLSearchParams();
    for (const topic of topics) params.append('topic', topic);
    for (const type of types) params.append('type', type);
    if (options.tenant !== undefined) params.append('tenant', options.tenant);
    if (options.presence === true) params.append('presence', '1');
    for (const [name, values] of Object.entries(tags)) {
      for (const value of values) params.append(`tag.${name}`, value);
    }
    return `${params}`;
  };

  // The history to start with: asked for by a connection with no id to resume from.
  const history = new URLSearchParams();
  if (rewind !== undefined) history.set('rewind', `${rewind}`);
  if (since !== undefined) history.set('since', since instanceof Date ? since.toISOString() : `${since}`);
  if (snapshot) history.set('snapshot', snapshot);
  const start = `${history}` && `&${history}`;

  const topics = listOf(options.topics);
  const types = listOf(options.types ?? []);
  const tags: Session['tags'] = {};
  for (const [name, values] of Object.entries(options.tags ?? {})) tags[name] = listOf(values);
  const store = options.store === undefined ? defaultStore() : options.store;
  const storeKey = options.storeKey ?? `herald:${root}?${queryOf(topics, types, tags)}`;
  let lastEventId: string | undefined;
  try {
    // A page that asks for history needs its state again on a reload, not a resume.
    if (!start) lastEventId = store?.get(storeKey) ?? undefined;
  } catch {
    // A store that cannot be read is a store without an id.
  }

  let status: ClientStatus = 'connecting';
  let reason: string | undefined;
  const statusHandlers = new Set<Handler<StatusChange>>();

  const session: Session = {
    options,
    root,
    start,
    credentials: options.withCredentials ? 'include' : 'same-origin',
    // Called as a plain function, as the application's fetch expects (a window.fetch called as
    // another object's method throws).
    fetch: (input, init) => doFetch(input, init),
    watchLimit: heartbeatMs * 2.5,
    parse,
    connections: new Set<Connection>(),
    handlers: new Map(),
    gapHandlers: new Set<Handler<GapInfo>>(),
    historyHandlers: new Set<Handler<HistoryInfo>>(),
    // A history repeated after a drop is de-duplicated whole: the window holds all of it (10 000
    // is the hub's default bound on a snapshot).
    recent: new RecentIds(Math.max(1024, Number(rewind) | 0, snapshot ? 10_000 : 0)),
    watchdog: createWatchdog<Connection>(),
    topics,
    types,
    tags,
    lastEventId,
    connectionId: undefined,
    polling: false,
    closed: false,
    attempt: 0,
    unauthorized: 0,
    emptyStreams: 0,
    retryHint: undefined,
    share: shareTabs
      ? (session, connection) => import('./tab-share.ts').then(({ shared }) => shared(session, connection))
      : undefined,
    leave: undefined,
    retryTimer: undefined,
    probeTimer: undefined,
    query: () => queryOf(session.topics, session.types, session.tags),
    remember(id) {
      session.lastEventId = id;
      try {
        store?.set(storeKey, id);
      } catch {
        // Storage full or blocked: the id is still used for this client's reconnections.
      }
    },
    setStatus(next, why, error) {
      if (next === status && why === reason) return;
      status = next;
      reason = why;
      emit(statusHandlers, error ? { status, reason, error } : why ? { status, reason } : { status });
    },
    open: (overlap, probe) => open(overlap, probe),
    resync: () => resync(),
    expire(connection) {
      connection.silent = true;
      connection.abort.abort();
    },
  };
  const { connections, watchdog, watchLimit } = session;

  const add = <T>(set: Set<Handler<T>>, handler: Handler<T>) => {
    set.add(handler);
    return () => void set.delete(handler);
  };

  const open = (overlap = false, probe = false): void => {
    if (!probe) {
      clearTimeout(session.retryTimer);
      session.retryTimer = undefined;
    }
    if (!overlap) for (const other of connections) other.abort.abort();
    // Without a topic there is nothing to ask for: subscribe() opens the connection.
    if (session.closed || session.topics.length === 0) return;
    const isPoll = session.polling && !probe;
    const connection: Connection = {
      abort: new AbortController(),
      poll: isPoll,
      probe,
      query: session.query(),
    };
    connections.add(connection);
    if (!isPoll && !eventSource) watchdog.watch(connection, watchLimit, () => session.expire(connection));
    (isPoll ? poll : eventSource ? nativeEventSource : (session.share ?? stream))(session, connection).then(
      () => ended(connection),
      (error: unknown) => ended(connection, error),
    );
  };

  /** A connection ended: decide what follows from how. */
  const ended = (connection: Connection, error?: unknown): void => {
    connections.delete(connection);
    watchdog.unwatch(connection);
    if (connection.id === session.connectionId) session.connectionId = undefined;
    if ((error as { unshared?: boolean } | undefined)?.unshared) {
      // No tab sharing here after all (the hub has no shared streams, too many tabs, a proxy):
      // this client streams on its own, now.
      session.share = undefined;
      if (!session.closed) open(connections.size > 0, connection.probe);
      return;
    }
    // A probe that failed (or was cut short by a new poll): the next one is due in probeMs.
    if (connection.probe) {
      scheduleProbe();
      return;
    }
    // Closed, or replaced on purpose: nothing to do. (The watchdog's abort is not on purpose.)
    if (session.closed || (connection.abort.signal.aborted && !connection.silent)) return;
    const told = connection.disconnect;
    if (told && !told.reconnect) {
      // An admin said not to come back with this credential: the client stops, and says why.
      // The application may create a client again, with another token.
      shut(`disconnected: ${told.reason}`, new HeraldClientError(0, told.reason, 'disconnected'));
      return;
    }
    const refusal = error instanceof HeraldClientError && error.status > 200 ? error : undefined;
    const kind = refusal ? classify(refusal.status) : 'transient';
    if (refusal && (kind === 'fatal' || (kind === 'auth' && session.unauthorized++ > 0))) {
      shut(refusal.message, refusal);
      return;
    }
    if (kind === 'auth') {
      open(connections.size > 0); // at once, with a fresh token
      return;
    }
    // Silent from the start: bytes held back somewhere (or a dead network; polling copes with both).
    if (connection.silent && !connection.bytes && !connection.poll) session.emptyStreams++;
    const notAStream = error instanceof HeraldClientError && error.status === 200;
    if (
      autoPolling &&
      !connection.poll &&
      (notAStream || session.emptyStreams >= EMPTY_STREAMS_BEFORE_POLLING)
    ) {
      // Streams get through but their bytes do not (a buffering proxy): long-poll instead, and
      // try streaming again now and then.
      session.polling = true;
      session.emptyStreams = 0;
      scheduleProbe();
      open();
      return;
    }
    // Another connection carries on (a refreshed stream being opened, or the one it replaces).
    // Not for a poll: the others are probes, and were they to fail nothing would poll again.
    if (!connection.poll && connections.size > 0) return;
    const why = connection.silent
      ? `no data for ${watchLimit} ms`
      : error === undefined
        ? 'the stream ended'
        : error instanceof Error
          ? error.message
          : String(error);
    session.setStatus('reconnecting', why, refusal);
    if (global.navigator?.onLine === false) return; // `online` reconnects
    // The hub's `retry:` is a floor, as for EventSource (WHATWG HTML §9.2.3): the jitter that
    // spreads clients cut off together is added to it, never taken from it.
    const { retryHint } = session;
    const delay = (retryHint ?? 0) + backoffDelay(session.attempt++, retryHint ?? initialMs, maxMs);
    session.retryTimer = setTimeout(() => open(), Math.max(delay, refusal?.retryAfterMs ?? 0));
  };

  const scheduleProbe = (): void => {
    clearTimeout(session.probeTimer);
    if (session.polling && !session.closed) session.probeTimer = setTimeout(() => open(true, true), probeMs);
  };

  const resync = (): void => {
    const current = session.query();
    for (const connection of connections) if (!connection.id && connection.query === current) return;
    if (session.polling) open();
    else open(true);
  };

  const onOnline = (): void => {
    if (!session.closed && connections.size === 0) open();
  };
  const onOffline = (): void => {
    // Attempts would fail anyway: wait for `online` instead of burning through the backoff.
    clearTimeout(session.retryTimer);
  };

  const shut = (why: string, error?: HeraldClientError): void => {
    session.closed = true;
    clearTimeout(session.retryTimer);
    clearTimeout(session.probeTimer);
    watchdog.stop();
    for (const connection of connections) connection.abort.abort();
    connections.clear();
    session.leave?.();
    session.connectionId = undefined;
    global.removeEventListener?.('online', onOnline);
    global.removeEventListener?.('offline', onOffline);
    session.setStatus('closed', why, error);
    session.handlers.clear();
    statusHandlers.clear();
    session.gapHandlers.clear();
    session.historyHandlers.clear();
  };

  global.addEventListener?.('online', onOnline);
  global.addEventListener?.('offline', onOffline);
  open();

  return {
    get status() {
      return status;
    },
    get lastEventId() {
      return session.lastEventId;
    },
    get connectionId() {
      return session.connectionId;
    },
    get mode() {
      return session.polling ? 'poll' : 'stream';
    },
    get topics() {
      return session.topics;
    },
    get types() {
      return session.types;
    },
    get tags() {
      return session.tags;
    },
    on(type: string, handler: Handler<HeraldMessage<never>>) {
      const set = session.handlers.get(type) ?? new Set();
      session.handlers.set(type, set);
      for (const connection of connections) connection.listen?.(type);
      return add(set, handler);
    },
    onStatus: (handler) => add(statusHandlers, handler),
    onGap: (handler) => add(session.gapHandlers, handler),
    onHistory: (handler) => add(session.historyHandlers, handler),
    subscribe: (given) => change(session, 'subscribe', changeOf(given)),
    unsubscribe: (given) => change(session, 'unsubscribe', changeOf(given)),
    setFilter: ({ types, tags }) => change(session, 'set', { types, tags }),
    presence: (topic: string) => presenceOf(session, topic),
    close: () => {
      if (!session.closed) shut('closed by the application');
    },
  } as HeraldClient<Events>;
}
