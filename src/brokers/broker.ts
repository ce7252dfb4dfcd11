import type { EventDraft, HeraldEvent } from '../core/event.ts';

/**
 * Where events are appended and read back: the log. One interface, one implementation per
 * backend (memory, Redis, NATS); the hub never knows which it has.
 *
 * Positions (`HeraldEvent.pos`) are opaque strings that only the broker interprets and orders.
 */
export interface Broker {
  readonly kind: 'memory' | 'redis' | 'nats';
  /**
   * Starts the live feed: from now on every appended event, from any node, is passed to `feed`
   * once, in log order. Resolves with the position of the log's head, which the feed starts after.
   * `onReset` is told, in feed order (after the old log's last event, before the new log's first),
   * when the log was lost or replaced and a new one begins after `from`: events accepted before
   * may be gone. Brokers whose log cannot be lost without the process (memory) never call it.
   */
  start(feed: (events: readonly HeraldEvent[]) => void, onReset?: (from: string) => void): Promise<string>;
  /** Why this broker's setup can lose accepted events, for the operator at start; undefined: it cannot. */
  persistenceWarning?(): Promise<string | undefined>;
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
  history(): Promise<HistoryStats>;
  health(): Promise<BrokerHealth>;
  close(): Promise<void>;
}

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

export interface BrokerHealth {
  readonly ok: boolean;
  readonly detail?: string;
}
