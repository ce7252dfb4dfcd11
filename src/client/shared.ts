import type {
  ClientOptions,
  FilterChange,
  GapInfo,
  HeraldClient,
  HeraldMessage,
  HistoryInfo,
  StatusChange,
} from './api.ts';
import { createClient } from './client.ts';
import { HeraldClientError } from './errors.ts';
import type { EventMap } from './event-map.ts';
import { defaultStore, type LastEventIdStore } from './store.ts';

/**
 * What `<HeraldProvider>` holds: one client for a component tree, and the latest values the
 * hooks read. Free of React, so it is tested without a DOM.
 *
 * Given options, the provider owns the connection: `client` is a stable facade whose real client
 * is created by the first `retain()` (a mounted provider) and closed after the last release. A
 * release is carried out a microtask later, so StrictMode's unmount-and-mount-again keeps the one
 * connection instead of opening a second one. Render never connects: React may call a component's
 * state initializer twice and keep one result, and server rendering runs no effect. Nothing here
 * touches a browser global before `retain()`.
 */
export interface SharedClient<Events extends EventMap = EventMap> {
  /** What `useHerald()` returns: the same object for the provider's whole life. */
  readonly client: HeraldClient<Events>;
  /** Opens the connection if needed; returns the release. */
  retain(): () => void;
  /**
   * A new connection now, resuming from the last event handled: after the client closed on a
   * refusal (an expired session renewed since), or to skip a reconnection's backoff.
   */
  reconnect(): void;
  /** The latest message of `type` since `watch(type)` was first called. */
  latest(type: string): HeraldMessage | undefined;
  /** Calls `onChange` whenever a message of `type` arrives. Returns the unsubscribe. */
  watch(type: string, onChange: () => void): () => void;
  /** The latest status change (a stable object between changes). */
  status(): StatusChange;
  watchStatus(onChange: () => void): () => void;
}

type Any = EventMap;

/** A client that can open a new connection in place (the facade; a client with such a method). */
type Reconnectable = { reconnect?: () => void };

const isClient = (source: ClientOptions | HeraldClient<Any>): source is HeraldClient<Any> =>
  typeof (source as HeraldClient<Any>).on === 'function';

/**
 * @param source options (the provider owns the connection) or a client the application owns.
 * @param create the client factory (tests count the connections with it).
 */
export function shareClient<Events extends EventMap = EventMap>(
  source: ClientOptions | HeraldClient<Events>,
  create: (options: ClientOptions) => HeraldClient<Any> = createClient,
): SharedClient<Events> {
  const owned = !isClient(source as ClientOptions | HeraldClient<Any>);
  const client = (owned ? facade(source as ClientOptions, create) : source) as HeraldClient<Any> &
    Partial<Owned> &
    Reconnectable;
  const latest = new Map<string, HeraldMessage>();
  const watchers = new Map<string, Set<() => void>>();
  const statusWatchers = new Set<() => void>();
  let status: StatusChange = { status: client.status };
  let trackingStatus = false;

  return {
    client: client as unknown as HeraldClient<Events>,
    retain: () => client.retain?.() ?? (() => {}),
    reconnect() {
      if (typeof client.reconnect !== 'function') {
        throw new Error(
          'reconnect() needs a <HeraldProvider> given options (it then owns the client), or a client with reconnect()',
        );
      }
      client.reconnect();
    },
    latest: (type) => latest.get(type),
    watch(type, onChange) {
      let set = watchers.get(type);
      if (set === undefined) {
        // Tracked from the first hook that asks until the provider goes: a component mounted
        // later still finds the latest value.
        const tracked = new Set<() => void>();
        set = tracked;
        watchers.set(type, tracked);
        client.on(type, (message) => {
          latest.set(type, message);
          for (const watcher of [...tracked]) watcher();
        });
      }
      set.add(onChange);
      const watching = set;
      return () => void watching.delete(onChange);
    },
    status() {
      // Read before any handler was attached (or across a change of the real client): catch up,
      // keeping one object per status so that useSyncExternalStore sees a stable snapshot.
      if (status.status !== client.status) status = { status: client.status };
      return status;
    },
    watchStatus(onChange) {
      if (!trackingStatus) {
        trackingStatus = true;
        client.onStatus((change) => {
          status = change;
          for (const watcher of [...statusWatchers]) watcher();
        });
      }
      statusWatchers.add(onChange);
      return () => void statusWatchers.delete(onChange);
    },
  };
}

interface Owned {
  retain(): () => void;
  reconnect(): void;
}

type Action = 'subscribe' | 'unsubscribe' | 'set';
type Tags = Record<string, readonly string[]>;

const listOf = (given: string | readonly string[]): string[] =>
  typeof given === 'string' ? [given] : [...given];

/**
 * A list of types or of one tag's values after `action`, before there is a client to ask (the
 * rules of `client.subscribe`/`unsubscribe`): undefined takes every value, and a change that would
 * widen a narrowing to every value is refused rather than made silently.
 */
function changed(now: readonly string[] | undefined, action: Action, given: string[]): string[] | undefined {
  if (action === 'set') return [...new Set(given)];
  if (action === 'subscribe') return now && [...new Set([...now, ...given])];
  const kept = now?.filter((value) => !given.includes(value));
  if (!kept?.length) {
    throw new HeraldClientError(
      400,
      `unsubscribe ${given.join(', ')} would leave no filter, or there is none to narrow: use setFilter()`,
    );
  }
  return kept;
}

/** A client that forwards to a real one created on `retain()`, keeping its handlers across them. */
function facade(
  options: ClientOptions,
  create: (options: ClientOptions) => HeraldClient<Any>,
): HeraldClient<Any> & Owned {
  let inner: HeraldClient<Any> | undefined;
  let users = 0;
  let started = false;
  let closed = false;
  // What the next real client asks for: the options, as changed while there was none.
  let topics: readonly string[] = [...options.topics];
  let types: readonly string[] = [...(options.types ?? [])];
  let tags: Tags = Object.fromEntries(
    Object.entries(options.tags ?? {}).map(([name, values]) => [name, listOf(values)]),
  );
  // Each handler given to the facade, and how to detach it from the current real client.
  const bindings = new Set<{
    attach: (client: HeraldClient<Any>) => () => void;
    detach?: (() => void) | undefined;
  }>();
  const statusHandlers = new Set<(change: StatusChange) => void>();

  const bind = (attach: (client: HeraldClient<Any>) => () => void): (() => void) => {
    const binding = { attach, detach: inner && attach(inner) };
    bindings.add(binding);
    return () => {
      bindings.delete(binding);
      binding.detach?.();
    };
  };
  const emitStatus = (change: StatusChange): void => {
    for (const handler of [...statusHandlers]) handler(change);
  };
  bind((client) => client.onStatus(emitStatus));

  /** `resumeFrom`: the id the last client got to, which the new one goes on from. */
  const start = (resumeFrom?: string): void => {
    started = true;
    let store: LastEventIdStore | null | undefined = options.store;
    if (resumeFrom !== undefined) {
      // Its topics may have changed since, and with them the key the id was stored under.
      const kept = store === undefined ? defaultStore() : store;
      store = { get: () => resumeFrom, set: (key, id) => kept?.set(key, id) };
    }
    inner = create({ ...options, topics, types, tags, store });
    for (const binding of bindings) binding.detach = binding.attach(inner);
    emitStatus({ status: inner.status });
  };
  const stop = (): void => {
    const client = inner;
    if (client === undefined) return;
    ({ topics, types, tags } = client);
    client.close(); // the status handlers hear `closed`
    for (const binding of bindings) binding.detach = binding.detach?.() as undefined;
    inner = undefined;
  };

  const change = async (action: Action, given: string | readonly string[] | FilterChange): Promise<void> => {
    const filter =
      typeof given === 'string' || Array.isArray(given)
        ? { topics: given as string | readonly string[] }
        : (given as FilterChange);
    if (inner) {
      const client = inner;
      try {
        await (action === 'set' ? client.setFilter(filter) : client[action](given));
      } finally {
        ({ topics, types, tags } = client);
      }
      return;
    }
    // Worked out whole before any is assigned: a refusal changes nothing.
    let nextTypes = types;
    if (filter.types !== undefined) {
      nextTypes = changed(types.length ? types : undefined, action, listOf(filter.types)) ?? [];
    }
    let nextTags = tags;
    if (filter.tags !== undefined) {
      nextTags = action === 'set' ? {} : { ...tags };
      for (const [name, values] of Object.entries(filter.tags)) {
        const next = changed(tags[name], action, listOf(values));
        if (next) nextTags[name] = next;
      }
    }
    if (filter.topics !== undefined) {
      const items = listOf(filter.topics);
      topics =
        action === 'subscribe'
          ? [...new Set([...topics, ...items])]
          : topics.filter((topic) => !items.includes(topic));
    }
    types = nextTypes;
    tags = nextTags;
  };

  return {
    get status() {
      return inner?.status ?? (started || closed ? 'closed' : 'connecting');
    },
    get lastEventId() {
      return inner?.lastEventId;
    },
    get connectionId() {
      return inner?.connectionId;
    },
    get mode() {
      return inner?.mode ?? 'stream';
    },
    get topics() {
      return inner?.topics ?? topics;
    },
    get types() {
      return inner?.types ?? types;
    },
    get tags() {
      return inner?.tags ?? tags;
    },
    on: (type: string, handler: (message: HeraldMessage) => void) =>
      bind((client) => client.on(type, handler)),
    onGap: (handler: (gap: GapInfo) => void) => bind((client) => client.onGap(handler)),
    onHistory: (handler: (history: HistoryInfo) => void) => bind((client) => client.onHistory(handler)),
    onStatus(handler: (change: StatusChange) => void) {
      statusHandlers.add(handler);
      return () => void statusHandlers.delete(handler);
    },
    subscribe: (given) => change('subscribe', given),
    unsubscribe: (given) => change('unsubscribe', given),
    setFilter: (filter) => change('set', filter),
    async presence(topic: string) {
      if (inner) return inner.presence(topic);
      // Unmounted: a client of no topic asks (it opens no stream), and is closed again.
      const asking = create({ ...options, topics: [], store: null });
      try {
        return await asking.presence(topic);
      } finally {
        asking.close();
      }
    },
    close() {
      closed = true;
      stop();
    },
    retain() {
      users++;
      if (!inner && !closed) start();
      let released = false;
      return () => {
        if (released) return;
        released = true;
        users--;
        // StrictMode mounts again right after this unmount: close only if nobody came back.
        queueMicrotask(() => {
          if (users === 0) stop();
        });
      };
    },
    reconnect() {
      // Only while mounted: an unmounted provider has no connection to renew.
      if (closed || inner === undefined) return;
      const current = inner as HeraldClient<Any> & Reconnectable;
      if (typeof current.reconnect === 'function') {
        current.reconnect();
        return;
      }
      const resumeFrom = current.lastEventId;
      // Detached first: the page sees `connecting`, not a `closed` it did not ask for.
      for (const binding of bindings) binding.detach = binding.detach?.() as undefined;
      stop();
      start(resumeFrom);
    },
  } as HeraldClient<Any> & Owned;
}
