import type { EventDraft, HeraldEvent } from './event.ts';

/**
 * Where events are appended and read back: the log. The core owns this interface and every
 * backend (memory, Redis, NATS, the worker pipe) implements it; the hub never knows which it
 * has. What only some backends can do (report their health, describe their history, warn that
 * they can lose events) is a separate small interface, checked for where it is used, so that a
 * new backend needs only these seven members to run.
 *
 * Positions (`HeraldEvent.pos`) are opaque strings that only the log interprets and orders.
 */
export interface Log {
  /** The backend's name (`memory`, `redis`, `nats`, …), in stats and `/readyz`: an open name. */
  readonly kind: string;
  /**
   * Starts the live feed: from now on every appended event, from any node, is passed to `feed`
   * once, in log order. Resolves with the position of the log's head, which the feed starts after.
   * `onReset` is told, in feed order (after the old log's last event, before the new log's first),
   * when the log was lost or replaced and a new one begins after `from`: events accepted before
   * may be gone. Logs that cannot be lost without the process (memory) never call it.
   */
  start(feed: (events: readonly HeraldEvent[]) => void, onReset?: (from: string) => void): Promise<string>;
  /** Appends drafts in order and gives each its id and position. */
  append(drafts: readonly EventDraft[]): Promise<HeraldEvent[]>;
  /**
   * Finds where a client's `Last-Event-ID` stands in the log, for a subscriber of `tenant`.
   * Publisher-chosen ids live in their tenant's namespace (see `chosenIdKey`): an id another
   * tenant chose is looked up in `tenant`'s namespace, where it does not exist, so it answers
   * exactly as an id that never existed. Positions are points in the shared log, not events: a
   * position answers the same whoever asks, whichever tenant's event (if any) sits there.
   */
  locate(id: string, tenant: string): Promise<Location>;
  /** Up to `limit` events after `after` (`null`: from the oldest retained) and at most `until`. */
  read(after: string | null, until: string, limit: number): Promise<HeraldEvent[]>;
  /** Orders two positions: negative, zero or positive. */
  compare(a: string, b: string): number;
  close(): Promise<void>;
}

/** A log that can tell whether its backend is reachable: `/readyz` and the dashboard ask it. */
export interface HealthReporting {
  health(): Promise<LogHealth>;
}

/** A log that can describe what it retains: `/v1/stats`, `/metrics` and the dashboard show it. */
export interface HistoryReporting {
  history(): Promise<HistoryStats>;
}

/**
 * A log that reads from its newest end, so that "the last N matching" (rewind, since) stops as
 * soon as it has them instead of scanning the whole history forwards.
 */
export interface BackwardReading {
  /**
   * Up to `limit` events at or before `until` (before it when `exclusive`), newest first, down to
   * the oldest retained event: a page shorter than `limit` means the log has nothing older.
   */
  readBack(until: string, limit: number, exclusive: boolean): Promise<HeraldEvent[]>;
}

/**
 * A log that keeps the latest event of each slot (tenant, canonical topic `topics[0]`, key), for
 * events with a `key`, written with their append (atomically where the backend can, right after
 * otherwise). The stored event keeps its position, chosen id, tags, privacy and redaction, and
 * outlives the log's own retention. Where two appends fill one slot, the later in the log wins,
 * whichever node made them.
 *
 * Bounded by `latestMaxKeys` over the whole log, not per tenant (JetStream can bound a bucket only
 * as a whole): past it the slot updated longest ago is evicted, whichever tenant's it is. An
 * append never fails because of the bound.
 */
export interface LatestKeeping {
  /** How many slots are kept at most; 0: none (then `latestKeeperOf` gives undefined). */
  readonly latestMaxKeys: number;
  /** The tenant's slots, in no particular order, at most `limit` (`complete` false when there were more). */
  latest(tenant: string, limit: number): Promise<LatestEvents>;
}

export interface LatestEvents {
  readonly events: HeraldEvent[];
  readonly complete: boolean;
}

/** A log whose setup may lose accepted events, and can say why, for the operator at start. */
export interface PersistenceReporting {
  /** Why this setup can lose accepted events; undefined: it cannot. */
  persistenceWarning(): Promise<string | undefined>;
}

/** What every built-in backend is: the log that reports its health and history. */
export type Broker = Log & HealthReporting & HistoryReporting;

export type Location =
  /** The id is in the log; replay from just after `pos`. */
  | { readonly kind: 'found'; readonly pos: string }
  /**
   * The id was in the log but what followed it is no longer all retained. A replay goes on from
   * `from`, the position just before the oldest event retained, which is also where the client
   * can resume from without being told of the same loss again.
   */
  | { readonly kind: 'expired'; readonly from: string }
  /**
   * The id is from before the log was lost or replaced (a broker restarted without persistence, a
   * stream deleted): what followed it may be gone without trace. A replay goes on from `from`
   * (`null`: from the oldest retained event of the new log); the client is told with a
   * `herald.gap` whose reason is `reset`.
   */
  | { readonly kind: 'reset'; readonly from: string | null }
  /** Never seen (in the caller's tenant), or malformed. */
  | { readonly kind: 'unknown' };

export interface HistoryStats {
  readonly size: number;
  readonly maxSize: number;
  readonly maxAgeMs: number;
  readonly oldestId?: string;
  readonly newestId?: string;
}

export interface LogHealth {
  readonly ok: boolean;
  readonly detail?: string;
}

/** The log's health, or healthy when it cannot tell (it would have failed to start otherwise). */
export function healthOf(log: Log): Promise<LogHealth> {
  return 'health' in log && typeof log.health === 'function'
    ? (log as Log & HealthReporting).health()
    : Promise.resolve({ ok: true });
}

/** What the log retains, or undefined when it cannot tell. */
export function historyOf(log: Log): Promise<HistoryStats | undefined> {
  return 'history' in log && typeof log.history === 'function'
    ? (log as Log & HistoryReporting).history()
    : Promise.resolve(undefined);
}

/** Why the log's setup may lose accepted events; undefined when it cannot, or cannot tell. */
export function persistenceWarningOf(log: Log): Promise<string | undefined> {
  return 'persistenceWarning' in log && typeof log.persistenceWarning === 'function'
    ? (log as Log & PersistenceReporting).persistenceWarning()
    : Promise.resolve(undefined);
}

/** The log's backward reading, or undefined when it can only read forwards. */
export function backwardReaderOf(log: Log): BackwardReading | undefined {
  return 'readBack' in log && typeof log.readBack === 'function' ? (log as Log & BackwardReading) : undefined;
}

/** The log's latest values per key, or undefined when it keeps none (or was told to keep 0). */
export function latestKeeperOf(log: Log): LatestKeeping | undefined {
  if (!('latest' in log) || typeof log.latest !== 'function') return undefined;
  const keeper = log as Log & LatestKeeping;
  return keeper.latestMaxKeys > 0 ? keeper : undefined;
}

/**
 * A log that rides out its broker's outages on a local log of its own (`--on-broker-down local`):
 * which state it is in, for `/readyz`, `/v1/stats` and `/metrics`.
 */
export interface OutageReporting {
  outage(): OutageStats;
}

export interface OutageStats {
  /** `broker`: on the broker; `local`: holding what it accepts; `rejoining`: handing it over. */
  readonly state: 'broker' | 'local' | 'rejoining';
  /** Events accepted while the broker was down and not yet in it. */
  readonly held: number;
  /** The most it holds (`--outage-buffer`); past it publishes are refused. */
  readonly maxHeld: number;
  /** Events handed to the broker after an outage, since start. */
  readonly rejoined: number;
  /** Publishes refused because `held` was at `maxHeld`, since start. */
  readonly refused: number;
  /** Outages since start. */
  readonly outages: number;
}

/** The log's outage state, or undefined when it does not ride out outages. */
export function outageOf(log: Log): OutageReporting | undefined {
  return 'outage' in log && typeof log.outage === 'function' ? (log as Log & OutageReporting) : undefined;
}

/** Why the log runs other than configured now (`fallback-local`, `rejoining`), or undefined. */
export function outageDegraded(log: Log): string | undefined {
  const state = outageOf(log)?.outage().state;
  return state === 'local' ? 'fallback-local' : state === 'rejoining' ? 'rejoining' : undefined;
}
