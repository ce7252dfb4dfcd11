import { badRequest, HeraldError } from './errors.ts';
import { type HeraldEvent, validateEvent } from './event.ts';
import { LatencyHistogram } from './latency.ts';
import { type HistoryStats, historyOf, type Log } from './log.ts';
import type { OutboxLimits, OverflowPolicy } from './outbox.ts';
import { ALL_TENANTS, type Principal } from './principal.ts';
import { frameFor, visibleData } from './redaction.ts';
import { encodeRetry, encodeSystemEvent, HEARTBEAT, joinFrames, OPENING_COMMENT } from './sse.ts';
import {
  type CloseReason,
  type Sink,
  Subscriber,
  type SubscriberOwner,
  type Subscription,
  sameSecret,
} from './subscriber.ts';
import { SubscriberIndex, type TenantIndex } from './subscriber-index.ts';
import {
  anyMatch,
  anyMatchWithin,
  checkTemplateCount,
  MatchBudget,
  nextTurn,
  type Selector,
  turnBudget,
} from './topics.ts';

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
}

export interface StreamLifecycle {
  opened(subscriber: Subscriber): void;
  closed(subscriber: Subscriber, reason: CloseReason): void;
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

export interface HubStats {
  readonly broker: string;
  /** Where this node's feed is in the log, and how late it got the last event. */
  readonly feed: { readonly position: string; readonly lagMs: number };
  readonly connections: {
    readonly total: number;
    readonly byTenant: Record<string, number>;
    readonly byTopic: Record<string, number>;
  };
  readonly events: Readonly<HubCounters>;
  readonly outbox: { readonly queuedEvents: number; readonly queuedBytes: number };
  /** What the log retains; absent when the log cannot tell. */
  readonly history?: HistoryStats;
}

export interface PollResult {
  readonly events: readonly {
    readonly id: string;
    readonly type: string;
    readonly data: string;
    readonly retry?: number;
  }[];
  /** Where the next poll continues: the last event's id, or how far the log was examined. */
  readonly lastEventId: string;
  readonly gap?: GapReason;
}

/**
 * Why a resume could not continue exactly where the client was: its id was never in the log (in
 * its tenant), what followed it is no longer retained, or the log was lost or replaced since.
 */
export type GapReason = 'unknown' | 'expired' | 'reset';

export interface TenantStats {
  readonly tenant: string;
  readonly connections: { readonly total: number; readonly byTopic: Record<string, number> };
}

const EMPTY_CHUNK = new Uint8Array(0);

/** Events of one flush whose publish-to-write latency is recorded. */
const MAX_LATENCY_SAMPLES_PER_FLUSH = 4_096;

// Lifetimes vary by up to this fraction, so streams opened together do not all end together.
const LIFETIME_JITTER = 0.1;

const schedule: (fn: () => void) => void =
  typeof setImmediate === 'function' ? (fn) => setImmediate(fn) : (fn) => setTimeout(fn, 0);

/**
 * The hub: validates and authorizes publishes, appends them to the broker, and fans out what the
 * broker feeds back to the subscribers of this node.
 *
 * Fan-out encodes each event once and queues the same bytes for every recipient; outboxes are
 * flushed once per tick, so a burst of events costs one write per socket. One timer drives every
 * stream's heartbeat, idle and lifetime checks.
 */
export class Hub implements SubscriberOwner {
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
    },
  };
  /** How long `broker.append` takes, per publish call. */
  readonly appendLatency = new LatencyHistogram();
  /** From an event's acceptance to the flush that first writes it, once per event. */
  readonly writeLatency = new LatencyHistogram();
  /** Acceptance times of events dispatched to a writable stream since the last flush. */
  private readonly unflushedTimes = new Float64Array(MAX_LATENCY_SAMPLES_PER_FLUSH);
  private unflushedCount = 0;
  /** The event being dispatched was queued for a stream that the next flush writes. */
  private queuedForFlush = false;
  /** Bytes written to streams that have closed; open ones hold their own count. */
  private bytesOfClosed = 0;
  private readonly index = new SubscriberIndex<Subscriber>();
  /** Every open stream of this node, by connection id. */
  private readonly subscribers = new Map<string, Subscriber>();
  /** Live, writable subscribers with something queued this tick. */
  private dirty: Subscriber[] = [];
  private flushPending = false;
  /** Position of the last event dispatched here: where a new subscriber's replay must stop. */
  private cursor = '';
  private stamp = 0;
  /** How long the last event took from acceptance to this node's feed, ms. */
  private feedLagMs = 0;
  /** Events the feed delivered that are not dispatched yet, from `backlogAt` on (see `drain`). */
  private backlog: HeraldEvent[] = [];
  private backlogAt = 0;
  /** A drain runs now, or waits for the next turn: events the feed delivers meanwhile join the backlog. */
  private draining = false;
  /** In-process readers of the feed, beside the subscribers (see `observe`). */
  private readonly observers: ((events: readonly HeraldEvent[]) => void)[] = [];
  /**
   * Streams that opened with a `reset` gap before this node's feed noticed that reset: when it
   * does, they are not told twice. Rare, and forgotten with the stream.
   */
  private readonly toldOfReset = new WeakSet<Subscriber>();
  /** Wakes every long poll under way, so `close()` does not wait out their waits. */
  private readonly pollers = new Set<() => void>();
  /** Reused by every flush of a single event; flushes never overlap. */
  private readonly single: Uint8Array[] = [EMPTY_CHUNK];
  private ticker: ReturnType<typeof setInterval> | undefined;
  private readonly ready: Promise<void>;
  private closing = false;

  constructor(broker: Log, options: Partial<HubOptions> = {}) {
    this.options = { ...DEFAULT_HUB_OPTIONS, ...options };
    this.broker = broker;
    this.ready = broker
      .start(
        (events) => this.dispatch(events),
        (from) => this.logReset(from),
      )
      .then((head) => {
        this.cursor = head;
      });
    // A failed start is reported by the first publish or stream, not as an unhandled rejection.
    this.ready.catch(() => {});
  }

  /** The log position of the last event this node dispatched (the head, before any). */
  get position(): string {
    return this.cursor;
  }

  /** After `close()`: no publish, no new stream. */
  get isClosing(): boolean {
    return this.closing;
  }

  /** Resolves when the broker's feed is running. */
  whenReady(): Promise<void> {
    return this.ready;
  }

  /**
   * Validates, authorizes and appends events; resolves once the log has them. With `reuseIds`, a
   * chosen id already in the history names the new event instead of being refused.
   */
  async publish(
    inputs: readonly unknown[],
    principal: Principal,
    options: { readonly reuseIds?: boolean } = {},
  ): Promise<HeraldEvent[]> {
    if (this.closing) throw shuttingDown();
    if (inputs.length === 0) throw badRequest('empty-batch', 'the batch is empty; send at least one event');
    if (inputs.length > this.options.maxBatch) {
      throw new HeraldError(
        413,
        'batch-too-large',
        `the batch has ${inputs.length} events; the limit is ${this.options.maxBatch}`,
      );
    }
    await this.ready;
    const now = Date.now();
    const limits = { maxDataBytes: this.options.maxDataBytes };
    const drafts = inputs.map((input, i) => {
      const where = inputs.length > 1 ? `event ${i}: ` : '';
      const draft = validateEvent(input, principal.tenant, limits, now, where);
      if (draft.tenant === ALL_TENANTS) {
        throw badRequest(
          'invalid-tenant',
          `${where}tenant "${ALL_TENANTS}" is reserved for watching every tenant`,
        );
      }
      if (draft.tenant !== principal.tenant && !principal.admin) {
        throw new HeraldError(
          403,
          'tenant-forbidden',
          `${where}only admin credentials may publish into another tenant than their own`,
        );
      }
      for (const topic of draft.topics) {
        if (!anyMatch(principal.publish, [topic])) {
          throw new HeraldError(
            403,
            'publish-forbidden',
            `${where}not allowed to publish to topic "${topic}": no publish grant matches it`,
          );
        }
      }
      const reused =
        options.reuseIds === true && draft.id !== undefined ? { ...draft, reuseId: true } : draft;
      return this.options.privateByDefault && !reused.private ? { ...reused, private: true } : reused;
    });
    // Matching the topics against this node's templates now, a turn's matching time at a time
    // (see `turnBudget`), makes the publisher wait for what its topics cost, rather than every
    // event fanned out after its own: fan-out then finds the lookups kept.
    for (const draft of drafts) {
      for (const tenant of [draft.tenant, ALL_TENANTS]) {
        const matching = this.index.prepareInTurns(tenant, draft.topics);
        if (matching !== undefined) await matching;
      }
    }
    if (this.closing) throw shuttingDown();
    const started = performance.now();
    const events = await this.broker.append(drafts);
    this.appendLatency.observe(performance.now() - started);
    this.counters.published += events.length;
    return events;
  }

  /**
   * Opens a stream. The subscriber is returned at once so the transport can wire `drained()` and
   * `closed()`; the first bytes, the replay and the switch to live follow asynchronously.
   */
  subscribe(subscription: Subscription, sink: Sink): Subscriber {
    if (this.closing) throw shuttingDown();
    const now = Date.now();
    const lifetime = this.options.maxLifetimeMs;
    const deadline =
      lifetime > 0 ? now + lifetime * (1 - LIFETIME_JITTER * Math.random()) : Number.POSITIVE_INFINITY;
    const subscriber = new Subscriber(
      globalThis.crypto.randomUUID(),
      subscription,
      sink,
      this,
      now,
      deadline,
    );
    this.subscribers.set(subscriber.id, subscriber);
    this.counters.opened++;
    this.options.lifecycle?.opened(subscriber);
    this.startTicker();
    this.open(subscriber, subscription).catch((error: unknown) => {
      this.options.onError(error, 'opening a stream failed');
      this.end(subscriber, 'error');
    });
    return subscriber;
  }

  private async open(subscriber: Subscriber, subscription: Subscription): Promise<void> {
    await this.ready;
    if (subscriber.isClosed) return;
    // Registering and reading the cursor happen in one synchronous step: every event dispatched
    // from here on is after `until`, so it is held in the outbox and never also replayed.
    this.index.add(subscriber);
    subscriber.indexed = true;
    subscriber.replayUntil = this.cursor;

    const { lastEventId, replayAfter } = subscription;
    let replayFrom: string | null | undefined; // undefined: no replay; null: from the oldest retained
    let resumeId = this.cursor;
    let gap: GapReason | undefined;
    if (replayAfter !== undefined) {
      replayFrom = replayAfter === null ? null : this.resumeAfter(subscriber, replayAfter);
    } else if (lastEventId !== undefined) {
      const location = await this.broker.locate(lastEventId, subscriber.tenant);
      if (subscriber.isClosed) return;
      if (location.kind === 'found') {
        resumeId = lastEventId;
        replayFrom = this.resumeAfter(subscriber, location.pos);
      } else if (location.kind === 'expired' || location.kind === 'reset') {
        // What followed the id is partly gone: say so, then send all that is left. The resume
        // point moves to where that begins, so a reconnect is not told of the same loss again.
        replayFrom = location.from;
        resumeId = location.from ?? lastEventId;
        gap = location.kind;
        if (
          location.kind === 'reset' &&
          location.from !== null &&
          this.broker.compare(this.cursor, location.from) < 0
        ) {
          this.toldOfReset.add(subscriber);
        }
      } else gap = 'unknown';
    }

    let first: Uint8Array[];
    if (subscriber.systemEvents) {
      // The connected event carries the resume point as its id, so a client that drops before any
      // event arrives still reconnects from here and misses nothing published in between.
      first = [
        encodeRetry(this.options.retryMs),
        encodeSystemEvent(
          'herald.connected',
          { connectionId: subscriber.id, lastEventId: resumeId, secret: subscriber.secret },
          resumeId,
        ),
      ];
      if (gap !== undefined) {
        first.push(encodeSystemEvent('herald.gap', { lastEventId, reason: gap }));
        this.counters.gaps++;
      }
    } else first = [OPENING_COMMENT];
    if (!subscriber.write(first, Date.now())) await subscriber.waitForDrain();
    if (replayFrom !== undefined) {
      this.counters.replays++;
      await this.replay(subscriber, replayFrom);
    }
    if (subscriber.isClosed) return;
    subscriber.state = 'live';
    if (subscriber.queuedEvents > 0) this.markDirty(subscriber);
  }

  /**
   * Where to replay from for a client that has everything up to `pos`: `pos` itself when this
   * node's feed has reached it; otherwise nothing to replay (undefined).
   */
  private resumeAfter(subscriber: Subscriber, pos: string): string | undefined {
    if (this.broker.compare(pos, subscriber.replayUntil) <= 0) return pos;
    // The client has seen events this node's feed has not dispatched yet (it was served by a node
    // further ahead): nothing to replay, and what this node holds or will dispatch up to that
    // point is not sent again.
    subscriber.skipThrough = pos;
    subscriber.outbox.dropWhile((event) => this.broker.compare(event.pos, pos) <= 0);
    return undefined;
  }

  /** Sends the log from `after` up to the subscriber's `replayUntil`, page by page, at the socket's pace. */
  private async replay(subscriber: Subscriber, after: string | null): Promise<void> {
    const pageSize = this.options.replayPageSize;
    const frames: Uint8Array[] = [];
    for (;;) {
      const until = subscriber.replayUntil;
      const page = await this.broker.read(after, until, pageSize);
      if (subscriber.isClosed) return;
      frames.length = 0;
      for (const event of page) {
        const wanted = this.wantsFromLog(subscriber, event);
        if (wanted !== true && (wanted === false || !(await wanted))) continue;
        if (subscriber.isClosed) return;
        frames.push(frameFor(event, subscriber.permissions));
        subscriber.lastSentId = event.id;
      }
      const last = page[page.length - 1];
      if (last !== undefined) after = last.pos;
      if (frames.length > 0) {
        this.counters.replayed += frames.length;
        subscriber.lastEventAt = Date.now();
        if (!subscriber.write([joinFrames(frames)], subscriber.lastEventAt)) await subscriber.waitForDrain();
        if (subscriber.isClosed) return;
      }
      // Done when the log held nothing more up to `until` and `until` did not move meanwhile.
      if (page.length < pageSize && until === subscriber.replayUntil) return;
    }
  }

  /** The broker's feed: every event of the log, once, in order. */
  private dispatch(events: readonly HeraldEvent[]): void {
    for (const event of events) this.backlog.push(event);
    if (!this.draining) this.drain();
  }

  /**
   * Fans the backlog out, in log order. Matching a new topic against the templates that may match
   * it is the one cost of fan-out that subscribers choose (their templates): when an event's
   * lookups need more than this turn's matching time (`turnBudget`), they go on in the next turn
   * of the event loop, and the events after it wait for it there. Nothing is lost or reordered,
   * and sockets, timers and `/healthz` get their turn in between.
   */
  private readonly drain = (budget: MatchBudget = turnBudget()): void => {
    this.draining = true;
    const from = this.backlogAt;
    let later = false;
    try {
      this.fanOutBacklog(budget);
    } finally {
      later = this.backlogAt < this.backlog.length;
      if (later) schedule(this.drain);
      this.draining = later;
    }
    if (this.backlogAt === from) return;
    const events = this.backlog.slice(from, this.backlogAt);
    if (!later) {
      this.backlog = [];
      this.backlogAt = 0;
    }
    const last = events[events.length - 1];
    if (last !== undefined) this.feedLagMs = Date.now() - last.time;
    for (const observer of this.observers) {
      try {
        observer(events);
      } catch (error) {
        this.options.onError(error, 'a feed observer failed');
      }
    }
  };

  /** Fans out the backlog's events, in order, until its end or until `budget` runs out. */
  private fanOutBacklog(budget: MatchBudget): void {
    while (this.backlogAt < this.backlog.length) {
      const event = this.backlog[this.backlogAt] as HeraldEvent;
      if (
        !this.index.prepare(event.tenant, event.topics, budget) ||
        !this.index.prepare(ALL_TENANTS, event.topics, budget)
      ) {
        return;
      }
      this.backlogAt++;
      this.cursor = event.pos;
      const stamp = ++this.stamp;
      this.fanOut(this.index.get(event.tenant), event, stamp);
      this.fanOut(this.index.get(ALL_TENANTS), event, stamp);
      if (this.queuedForFlush) {
        this.queuedForFlush = false;
        // Past the cap, a burst is sampled by its first events: the figure stays cheap.
        if (this.unflushedCount < MAX_LATENCY_SAMPLES_PER_FLUSH) {
          this.unflushedTimes[this.unflushedCount++] = event.time;
        }
      }
    }
  }

  /**
   * `subscriber.wants(event)` for an event read back from the log (replays, polls), where the
   * stream's templates are tested against each event's topics: within this turn's matching time
   * (`turnBudget`), and the next turns' if it needs more (then the answer is a promise).
   */
  private wantsFromLog(subscriber: Subscriber, event: HeraldEvent): boolean | Promise<boolean> {
    if (event.tenant !== subscriber.tenant && subscriber.tenant !== ALL_TENANTS) return false;
    const matched = anyMatchWithin(subscriber.selectors, event.topics, turnBudget());
    if (typeof matched === 'number') return this.wantsLater(subscriber, event, matched);
    return matched && subscriber.accepts(event);
  }

  private async wantsLater(subscriber: Subscriber, event: HeraldEvent, from: number): Promise<boolean> {
    let selectors = subscriber.selectors;
    let matched: boolean | number = from;
    do {
      await nextTurn();
      if (subscriber.isClosed) return false;
      // Changed meanwhile (`POST /v1/subscriptions`): from the start, with what it holds now.
      if (subscriber.selectors !== selectors) [selectors, matched] = [subscriber.selectors, 0];
      matched = anyMatchWithin(selectors, event.topics, turnBudget(), matched as number);
    } while (typeof matched === 'number');
    return matched && subscriber.accepts(event);
  }

  /**
   * The broker's log was lost or replaced: events accepted before may never reach anyone, so
   * every stream is told. What the old log already dispatched goes out first. A stream that can
   * take it now gets `herald.gap` (reason `reset`) with the new log's start as its id, so a
   * reconnect resumes in the new log; any other (replaying, with a full socket, or a Mercure
   * stream) is ended, and its client's resume from an id of the old log is answered with the same
   * gap (Mercure's: everything the new log holds, `Last-Event-ID: earliest`).
   */
  private logReset(from: string): void {
    // What the old log delivered and still waits in the backlog goes out first, whatever it costs.
    this.drain(new MatchBudget(Number.POSITIVE_INFINITY));
    this.cursor = from;
    this.flush();
    const now = Date.now();
    for (const subscriber of [...this.subscribers.values()]) {
      if (this.toldOfReset.has(subscriber)) {
        this.toldOfReset.delete(subscriber);
        continue;
      }
      const writable = subscriber.state === 'live' && !subscriber.blocked && subscriber.queuedEvents === 0;
      // A Mercure stream knows no gap: its resume from an old id answers `earliest` instead.
      if (subscriber.systemEvents && writable) {
        const gap = { lastEventId: subscriber.lastSentId ?? null, reason: 'reset' };
        subscriber.write([encodeSystemEvent('herald.gap', gap, from)], now);
        this.counters.gaps++;
      } else this.end(subscriber, 'reset');
    }
  }

  /**
   * Calls `listener` with every batch this node's feed dispatches from now on (every event of the
   * log, once, in order), for parts that keep state from the log, such as Mercure's registry of
   * active subscriptions. Returns the function that stops it.
   */
  observe(listener: (events: readonly HeraldEvent[]) => void): () => void {
    this.observers.push(listener);
    return () => {
      const at = this.observers.indexOf(listener);
      if (at !== -1) this.observers.splice(at, 1);
    };
  }

  private fanOut(bucket: TenantIndex<Subscriber> | undefined, event: HeraldEvent, stamp: number): void {
    if (bucket === undefined) return;
    for (const topic of event.topics) {
      const exact = bucket.exact.get(topic);
      if (exact instanceof Set) for (const subscriber of exact) this.deliver(subscriber, event, stamp);
      else if (exact !== undefined) this.deliver(exact, event, stamp);
      for (const entry of bucket.templatesFor(topic)) {
        for (const subscriber of entry.subscribers) this.deliver(subscriber, event, stamp);
      }
    }
    for (const subscriber of bucket.all) this.deliver(subscriber, event, stamp);
  }

  private deliver(subscriber: Subscriber, event: HeraldEvent, stamp: number): void {
    if (subscriber.stamp === stamp) return;
    subscriber.stamp = stamp;
    if (subscriber.skipThrough !== undefined) {
      if (this.broker.compare(event.pos, subscriber.skipThrough) <= 0) return;
      subscriber.skipThrough = undefined;
    }
    if (!subscriber.accepts(event)) return;
    subscriber.outbox.push(event, frameFor(event, subscriber.permissions));
    subscriber.lastEventAt = event.time;
    if (subscriber.state === 'live' && !subscriber.blocked) {
      this.queuedForFlush = true;
      this.markDirty(subscriber);
    } else if (subscriber.outbox.isOver(this.options.outbox)) this.overflow(subscriber);
  }

  private overflow(subscriber: Subscriber): void {
    if (subscriber.state === 'replaying') {
      // Still catching up: rather than hold ever more live events, read them from the log too.
      subscriber.outbox.clear();
      subscriber.replayUntil = this.cursor;
      return;
    }
    if (this.options.outbox.policy === 'disconnect') {
      // The client reconnects with Last-Event-ID and the log fills the gap while history covers it.
      this.end(subscriber, 'overflow');
      return;
    }
    const dropped = subscriber.outbox.evict(this.options.outbox);
    subscriber.dropped += dropped;
    this.counters.droppedEvents += dropped;
  }

  private readonly flush = (): void => {
    this.flushPending = false;
    const list = this.dirty;
    this.dirty = [];
    const now = Date.now();
    for (const subscriber of list) {
      subscriber.dirty = false;
      if (subscriber.state === 'live' && !subscriber.blocked) this.flushOne(subscriber, now);
    }
    // Once per event, not per recipient: the figure says how long the hub took, not how many heard.
    for (let i = 0; i < this.unflushedCount; i++) {
      this.writeLatency.observe(now - (this.unflushedTimes[i] as number));
    }
    this.unflushedCount = 0;
  };

  private flushOne(subscriber: Subscriber, now: number): void {
    const count = subscriber.queuedEvents;
    // One event, the usual case, goes out in an array of one slot that is reused and never
    // resized: nothing is allocated per recipient. A burst pays for its array once per write.
    const out = count === 1 && subscriber.dropped === 0 ? this.single : [];
    if (subscriber.dropped > 0 && !subscriber.systemEvents) subscriber.dropped = 0;
    if (subscriber.dropped > 0) {
      out.push(
        encodeSystemEvent('herald.gap', {
          lastEventId: subscriber.lastSentId ?? null,
          reason: 'overflow',
          dropped: subscriber.dropped,
        }),
      );
      this.counters.gaps++;
      subscriber.dropped = 0;
    }
    const lastId =
      count === 0 ? undefined : subscriber.outbox.drainInto(out, out === this.single ? 0 : out.length);
    if (lastId !== undefined) subscriber.lastSentId = lastId;
    this.counters.delivered += count;
    if (out === this.single || out.length > 0) subscriber.write(out, now);
    // The frame is not kept alive until the next flush.
    this.single[0] = EMPTY_CHUNK;
  }

  private markDirty(subscriber: Subscriber): void {
    if (subscriber.dirty) return;
    subscriber.dirty = true;
    this.dirty.push(subscriber);
    if (!this.flushPending) {
      this.flushPending = true;
      schedule(this.flush);
    }
  }

  /** SubscriberOwner: the socket has room again. */
  drained(subscriber: Subscriber): void {
    if (subscriber.state === 'live' && subscriber.queuedEvents + subscriber.dropped > 0)
      this.markDirty(subscriber);
  }

  /** SubscriberOwner: forget a stream (its client left, or the hub ended it). */
  detach(subscriber: Subscriber, reason: CloseReason): void {
    if (subscriber.isClosed) return;
    subscriber.markClosed();
    this.subscribers.delete(subscriber.id);
    if (subscriber.indexed) this.index.remove(subscriber);
    this.counters.closed[reason]++;
    this.bytesOfClosed += subscriber.bytesWritten;
    subscriber.onClose?.();
    if (this.subscribers.size === 0) this.stopTicker();
    this.options.lifecycle?.closed(subscriber, reason);
  }

  /** Bytes written to every stream this node has served, the open ones included. */
  bytesWritten(): number {
    let bytes = this.bytesOfClosed;
    for (const subscriber of this.subscribers.values()) bytes += subscriber.bytesWritten;
    return bytes;
  }

  /**
   * The long-poll twin of a stream, for clients whose streams keep failing (a buffering proxy):
   * the events after `subscription.lastEventId` (from now without one), at most `limit`, waiting
   * up to `waitMs` for the first. The returned `lastEventId` is where the next poll continues.
   */
  async poll(
    subscription: Subscription,
    waitMs: number,
    limit: number,
    signal?: AbortSignal,
  ): Promise<PollResult> {
    if (this.closing) throw shuttingDown();
    await this.ready;
    // A waiter in the index, registered before the log is read: what is dispatched meanwhile
    // wakes it instead of being missed.
    let wake = () => {};
    const woken = new Promise<void>((resolve) => {
      wake = resolve;
    });
    const sink: Sink = {
      write: () => {
        wake();
        return true;
      },
      end() {},
      destroy() {},
    };
    // Nobody waits for a client that left, or on a hub that closes.
    signal?.addEventListener('abort', wake, { once: true });
    this.pollers.add(wake);
    const waiter = new Subscriber('poll', subscription, sink, this, Date.now(), Number.POSITIVE_INFINITY);
    waiter.state = 'live';
    this.index.add(waiter);
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      let until = this.cursor;
      let after: string | null = until;
      let gap: GapReason | undefined;
      const from = subscription.lastEventId;
      if (from !== undefined) {
        const location = await this.broker.locate(from, subscription.tenant);
        if (location.kind === 'found') after = location.pos;
        else if (location.kind === 'expired' || location.kind === 'reset') {
          [after, gap] = [location.from, location.kind];
        } else gap = 'unknown';
      }
      let events = await this.collect(waiter, after, until, limit);
      if (events.length === 0 && gap === undefined && waitMs > 0) {
        await Promise.race([woken, new Promise((resolve) => (timer = setTimeout(resolve, waitMs)))]);
        const start = after !== null && this.broker.compare(after, until) > 0 ? after : until;
        until = this.cursor;
        events = await this.collect(waiter, start, until, limit);
      }
      const last = events.at(-1);
      // Without an event, the next poll goes on from what was examined, unless the client was
      // already further on (it came from a node ahead of this one).
      const ahead = after !== null && from !== undefined && this.broker.compare(after, until) > 0;
      const result: PollResult = {
        events: events.map((event) => ({
          id: event.id,
          type: event.type ?? 'message',
          data: visibleData(event, waiter.permissions),
          ...(event.retry === undefined ? {} : { retry: event.retry }),
        })),
        lastEventId: last?.id ?? (ahead ? (from as string) : until),
      };
      return gap === undefined ? result : { ...result, gap };
    } finally {
      clearTimeout(timer);
      this.index.remove(waiter);
      this.pollers.delete(wake);
      signal?.removeEventListener('abort', wake);
    }
  }

  /** What `subscriber` wants of the log in (after, until], at most `limit` events. */
  private async collect(subscriber: Subscriber, after: string | null, until: string, limit: number) {
    const wanted: HeraldEvent[] = [];
    for (;;) {
      const page = await this.broker.read(after, until, this.options.replayPageSize);
      for (const event of page) {
        const wants = this.wantsFromLog(subscriber, event);
        if (wants === true || (wants !== false && (await wants))) wanted.push(event);
        if (wanted.length === limit) return wanted;
      }
      const last = page.at(-1);
      if (last === undefined || page.length < this.options.replayPageSize) return wanted;
      after = last.pos;
    }
  }

  /**
   * Adds selectors to an open stream, or removes some (seed 004: one connection serves a whole
   * page). Only whoever holds the stream may: the request must carry the stream's secret (sent
   * only on the stream, in `herald.connected`), and come with the same tenant and subject. New
   * selectors take effect for events dispatched from now on; returns the stream's selectors.
   */
  changeSubscription(
    connectionId: string,
    secret: string,
    principal: Principal,
    action: 'subscribe' | 'unsubscribe',
    selectors: readonly Selector[],
    maxSelectors: number,
  ): string[] {
    const subscriber = this.subscribers.get(connectionId);
    // A wrong secret answers like a stream that does not exist: a guess learns nothing, not even
    // whether the connection id is open here.
    if (subscriber === undefined || subscriber.isClosed || !sameSecret(secret, subscriber.secret)) {
      throw new HeraldError(
        404,
        'connection-not-found',
        `no open stream ${connectionId} on this node; it closed, or it is served by another node`,
      );
    }
    if (
      subscriber.subject !== principal.subject ||
      (subscriber.tenant !== principal.tenant && !principal.admin)
    ) {
      throw new HeraldError(
        403,
        'not-your-stream',
        'only the credential that opened a stream may change its subscriptions',
      );
    }
    const sources = new Set(selectors.map((selector) => selector.source));
    const next =
      action === 'subscribe'
        ? [
            ...subscriber.selectors,
            ...selectors.filter((s) => !subscriber.selectors.some((t) => t.source === s.source)),
          ]
        : subscriber.selectors.filter((selector) => !sources.has(selector.source));
    if (next.length > maxSelectors) {
      throw badRequest(
        'too-many-topics',
        `the stream would have ${next.length} topic selectors; the limit is ${maxSelectors}`,
      );
    }
    checkTemplateCount(next);
    // Removed and added again in one synchronous step: no dispatch sees it half changed.
    if (subscriber.indexed) this.index.remove(subscriber);
    subscriber.selectors = next;
    if (subscriber.indexed) this.index.add(subscriber);
    return next.map((selector) => selector.source);
  }

  /**
   * Ends a stream from the server side. A slow consumer is cut at once; any other end sends a
   * jittered `retry:` hint first, so clients come back spread out and resume with Last-Event-ID.
   */
  end(subscriber: Subscriber, reason: Exclude<CloseReason, 'client'>): void {
    if (subscriber.isClosed) return;
    const sink = subscriber.sink;
    if (reason === 'overflow' || reason === 'error') {
      this.detach(subscriber, reason);
      sink.destroy();
      return;
    }
    // What is queued goes out first; had it not, the client would only get it again on resume.
    if (subscriber.state === 'live' && !subscriber.blocked) this.flushOne(subscriber, Date.now());
    this.detach(subscriber, reason);
    sink.write([encodeRetry(this.options.retryMs * (1 + Math.random()))]);
    sink.end();
  }

  private startTicker(): void {
    if (this.ticker !== undefined) return;
    // Fine enough that a heartbeat is never more than a fraction of a second late.
    const period = Math.min(500, Math.max(20, this.options.heartbeatMs / 4));
    this.ticker = setInterval(this.tick, period);
    this.ticker.unref?.();
  }

  private stopTicker(): void {
    clearInterval(this.ticker);
    this.ticker = undefined;
  }

  private readonly tick = (): void => {
    const now = Date.now();
    const { heartbeatMs, idleTimeoutMs, reauthLeadMs } = this.options;
    for (const subscriber of this.subscribers.values()) {
      if (subscriber.state === 'closed') continue;
      if (now >= subscriber.expiresAt) this.end(subscriber, 'expired');
      else if (now >= subscriber.deadline) this.end(subscriber, 'lifetime');
      else if (idleTimeoutMs > 0 && now - subscriber.lastEventAt >= idleTimeoutMs)
        this.end(subscriber, 'idle');
      else if (
        subscriber.systemEvents &&
        !subscriber.warnedOfExpiry &&
        now >= subscriber.expiresAt - reauthLeadMs
      ) {
        // The client fetches a fresh token now and reconnects with it; the end follows at expiry.
        subscriber.warnedOfExpiry = true;
        const expiresAt = new Date(subscriber.expiresAt).toISOString();
        subscriber.write([encodeSystemEvent('herald.reauth', { expiresAt })], now);
      } else if (!subscriber.blocked && now - subscriber.lastWriteAt >= heartbeatMs) {
        subscriber.write(HEARTBEAT_CHUNKS, now);
      }
    }
  };

  /**
   * Writes a notice to this node's streams of `tenant` that selected `topic` exactly, outside the
   * log: no `id:` (a client's resume point does not move), no replay, not counted as a delivery,
   * and never seen by `*` or template selectors, which stand for the log's events. It is meant
   * for per-node figures that are stale a second later (the dashboard's stats): a stream still
   * replaying or with a full socket skips it, and the next notice supersedes it. Filters (type,
   * tags) select among the log's events and do not apply. Returns how many streams got it.
   */
  notify(tenant: string, topic: string, type: string, payload: unknown): number {
    const recipients = this.index.get(tenant)?.exact.get(topic);
    if (recipients === undefined) return 0;
    // One frame and one chunk list for every recipient.
    const chunks = [encodeSystemEvent(type, payload)];
    const now = Date.now();
    let written = 0;
    for (const subscriber of recipients instanceof Set ? recipients : [recipients]) {
      // Long-poll waiters sit in the index too, but they answer from the log only.
      if (this.subscribers.get(subscriber.id) !== subscriber) continue;
      if (subscriber.state !== 'live' || subscriber.blocked || !subscriber.systemEvents) continue;
      subscriber.write(chunks, now);
      written++;
    }
    return written;
  }

  /** How many of this node's streams of `tenant` selected `topic` exactly (who a `notify` would reach). */
  watchers(tenant: string, topic: string): number {
    const recipients = this.index.get(tenant)?.exact.get(topic);
    return recipients === undefined ? 0 : recipients instanceof Set ? recipients.size : 1;
  }

  /** What a tenant may know: its own streams, nothing of other tenants or of the shared log. */
  tenantStats(tenant: string): TenantStats {
    const { byTenant, byTopic } = this.index.counts(tenant);
    return { tenant, connections: { total: byTenant[tenant] ?? 0, byTopic } };
  }

  async stats(): Promise<HubStats> {
    const { byTenant, byTopic } = this.index.counts();
    let queuedEvents = 0;
    let queuedBytes = 0;
    for (const subscriber of this.subscribers.values()) {
      queuedEvents += subscriber.queuedEvents;
      queuedBytes += subscriber.queuedBytes;
    }
    return {
      broker: this.broker.kind,
      feed: { position: this.cursor, lagMs: this.feedLagMs },
      connections: { total: this.subscribers.size, byTenant, byTopic },
      events: { ...this.counters, closed: { ...this.counters.closed } },
      outbox: { queuedEvents, queuedBytes },
      history: await historyOf(this.broker),
    };
  }

  /** Refuses new publishes, ends every stream with a retry hint, and closes the broker. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    this.flush();
    for (const subscriber of [...this.subscribers.values()]) this.end(subscriber, 'shutdown');
    for (const wake of this.pollers) wake();
    this.stopTicker();
    await this.broker.close();
  }
}

export const shuttingDown = () =>
  new HeraldError(503, 'shutting-down', 'the hub is shutting down; retry shortly');

const HEARTBEAT_CHUNKS: readonly Uint8Array[] = [HEARTBEAT];
