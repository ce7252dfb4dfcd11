/**
 * `herald/react`: one Herald connection per provider, read through hooks built on
 * `useSyncExternalStore`. Correct under StrictMode (one connection, not two), in server rendering
 * (no connection at all), and with handlers that change on every render (no resubscription).
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
import type { ClientOptions, HeraldClient, HeraldMessage, StatusChange } from './api.ts';
import { type SharedClient, shareClient } from './shared.ts';

export type { SharedClient } from './shared.ts';
export { shareClient } from './shared.ts';

const HeraldContext = createContext<SharedClient | null>(null);

export type HeraldProviderProps<Events extends Record<string, unknown> = Record<string, unknown>> = {
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
export function HeraldProvider<Events extends Record<string, unknown> = Record<string, unknown>>(
  props: HeraldProviderProps<Events>,
): ReactNode {
  const [shared] = useState(
    () => shareClient((props.client ?? props.options) as ClientOptions | HeraldClient) as SharedClient,
  );
  useEffect(() => shared.retain(), [shared]);
  return createElement(HeraldContext.Provider, { value: shared }, props.children);
}

function useShared(): SharedClient {
  const shared = useContext(HeraldContext);
  if (shared === null) throw new Error('Herald hooks must be used inside <HeraldProvider>');
  return shared;
}

/** The provider's client: `subscribe`, `unsubscribe`, `lastEventId`… The same object for the provider's life. */
export function useHerald<
  Events extends Record<string, unknown> = Record<string, unknown>,
>(): HeraldClient<Events> {
  return useShared().client as unknown as HeraldClient<Events>;
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
  const latest = useRef(handler);
  // Before any effect or event of this commit can call it; unlike useLayoutEffect, quiet in
  // server rendering on React 18 too.
  useInsertionEffect(() => {
    latest.current = handler;
  });
  useEffect(() => client.on(type, (message) => latest.current(message as HeraldMessage<T>)), [client, type]);
}

/**
 * The data of the latest event of `type` (undefined until one arrives), or what `select` makes of
 * it. `select` runs once per event, not once per render, unless it changes.
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

/** The connection's status and why: `{ status: 'closed', reason: 'the token expired at …' }`. */
export function useHeraldStatus(): StatusChange {
  const shared = useShared();
  const subscribe = useCallback((onChange: () => void) => shared.watchStatus(onChange), [shared]);
  return useSyncExternalStore(subscribe, shared.status, shared.status);
}
