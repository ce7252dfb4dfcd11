import { HeraldError } from './errors.ts';
import type { HeraldEvent } from './event.ts';
import { LatencyHistogram } from './latency.ts';
import type { Log } from './log.ts';
import type { OutboxLimits, OverflowPolicy } from './outbox.ts';
import type { CloseReason, Subscriber } from './subscriber.ts';
import { SubscriberIndex } from './subscriber-index.ts';
import type { Selector } from './topics.ts';

export interface HubOptions {
  /** Interval of the heartbeat comment on a quiet stream, ms. */
  readonly heartbeatMs: number;
  /** The `retry:` hint sent when a stream opens, ms. */
  readonly retryMs: number;
  /** Close a stream that has had no event for this long, ms; 0 disables. */
  readonly idleTimeoutMs: number;
  /** Close every stream after 90–100 % of this long (never later), ms; 0 disables. */
  readonly maxLifetimeMs: number;
  readonly outbox: OutboxLimits & { readonly policy: OverflowPolicy };
  readonly maxDataBytes: number;
  /** Events in one publish call. */
  readonly maxBatch: number;
  /** Events read from the log per replay step. */
  readonly replayPageSize: number;
  /** Treat every event as private: subscribers see only what their grants allow. */
  readonly privateByDefault: boolean;
  /** How long before its credential expires a stream gets `herald.reauth`, ms. */
  readonly reauthLeadMs: number;
  /** Where failures that no caller is waiting for (a stream's replay) are reported. */
  readonly onError: (error: unknown, context: string) => void;
  /** Told when a stream opens and when it closes (connection logs); never per event. */
  readonly lifecycle?: StreamLifecycle | undefined;
  /** Bounds of the recent events a new stream or first poll may start with (`rewind`, `since`). */
  readonly rewind: RewindLimits;
  /** Bounds of the latest values per key a new stream, first poll or `/v1/latest` is sent. */
  readonly snapshot: SnapshotLimits;
}

/** What a hub is made with: any option, and any of the bounds of an option that has several. */
export type HubSettings = Partial<Omit<HubOptions, 'rewind' | 'snapshot'>> & {
  readonly rewind?: Partial<RewindLimits> | undefined;
  readonly snapshot?: Partial<SnapshotLimits> | undefined;
};

export interface RewindLimits {
  /** The most events a `rewind` may ask for, and what `since` alone is given at most. */
  readonly maxEvents: number;
  /**
   * The most log entries examined to find them: the log is one for every tenant, so a narrow
   * subscription may have to look far. Past it the history is sent as found, incomplete.
   */
  readonly maxScan: number;
  /** How far back `since` may reach, ms: further is refused (the history's max age by default). */
  readonly maxAgeMs: number;
}

export interface SnapshotLimits {
  /** The most latest values sent; past it the newest, and the answer is incomplete. */
  readonly maxEvents: number;
  /** The most of a tenant's slots examined to find those a subscription matches. */
  readonly maxScan: number;
}

export interface StreamLifecycle {
  opened(subscriber: Subscriber): void;
  closed(subscriber: Subscriber, reason: CloseReason): void;
  /**
   * Its selectors changed (`POST /v1/subscriptions`); `before` are those it had. For parts that
   * count streams per topic (presence), so that what a close undoes is what was counted.
   */
  changed?(subscriber: Subscriber, before: readonly Selector[]): void;
}

export const DEFAULT_HUB_OPTIONS: HubOptions = {
  heartbeatMs: 15_000,
  retryMs: 1_000,
  idleTimeoutMs: 0,
  maxLifetimeMs: 0,
  outbox: { maxEvents: 1_000, maxBytes: 4 * 1024 * 1024, policy: 'disconnect' },
  maxDataBytes: 1024 * 1024,
  maxBatch: 1_000,
  replayPageSize: 500,
  privateByDefault: false,
  reauthLeadMs: 30_000,
  rewind: { maxEvents: 1_000, maxScan: 100_000, maxAgeMs: 86_400_000 },
  snapshot: { maxEvents: 10_000, maxScan: 100_000 },
  onError: (error, context) => console.error(`herald: ${context}:`, error),
};

export interface HubCounters {
  /** Streams opened on this node. */
  opened: number;
  /** Streams that resumed with a replay of the log. */
  replays: number;
  published: number;
  delivered: number;
  replayed: number;
  gaps: number;
  droppedEvents: number;
  closed: Record<CloseReason, number>;
}

/** What a tenant has published and been delivered on this node, since it started. */
export interface TenantTotals {
  published: number;
  delivered: number;
}

/** The totals of `tenant`, made on first use. */
export function tenantTotalsOf(state: HubState, tenant: string): TenantTotals {
  let totals = state.tenantTotals.get(tenant);
  if (totals === undefined) {
    totals = { published: 0, delivered: 0 };
    state.tenantTotals.set(tenant, totals);
  }
  return totals;
}

/** How the hub ends a stream from the server side (see `Hub.end`); the parts that end streams get it. */
export type EndStream = (subscriber: Subscriber, reason: Exclude<CloseReason, 'client'>) => void;

/**
 * What the hub's parts share: its options and log, the streams of this node and their index,
 * where the feed stands, and the counters. Plain fields, no behaviour: each part (publishing,
 * opening, fan-out, flush, polls, ticker, stats) keeps its own state to itself and reads or
 * updates only this.
 */
export class HubState {
  readonly options: HubOptions;
  readonly broker: Log;
  readonly counters: HubCounters = {
    opened: 0,
    replays: 0,
    published: 0,
    delivered: 0,
    replayed: 0,
    gaps: 0,
    droppedEvents: 0,
    closed: {
      client: 0,
      overflow: 0,
      lifetime: 0,
      idle: 0,
      expired: 0,
      shutdown: 0,
      error: 0,
      reset: 0,
      disconnected: 0,
    },
  };
  /**
   * Per tenant: events published (counted per publish call) and events delivered by streams that
   * have closed (open streams hold their own count, `Subscriber.delivered`): the per-tenant
   * figures of a cluster's nodes, which cost nothing per event per recipient.
   */
  readonly tenantTotals = new Map<string, TenantTotals>();
  /** How long `broker.append` takes, per publish call. */
  readonly appendLatency = new LatencyHistogram();
  readonly index = new SubscriberIndex<Subscriber>();
  /** Every open stream of this node, by connection id. */
  readonly subscribers = new Map<string, Subscriber>();
  /** How many of `subscribers` only carry others' frames, and are not counted as connections. */
  carriers = 0;
  /**
   * Streams that opened with a `reset` gap before this node's feed noticed that reset: when it
   * does, they are not told twice. Rare, and forgotten with the stream.
   */
  readonly toldOfReset = new WeakSet<Subscriber>();
  /** Position of the last event dispatched here: where a new subscriber's replay must stop. */
  cursor = '';
  /** How long the last event took from acceptance to this node's feed, ms. */
  feedLagMs = 0;
  /** Bytes written to streams that have closed; open ones hold their own count. */
  bytesOfClosed = 0;
  /** After `close()`: no publish, no new stream. */
  closing = false;
  /** Resolves when the broker's feed is running (see `start`). */
  ready: Promise<void> = Promise.resolve();

  constructor(broker: Log, options: HubOptions) {
    this.options = options;
    this.broker = broker;
  }

  /** Starts the broker's feed; `ready` resolves once it runs, with the cursor at the log's head. */
  start(feed: (events: readonly HeraldEvent[]) => void, onReset: (from: string) => void): void {
    this.ready = this.broker.start(feed, onReset).then((head) => {
      this.cursor = head;
    });
    // A failed start is reported by the first publish or stream, not as an unhandled rejection.
    this.ready.catch(() => {});
  }
}

export const shuttingDown = () =>
  new HeraldError(503, 'shutting-down', 'the hub is shutting down; retry shortly');
