import type { HeraldEvent } from './event.ts';
import { FanOut } from './fan-out.ts';
import { Flusher } from './flush.ts';
import { browseHistory, type HistoryPage, type HistoryQuery } from './history-browse.ts';
import {
  DEFAULT_HUB_OPTIONS,
  type EndStream,
  type HubCounters,
  type HubOptions,
  type HubSettings,
  HubState,
  shuttingDown,
  tenantTotalsOf,
} from './hub-state.ts';
import { bytesWritten, type HubStats, hubStats, type TenantStats, tenantStats } from './hub-stats.ts';
import type { LatencyHistogram } from './latency.ts';
import { type LatestResult, latestFor } from './latest.ts';
import { type Log, latestKeeperOf } from './log.ts';
import { LongPoll, type PollResult } from './long-poll.ts';
import { notify, watchers } from './notices.ts';
import { openStream } from './opening.ts';
import type { Principal } from './principal.ts';
import { DISCONNECT_EVENT, type DisconnectPayload } from './protocol/system-events.ts';
import { publishEvents } from './publishing.ts';
import { visibleData } from './redaction.ts';
import { encodeRetry, encodeSystemEvent } from './sse.ts';
import {
  type CloseReason,
  type Sink,
  Subscriber,
  type SubscriberOwner,
  type Subscription,
} from './subscriber.ts';
import {
  changeSubscription,
  type SubscriptionChange,
  type SubscriptionState,
} from './subscription-change.ts';
import { Ticker } from './ticker.ts';

export {
  DEFAULT_HUB_OPTIONS,
  type HubCounters,
  type HubOptions,
  type HubSettings,
  type RewindLimits,
  type SnapshotLimits,
  type StreamLifecycle,
  shuttingDown,
} from './hub-state.ts';
export type { HubStats, TenantStats } from './hub-stats.ts';
export type { LatestEvent, LatestResult } from './latest.ts';
export type { PollResult } from './long-poll.ts';
export type { GapReason } from './resume.ts';

/** Where a reader that is never registered would write: nothing ever is. */
const NO_SINK: Sink = { write: () => true, end() {}, destroy() {} };

// Lifetimes vary by up to this fraction, so streams opened together do not all end together.
const LIFETIME_JITTER = 0.1;

/**
 * The hub: validates and authorizes publishes, appends them to the broker, and fans out what the
 * broker feeds back to the subscribers of this node.
 *
 * Fan-out encodes each event once and queues the same bytes for every recipient; outboxes are
 * flushed once per tick, so a burst of events costs one write per socket. One timer drives every
 * stream's heartbeat, idle and lifetime checks.
 *
 * This class composes the parts, each in its own file around the state they share (`HubState`):
 * publishing, opening a stream (with its replay), fan-out, flush, long polls, subscription
 * changes, the ticker, notices and stats. It keeps what ties them together: a stream's start and
 * end.
 */
export class Hub implements SubscriberOwner {
  readonly options: HubOptions;
  readonly broker: Log;
  readonly counters: HubCounters;
  /** How long `broker.append` takes, per publish call. */
  readonly appendLatency: LatencyHistogram;
  /** From an event's acceptance to the flush that first writes it, once per event. */
  readonly writeLatency: LatencyHistogram;
  private readonly state: HubState;
  private readonly flusher: Flusher;
  private readonly fanOut: FanOut;
  private readonly polls: LongPoll;
  private readonly ticker: Ticker;

  constructor(broker: Log, options: HubSettings = {}) {
    const state = new HubState(broker, {
      ...DEFAULT_HUB_OPTIONS,
      ...options,
      // Bounds given in part keep the defaults of the rest.
      rewind: { ...DEFAULT_HUB_OPTIONS.rewind, ...options.rewind },
      snapshot: { ...DEFAULT_HUB_OPTIONS.snapshot, ...options.snapshot },
    });
    const end: EndStream = (subscriber, reason) => this.end(subscriber, reason);
    this.state = state;
    this.options = state.options;
    this.broker = broker;
    this.counters = state.counters;
    this.appendLatency = state.appendLatency;
    this.flusher = new Flusher(state.counters);
    this.writeLatency = this.flusher.writeLatency;
    this.fanOut = new FanOut(state, this.flusher, end);
    this.polls = new LongPoll(state);
    this.ticker = new Ticker(state, end);
    state.start(this.fanOut.dispatch, this.fanOut.logReset);
  }

  /** The log position of the last event this node dispatched (the head, before any). */
  get position(): string {
    return this.state.cursor;
  }

  /** How late this node's feed got the last event it dispatched, ms. */
  get feedLagMs(): number {
    return this.state.feedLagMs;
  }

  /** After `close()`: no publish, no new stream. */
  get isClosing(): boolean {
    return this.state.closing;
  }

  /** Resolves when the broker's feed is running. */
  whenReady(): Promise<void> {
    return this.state.ready;
  }

  /**
   * Whether the log keeps the latest value per key (`snapshot=latest`, `/v1/latest`). Known once
   * the hub is ready: a worker learns it from its primary's log.
   */
  get keepsLatest(): boolean {
    return latestKeeperOf(this.state.broker) !== undefined;
  }

  /**
   * Validates, authorizes and appends events; resolves once the log has them. With `reuseIds`, a
   * chosen id already in the history names the new event instead of being refused.
   */
  publish(
    inputs: readonly unknown[],
    principal: Principal,
    options: { readonly reuseIds?: boolean } = {},
  ): Promise<HeraldEvent[]> {
    return publishEvents(this.state, inputs, principal, options);
  }

  /**
   * Opens a stream. The subscriber is returned at once so the transport can wire `drained()` and
   * `closed()`; the first bytes, the replay and the switch to live follow asynchronously.
   */
  subscribe(subscription: Subscription, sink: Sink): Subscriber {
    const state = this.state;
    if (state.closing) throw shuttingDown();
    const now = Date.now();
    const lifetime = state.options.maxLifetimeMs;
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
    state.subscribers.set(subscriber.id, subscriber);
    if (subscriber.carrier) state.carriers++;
    else state.counters.opened++;
    state.options.lifecycle?.opened(subscriber);
    this.ticker.start();
    openStream(state, this.flusher, subscriber, subscription).catch((error: unknown) => {
      state.options.onError(error, 'opening a stream failed');
      this.end(subscriber, 'error');
    });
    return subscriber;
  }

  /**
   * Calls `listener` with every batch this node's feed dispatches from now on (every event of the
   * log, once, in order), for parts that keep state from the log, such as Mercure's registry of
   * active subscriptions. Returns the function that stops it.
   */
  observe(listener: (events: readonly HeraldEvent[]) => void): () => void {
    return this.fanOut.observe(listener);
  }

  /** SubscriberOwner: the socket has room again. */
  drained(subscriber: Subscriber): void {
    this.flusher.drained(subscriber);
  }

  /** SubscriberOwner: forget a stream (its client left, or the hub ended it). */
  detach(subscriber: Subscriber, reason: CloseReason): void {
    if (subscriber.isClosed) return;
    const state = this.state;
    subscriber.markClosed();
    state.subscribers.delete(subscriber.id);
    if (subscriber.indexed) state.index.remove(subscriber);
    if (subscriber.carrier) state.carriers--;
    else state.counters.closed[reason]++;
    state.bytesOfClosed += subscriber.bytesWritten;
    if (subscriber.delivered > 0) tenantTotalsOf(state, subscriber.tenant).delivered += subscriber.delivered;
    subscriber.onClose?.();
    if (state.subscribers.size === 0) this.ticker.stop();
    state.options.lifecycle?.closed(subscriber, reason);
  }

  /** Bytes written to every stream this node has served, the open ones included. */
  bytesWritten(): number {
    return bytesWritten(this.state);
  }

  /**
   * The long-poll twin of a stream, for clients whose streams keep failing (a buffering proxy):
   * the events after `subscription.lastEventId` (from now without one), at most `limit`, waiting
   * up to `waitMs` for the first. The returned `lastEventId` is where the next poll continues.
   */
  poll(subscription: Subscription, waitMs: number, limit: number, signal?: AbortSignal): Promise<PollResult> {
    return this.polls.poll(subscription, waitMs, limit, signal);
  }

  /**
   * The latest event of every key `subscription` matches and may see, at most `limit` (the
   * newest), for a page rendered on the server: its `lastEventId` is where a stream opened next
   * goes on from, with no gap and no duplicate.
   */
  async latest(subscription: Subscription, limit: number): Promise<LatestResult> {
    const state = this.state;
    if (state.closing) throw shuttingDown();
    await state.ready;
    // A reader that is never registered: it only stands for what the caller may see.
    const reader = new Subscriber(
      'latest',
      subscription,
      NO_SINK,
      this,
      Date.now(),
      Number.POSITIVE_INFINITY,
    );
    reader.state = 'live';
    const until = state.cursor;
    const history = await latestFor(state, reader, until, limit);
    return {
      events: history.events.map((event) => ({
        id: event.id,
        type: event.type ?? 'message',
        data: visibleData(event, reader.permissions),
        topic: event.topics[0] as string,
        key: event.key as string,
        time: new Date(event.time).toISOString(),
      })),
      lastEventId: until,
      complete: history.complete,
    };
  }

  /**
   * A page of the log's events that `query` matches, newest first, as far as this node has read
   * the log, for an admin browsing a topic's history (`GET /v1/history`): see `browseHistory`.
   */
  async history(query: HistoryQuery, signal?: AbortSignal): Promise<HistoryPage> {
    const state = this.state;
    if (state.closing) throw shuttingDown();
    await state.ready;
    const { replayPageSize: pageSize, rewind } = state.options;
    return browseHistory(
      state.broker,
      query,
      { head: state.cursor, pageSize, maxScan: rewind.maxScan },
      signal,
    );
  }

  /**
   * Changes the topics, types and tags of an open stream; only whoever holds the stream may (see
   * `changeSubscription`). Returns what the stream now receives.
   */
  changeSubscription(
    connectionId: string,
    secret: string,
    principal: Principal,
    change: SubscriptionChange,
    maxSelectors: number,
  ): SubscriptionState {
    return changeSubscription(this.state, connectionId, secret, principal, change, maxSelectors);
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
    if (subscriber.state === 'live' && !subscriber.blocked) this.flusher.flushOne(subscriber, Date.now());
    this.detach(subscriber, reason);
    sink.write([encodeRetry(this.state.options.retryMs * (1 + Math.random()))]);
    sink.end();
  }

  /**
   * This node's open streams, for listing and ending them across a cluster (`src/cluster/`):
   * streams that only carry others' frames (a mux) are not connections and are left out.
   */
  *streams(): IterableIterator<Subscriber> {
    for (const subscriber of this.state.subscribers.values()) if (!subscriber.carrier) yield subscriber;
  }

  /**
   * This node's long polls under way, for listing them across a cluster: one waiter each, whose
   * id is new per request (a polling client is a sequence of them).
   */
  pollsInFlight(): IterableIterator<Subscriber> {
    return this.polls.inFlight();
  }

  /**
   * Ends the long polls under way that `matches` accepts because an admin asked: each answers at
   * once with what it has and `disconnect: notice`. With `remember` (the tenant the disconnect was
   * scoped to, `*` for every one), so is, at once and without events, a poll that starts within
   * `POLL_TOMBSTONE_MS` and matches (its client was between two polls). Returns how many were
   * under way.
   */
  disconnectPolls(
    matches: (poll: Subscriber) => boolean,
    notice: DisconnectPayload,
    remember: string | undefined,
  ): number {
    return this.polls.disconnect(matches, notice, remember);
  }

  /**
   * Per tenant, what this node has published and delivered since it started (delivered: live
   * events written, the open streams' included). Computed when asked, from counts kept per
   * publish call and per flush of a stream, so the figures cost nothing per event per recipient.
   */
  tenantTotals(): Map<string, { published: number; delivered: number }> {
    const totals = new Map<string, { published: number; delivered: number }>();
    for (const [tenant, { published, delivered }] of this.state.tenantTotals) {
      totals.set(tenant, { published, delivered });
    }
    for (const subscriber of this.state.subscribers.values()) {
      if (subscriber.delivered === 0) continue;
      const entry = totals.get(subscriber.tenant) ?? { published: 0, delivered: 0 };
      entry.delivered += subscriber.delivered;
      totals.set(subscriber.tenant, entry);
    }
    return totals;
  }

  /**
   * Ends a stream because an admin asked: what is queued goes out, then a `herald.disconnect`
   * saying why and whether the client may come back with the same credential, then the end.
   */
  disconnect(subscriber: Subscriber, notice: DisconnectPayload): void {
    if (subscriber.isClosed) return;
    if (subscriber.state === 'live' && !subscriber.blocked) this.flusher.flushOne(subscriber, Date.now());
    if (subscriber.systemEvents && !subscriber.blocked) {
      subscriber.write([encodeSystemEvent(DISCONNECT_EVENT, notice)], Date.now());
    }
    this.end(subscriber, 'disconnected');
  }

  /**
   * Writes a notice outside the log to the streams of `tenant` that selected `topic` exactly (and
   * that `only` accepts, when given): see `notify`.
   */
  notify(
    tenant: string,
    topic: string,
    type: string,
    payload: unknown,
    only?: (subscriber: Subscriber) => boolean,
  ): number {
    return notify(this.state, tenant, topic, type, payload, only);
  }

  /** How many of this node's streams of `tenant` selected `topic` exactly (who a `notify` would reach). */
  watchers(tenant: string, topic: string): number {
    return watchers(this.state, tenant, topic);
  }

  /** What a tenant may know: its own streams, nothing of other tenants or of the shared log. */
  tenantStats(tenant: string): TenantStats {
    return tenantStats(this.state, tenant);
  }

  stats(): Promise<HubStats> {
    return hubStats(this.state);
  }

  /** Refuses new publishes, ends every stream with a retry hint, and closes the broker. */
  async close(): Promise<void> {
    const state = this.state;
    if (state.closing) return;
    state.closing = true;
    this.flusher.flush();
    for (const subscriber of [...state.subscribers.values()]) this.end(subscriber, 'shutdown');
    this.polls.wakeAll();
    this.ticker.stop();
    await state.broker.close();
  }
}
