/**
 * The heartbeat watchdog: a connection that receives no byte for its limit is given up (the
 * server sends a heartbeat comment on a quiet stream, so silence means a dead TCP connection or a
 * proxy holding the stream back). One timer per client, whatever the number of connections and
 * events: a byte only records the time; the timer, when it fires, re-arms itself for whatever is
 * due next.
 */

/** What the watchdog needs of time; injected by the tests. */
export interface Clock {
  now(): number;
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

interface Watched {
  last: number;
  readonly limit: number;
  readonly expire: () => void;
}

export interface Watchdog<K> {
  /** Watches `key` from now: `expire` runs once it has been silent for `limitMs`. */
  watch(key: K, limitMs: number, expire: () => void): void;
  /** Bytes arrived on `key`. Costs a clock read, never a timer. */
  touch(key: K): void;
  unwatch(key: K): void;
  /** Forgets everything and clears the timer. */
  stop(): void;
}

export function createWatchdog<K>(clock: Clock = systemClock): Watchdog<K> {
  const watched = new Map<K, Watched>();
  let timer: unknown;
  let due = Number.POSITIVE_INFINITY;

  const disarm = (): void => {
    if (timer !== undefined) clock.clearTimeout(timer);
    timer = undefined;
    due = Number.POSITIVE_INFINITY;
  };

  // Arms the timer for the earliest deadline, unless it is already armed for one no later.
  const arm = (): void => {
    let next = Number.POSITIVE_INFINITY;
    for (const item of watched.values()) next = Math.min(next, item.last + item.limit);
    if (next >= due) return;
    disarm();
    if (next === Number.POSITIVE_INFINITY) return;
    due = next;
    timer = clock.setTimeout(check, Math.max(0, next - clock.now()));
  };

  const check = (): void => {
    timer = undefined;
    due = Number.POSITIVE_INFINITY;
    const now = clock.now();
    for (const [key, item] of watched) {
      if (now - item.last >= item.limit) {
        watched.delete(key);
        item.expire();
      }
    }
    arm();
  };

  return {
    watch(key, limit, expire) {
      watched.set(key, { last: clock.now(), limit, expire });
      arm();
    },
    touch(key) {
      const item = watched.get(key);
      if (item !== undefined) item.last = clock.now();
    },
    unwatch(key) {
      watched.delete(key);
      if (watched.size === 0) disarm();
    },
    stop() {
      watched.clear();
      disarm();
    },
  };
}
