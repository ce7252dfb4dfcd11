import type { HeraldEvent } from './event.ts';
import { type Flusher, schedule } from './flush.ts';
import type { EndStream, HubState } from './hub-state.ts';
import { ALL_TENANTS } from './principal.ts';
import { GAP_EVENT, type GapPayload } from './protocol/system-events.ts';
import { frameFor } from './redaction.ts';
import { encodeSystemEvent } from './sse.ts';
import type { Subscriber } from './subscriber.ts';
import type { TenantIndex } from './tenant-index.ts';
import { MatchBudget, turnBudget } from './topics.ts';

/**
 * What the broker's feed brings, fanned out to this node's streams: every event of the log, once,
 * in order. Each event is encoded once per visibility and the same bytes are queued for every
 * recipient; the flusher writes them. A stream whose outbox fills up is caught up from the log
 * (while replaying), ended, or loses its oldest events, as the overflow policy says.
 */
export class FanOut {
  private readonly state: HubState;
  private readonly flusher: Flusher;
  private readonly end: EndStream;
  private stamp = 0;
  /** Events the feed delivered that are not dispatched yet, from `backlogAt` on (see `drain`). */
  private backlog: HeraldEvent[] = [];
  private backlogAt = 0;
  /** A drain runs now, or waits for the next turn: events the feed delivers meanwhile join the backlog. */
  private draining = false;
  /** The event being dispatched was queued for a stream that the next flush writes. */
  private queuedForFlush = false;
  /** In-process readers of the feed, beside the subscribers (see `observe`). */
  private readonly observers: ((events: readonly HeraldEvent[]) => void)[] = [];

  constructor(state: HubState, flusher: Flusher, end: EndStream) {
    this.state = state;
    this.flusher = flusher;
    this.end = end;
  }

  /** The broker's feed: every event of the log, once, in order. */
  readonly dispatch = (events: readonly HeraldEvent[]): void => {
    for (const event of events) this.backlog.push(event);
    if (!this.draining) this.drain();
  };

  /**
   * The broker's log was lost or replaced: events accepted before may never reach anyone, so
   * every stream is told. What the old log already dispatched goes out first. A stream that can
   * take it now gets `herald.gap` (reason `reset`) with the new log's start as its id, so a
   * reconnect resumes in the new log; any other (replaying, with a full socket, or a Mercure
   * stream) is ended, and its client's resume from an id of the old log is answered with the same
   * gap (Mercure's: everything the new log holds, `Last-Event-ID: earliest`).
   */
  readonly logReset = (from: string): void => {
    const state = this.state;
    // What the old log delivered and still waits in the backlog goes out first, whatever it costs.
    this.drain(new MatchBudget(Number.POSITIVE_INFINITY));
    state.cursor = from;
    this.flusher.flush();
    const now = Date.now();
    for (const subscriber of [...state.subscribers.values()]) {
      if (state.toldOfReset.has(subscriber)) {
        state.toldOfReset.delete(subscriber);
        continue;
      }
      const writable = subscriber.state === 'live' && !subscriber.blocked && subscriber.queuedEvents === 0;
      // A Mercure stream knows no gap: its resume from an old id answers `earliest` instead.
      if (subscriber.systemEvents && writable) {
        const gap: GapPayload = { lastEventId: subscriber.lastSentId ?? null, reason: 'reset' };
        subscriber.write([encodeSystemEvent(GAP_EVENT, gap, from)], now);
        state.counters.gaps++;
      } else this.end(subscriber, 'reset');
    }
  };

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
    if (last !== undefined) this.state.feedLagMs = Date.now() - last.time;
    for (const observer of this.observers) {
      try {
        observer(events);
      } catch (error) {
        this.state.options.onError(error, 'a feed observer failed');
      }
    }
  };

  /** Fans out the backlog's events, in order, until its end or until `budget` runs out. */
  private fanOutBacklog(budget: MatchBudget): void {
    const index = this.state.index;
    while (this.backlogAt < this.backlog.length) {
      const event = this.backlog[this.backlogAt] as HeraldEvent;
      if (
        !index.prepare(event.tenant, event.topics, budget) ||
        !index.prepare(ALL_TENANTS, event.topics, budget)
      ) {
        return;
      }
      this.backlogAt++;
      this.state.cursor = event.pos;
      const stamp = ++this.stamp;
      this.fanOut(index.get(event.tenant), event, stamp);
      this.fanOut(index.get(ALL_TENANTS), event, stamp);
      if (this.queuedForFlush) {
        this.queuedForFlush = false;
        this.flusher.sample(event.time);
      }
    }
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
      if (this.state.broker.compare(event.pos, subscriber.skipThrough) <= 0) return;
      subscriber.skipThrough = undefined;
    }
    if (!subscriber.accepts(event)) return;
    subscriber.outbox.push(event, frameFor(event, subscriber.permissions));
    subscriber.lastEventAt = event.time;
    if (subscriber.state === 'live' && !subscriber.blocked) {
      this.queuedForFlush = true;
      this.flusher.markDirty(subscriber);
    } else if (subscriber.outbox.isOver(this.state.options.outbox)) this.overflow(subscriber);
  }

  private overflow(subscriber: Subscriber): void {
    const { options, counters } = this.state;
    if (subscriber.state === 'replaying') {
      // Still catching up: rather than hold ever more live events, read them from the log too.
      subscriber.outbox.clear();
      subscriber.replayUntil = this.state.cursor;
      return;
    }
    if (options.outbox.policy === 'disconnect') {
      // The client reconnects with Last-Event-ID and the log fills the gap while history covers it.
      this.end(subscriber, 'overflow');
      return;
    }
    const dropped = subscriber.outbox.evict(options.outbox);
    subscriber.dropped += dropped;
    counters.droppedEvents += dropped;
  }
}
