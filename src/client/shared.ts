import type { ClientOptions, GapInfo, HeraldClient, HeraldMessage, StatusChange } from './api.ts';
import { createClient } from './client.ts';

/**
 * What `<HeraldProvider>` holds: one client for a component tree, and the latest values the
 * hooks read. Free of React, so it is tested without a DOM.
 *
 * Given options, the provider owns the connection: `client` is a stable facade whose real client
 * is created by the first `retain()` (a mounted provider) and closed after the last release. A
 * release is carried out a microtask later, so StrictMode's unmount-and-mount-again keeps the one
 * connection instead of opening a second one. Render never connects: React may call a component's
 * state initializer twice and keep one result, and server rendering runs no effect.
 */
export interface SharedClient<Events extends Record<string, unknown> = Record<string, unknown>> {
  /** What `useHerald()` returns: the same object for the provider's whole life. */
  readonly client: HeraldClient<Events>;
  /** Opens the connection if needed; returns the release. */
  retain(): () => void;
  /** The latest message of `type` since `watch(type)` was first called. */
  latest(type: string): HeraldMessage | undefined;
  /** Calls `onChange` whenever a message of `type` arrives. Returns the unsubscribe. */
  watch(type: string, onChange: () => void): () => void;
  /** The latest status change (a stable object between changes). */
  status(): StatusChange;
  watchStatus(onChange: () => void): () => void;
}

type Any = Record<string, unknown>;

const isClient = (source: ClientOptions | HeraldClient<Any>): source is HeraldClient<Any> =>
  typeof (source as HeraldClient<Any>).on === 'function';

/**
 * @param source options (the provider owns the connection) or a client the application owns.
 * @param create the client factory (tests count the connections with it).
 */
export function shareClient<Events extends Record<string, unknown> = Record<string, unknown>>(
  source: ClientOptions | HeraldClient<Events>,
  create: (options: ClientOptions) => HeraldClient<Any> = createClient,
): SharedClient<Events> {
  const owned = !isClient(source as ClientOptions | HeraldClient<Any>);
  const client = (owned ? facade(source as ClientOptions, create) : source) as HeraldClient<Any> &
    Partial<Owned>;
  const latest = new Map<string, HeraldMessage>();
  const watchers = new Map<string, Set<() => void>>();
  const statusWatchers = new Set<() => void>();
  let status: StatusChange = { status: client.status };
  let trackingStatus = false;

  return {
    client: client as unknown as HeraldClient<Events>,
    retain: () => client.retain?.() ?? (() => {}),
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
  let topics: readonly string[] = [...options.topics];
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

  const start = (): void => {
    started = true;
    inner = create({ ...options, topics });
    for (const binding of bindings) binding.detach = binding.attach(inner);
    emitStatus({ status: inner.status });
  };
  const stop = (): void => {
    const client = inner;
    if (client === undefined) return;
    topics = client.topics;
    client.close(); // the status handlers hear `closed`
    for (const binding of bindings) binding.detach = binding.detach?.() as undefined;
    inner = undefined;
  };

  const change = async (
    action: 'subscribe' | 'unsubscribe',
    list: string | readonly string[],
  ): Promise<void> => {
    if (inner) {
      const client = inner;
      try {
        await client[action](list);
      } finally {
        topics = client.topics;
      }
      return;
    }
    const items = typeof list === 'string' ? [list] : list;
    topics =
      action === 'subscribe'
        ? [...new Set([...topics, ...items])]
        : topics.filter((topic) => !items.includes(topic));
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
    on: (type: string, handler: (message: HeraldMessage) => void) =>
      bind((client) => client.on(type, handler)),
    onGap: (handler: (gap: GapInfo) => void) => bind((client) => client.onGap(handler)),
    onStatus(handler: (change: StatusChange) => void) {
      statusHandlers.add(handler);
      return () => void statusHandlers.delete(handler);
    },
    subscribe: (list) => change('subscribe', list),
    unsubscribe: (list) => change('unsubscribe', list),
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
  } as HeraldClient<Any> & Owned;
}
