/**
 * `herald/react`: one Herald connection per provider, read through hooks built on
 * `useSyncExternalStore`. Correct under StrictMode (one connection, not two), in server rendering
 * (no connection at all, and no browser global read), and with handlers that change on every
 * render (no resubscription). `createHeraldHooks<Events>()` gives the same hooks typed by an event
 * map (src/client/event-map.ts).
 */
import {
  createContext,
  createElement,
  type ReactNode,
  useCallback,
  useContext,
  useEffect,
  useInsertionEffect,
  useMemo,
  useRef,
  useState,
  useSyncExternalStore,
} from 'react';
import { PRESENCE_EVENT, type PresencePayload } from '../core/protocol/system-events.ts';
import type {
  ClientOptions,
  EventMessage,
  HeraldClient,
  HeraldMessage,
  PresenceInfo,
  StatusChange,
} from './api.ts';
import type { EventMap, EventType } from './event-map.ts';
import { type SharedClient, shareClient } from './shared.ts';

export type { EventMap, EventType } from './event-map.ts';
export type { SharedClient } from './shared.ts';
export { shareClient } from './shared.ts';

const HeraldContext = createContext<SharedClient | null>(null);

export type HeraldProviderProps<Events extends EventMap = EventMap> = {
  readonly children?: ReactNode;
} & (
  | {
      /** The provider creates the client when it mounts and closes it when it unmounts. Read once. */
      readonly options: ClientOptions;
      readonly client?: undefined;
    }
  | {
      /** A client the application created and closes itself. */
      readonly client: HeraldClient<Events>;
      readonly options?: undefined;
    }
);

/** Provides one Herald client to the tree below. Changing `options` later has no effect: change the provider's `key` instead. */
export function HeraldProvider<Events extends EventMap = EventMap>(
  props: HeraldProviderProps<Events>,
): ReactNode {
  const [shared] = useState(
    () => shareClient((props.client ?? props.options) as ClientOptions | HeraldClient) as SharedClient,
  );
  // The children's effects run before this one: every hook below has its handler in place when
  // the connection opens, so none misses the history (`rewind`, `snapshot`) it starts with.
  useEffect(() => shared.retain(), [shared]);
  return createElement(HeraldContext.Provider, { value: shared }, props.children);
}

function useShared(): SharedClient {
  const shared = useContext(HeraldContext);
  if (shared === null) throw new Error('Herald hooks must be used inside <HeraldProvider>');
  return shared;
}

/** The provider's client: `subscribe`, `unsubscribe`, `lastEventId`… The same object for the provider's life. */
export function useHerald<Events extends EventMap = EventMap>(): HeraldClient<Events> {
  return useShared().client as unknown as HeraldClient<Events>;
}

/** Keeps the latest value of a render where effects of the same commit and later events read it. */
function useLatestRef<T>(value: T): { readonly current: T } {
  const ref = useRef(value);
  // Before any effect or event of this commit can read it; unlike useLayoutEffect, quiet in
  // server rendering on React 18 too.
  useInsertionEffect(() => {
    ref.current = value;
  });
  return ref;
}

/**
 * Calls `handler` for every event of `type` (`*`: every event). The latest `handler` is called:
 * passing a new function on each render does not resubscribe.
 */
export function useHeraldEvent<T = unknown>(
  type: string,
  handler: (message: HeraldMessage<T>) => void,
): void {
  const { client } = useShared();
  const latest = useLatestRef(handler);
  useEffect(
    () => client.on(type, (message) => latest.current(message as HeraldMessage<T>)),
    [client, type, latest],
  );
}

/**
 * The data of the latest event of `type` (undefined until one arrives), or what `select` makes of
 * it. `select` runs once per event, not once per render, unless it changes. Tracked by the provider
 * from the first hook that asks for `type`: the history a connection starts with (`snapshot:
 * 'latest'`) seeds it, and a component mounted later finds the value too.
 */
export function useLatest<T = unknown, R = T>(
  type: string,
  select?: (data: T, message: HeraldMessage<T>) => R,
): R | undefined {
  const shared = useShared();
  const subscribe = useCallback((onChange: () => void) => shared.watch(type, onChange), [shared, type]);
  const snapshot = useMemo(() => {
    let computed = false;
    let seen: HeraldMessage | undefined;
    let value: R | undefined;
    return (): R | undefined => {
      const message = shared.latest(type);
      if (!computed || message !== seen) {
        computed = true;
        seen = message;
        const typed = message as HeraldMessage<T> | undefined;
        value =
          typed === undefined ? undefined : select ? select(typed.data, typed) : (typed.data as unknown as R);
      }
      return value;
    };
  }, [shared, type, select]);
  return useSyncExternalStore(subscribe, snapshot, snapshot);
}

export interface RecentEvents<M> {
  /** The last `limit` events, oldest first (newest last), each once. */
  readonly events: readonly M[];
  /** Empties the list; events that arrive afterwards fill it again. */
  clear(): void;
}

export interface RecentEventsOptions {
  /** How many events are kept. Default 100. */
  readonly limit?: number;
}

const NONE: readonly never[] = [];

/**
 * The last `limit` events of `type` (`*`: of every type) since the component mounted, oldest first:
 * a feed, a log, a list of recent orders. A smaller `limit` on a later render trims the list.
 */
export function useHeraldEvents<T = unknown>(
  type: string,
  { limit = 100 }: RecentEventsOptions = {},
): RecentEvents<HeraldMessage<T>> {
  if (!Number.isInteger(limit) || limit < 1) {
    throw new RangeError(`useHeraldEvents: limit must be a whole number from 1, not ${limit}`);
  }
  const { client } = useShared();
  const [events, setEvents] = useState<readonly HeraldMessage<T>[]>(NONE);
  const bound = useLatestRef(limit);
  useEffect(
    () =>
      client.on(type, (message) =>
        setEvents((list) =>
          // A provider's reconnect() opens a new client, whose history (`snapshot`) may repeat
          // events already listed.
          message.id && list.some((listed) => listed.id === message.id)
            ? list
            : [...list, message as HeraldMessage<T>].slice(-bound.current),
        ),
      ),
    [client, type, bound],
  );
  const clear = useCallback(() => setEvents(NONE), []);
  return useMemo(
    () => ({ events: events.length > limit ? events.slice(-limit) : events, clear }),
    [events, limit, clear],
  );
}

/** The connection's status and why: `{ status: 'closed', reason: 'the token expired at …' }`. */
export function useHeraldStatus(): StatusChange {
  const shared = useShared();
  const subscribe = useCallback((onChange: () => void) => shared.watchStatus(onChange), [shared]);
  return useSyncExternalStore(subscribe, shared.status, shared.status);
}

/**
 * A function (the same one for the provider's life) that opens a new connection at once, resuming
 * from the last event handled: a "Reconnect" button for a client closed on a refusal, or one that
 * should not wait out its backoff. The provider must own its client (`options`), or be given one
 * with a `reconnect()` method.
 */
export function useReconnect(): () => void {
  const shared = useShared();
  return useCallback(() => shared.reconnect(), [shared]);
}

/** The hooks typed by an event map: a misspelt type or a field the payload lacks is a compile error. */
/** Who is on a topic, as `usePresence` keeps it. */
export interface PresenceState {
  readonly topic: string;
  /** Streams on the topic across the cluster. */
  readonly connections: number;
  /** Distinct subjects among them. */
  readonly subjects: number;
  /** Each subject and its streams, most first: when the token may see them. */
  readonly members?: readonly { readonly subject: string; readonly connections: number }[];
  /** Until the first answer. */
  readonly loading: boolean;
  /** Why the last fetch failed (a refusal: `HeraldClientError`). */
  readonly error?: Error;
}

/**
 * Who is on `topic` across the hub's cluster: fetched when the component mounts (`GET
 * /v1/presence`), then kept up to date by the `herald.presence` notices of the provider's stream,
 * which asks for them with `presence: true` and must select `topic` exactly (the token needs the
 * `presence:members` permission, or admin). Without notices the value is the mount's.
 */
export function usePresence(topic: string): PresenceState {
  const { client } = useShared();
  const [state, setState] = useState<PresenceState>({ topic, connections: 0, subjects: 0, loading: true });
  useEffect(() => {
    let active = true;
    // Subject → streams, and the streams without a subject (counted, never announced).
    let members = new Map<string, number>();
    let others = 0;
    let withMembers = false;
    let subjects = 0;
    // Notices heard while a fetch is out, applied after it (they are absolute counts).
    let during: PresencePayload[] | undefined;
    let asked = 0;
    const render = (error?: Error) => {
      if (!active) return;
      let connections = others;
      for (const count of members.values()) connections += count;
      const list = [...members]
        .map(([subject, count]) => ({ subject, connections: count }))
        .sort((a, b) => b.connections - a.connections || (a.subject < b.subject ? -1 : 1));
      setState({
        topic,
        connections,
        subjects: withMembers ? members.size : subjects,
        ...(withMembers ? { members: list } : {}),
        loading: false,
        ...(error ? { error } : {}),
      });
    };
    const apply = (notice: PresencePayload) => {
      if (notice.connections > 0) members.set(notice.subject, notice.connections);
      else members.delete(notice.subject);
    };
    const fetchPresence = () => {
      const ask = ++asked;
      during ??= [];
      client.presence(topic).then(
        (info: PresenceInfo) => {
          if (ask !== asked || !active) return;
          const heard = during ?? [];
          during = undefined;
          members = new Map((info.members ?? []).map((member) => [member.subject, member.connections]));
          withMembers = info.members !== undefined;
          subjects = info.subjects;
          let named = 0;
          for (const count of members.values()) named += count;
          others = info.connections - named;
          if (!withMembers) {
            setState({ topic, connections: info.connections, subjects: info.subjects, loading: false });
            return;
          }
          for (const notice of heard) apply(notice);
          render();
        },
        (error: unknown) => {
          if (ask !== asked) return;
          during = undefined;
          render(error instanceof Error ? error : new Error(String(error)));
        },
      );
    };
    const stopNotices = client.on(PRESENCE_EVENT, (message) => {
      const notice = message.data as PresencePayload;
      if (notice?.topic !== topic) return;
      if (during !== undefined) {
        during.push(notice);
        return;
      }
      apply(notice);
      render();
    });
    // Asked again each time the stream (re)opens: this page's own stream is counted then, and
    // notices missed while it was down are made up for.
    const stopStatus = client.onStatus((change) => {
      if (change.status === 'open') fetchPresence();
    });
    fetchPresence();
    return () => {
      active = false;
      stopNotices();
      stopStatus();
    };
  }, [client, topic]);
  return state;
}

export interface HeraldHooks<Events extends EventMap> {
  HeraldProvider(props: HeraldProviderProps<Events>): ReactNode;
  useHerald(): HeraldClient<Events>;
  useHeraldEvent<K extends EventType<Events>>(
    type: K,
    handler: (message: EventMessage<Events, K>) => void,
  ): void;
  useHeraldEvent(type: '*', handler: (message: EventMessage<Events>) => void): void;
  useLatest<K extends EventType<Events>>(type: K): Events[K] | undefined;
  useLatest<K extends EventType<Events>, R>(
    type: K,
    select: (data: Events[K], message: EventMessage<Events, K>) => R,
  ): R | undefined;
  useHeraldEvents<K extends EventType<Events>>(
    type: K,
    options?: RecentEventsOptions,
  ): RecentEvents<EventMessage<Events, K>>;
  useHeraldEvents(type: '*', options?: RecentEventsOptions): RecentEvents<EventMessage<Events>>;
  useHeraldStatus(): StatusChange;
  useReconnect(): () => void;
}

/**
 * The hooks of this module, typed by `Events`: `const { useHeraldEvent, useLatest } =
 * createHeraldHooks<Events>()` once, next to the event map. The same functions at run time, so
 * typed and untyped hooks share one provider.
 */
export function createHeraldHooks<Events extends EventMap>(): HeraldHooks<Events> {
  return {
    HeraldProvider,
    useHerald,
    useHeraldEvent,
    useLatest,
    useHeraldEvents,
    useHeraldStatus,
    useReconnect,
  } as HeraldHooks<Events>;
}
