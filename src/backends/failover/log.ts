import { randomBytes } from 'node:crypto';
import { broadcasterOf, sharedCounterOf, type WindowCount } from '../../core/cluster.ts';
import { HeraldError } from '../../core/errors.ts';
import type { EventDraft, HeraldEvent } from '../../core/event.ts';
import {
  type Broker,
  backwardReaderOf,
  type HistoryStats,
  healthOf,
  historyOf,
  type LatestEvents,
  type Location,
  type Log,
  type LogHealth,
  latestKeeperOf,
  type OutageReporting,
  type OutageStats,
  persistenceWarningOf,
} from '../../core/log.ts';
import { chosenIdKey, toEvent } from '../codec.ts';
import { withTimeout } from '../with-timeout.ts';
import { type HeldEntry, HeldLog } from './held-log.ts';
import { comparePositions, heldPosition, parseHeld } from './positions.ts';

/** Events a node holds at most while its broker is down (`--outage-buffer`). */
export const DEFAULT_OUTAGE_BUFFER = 10_000;
/** How often the broker is asked whether it answers, ms (`--outage-probe`); doubled up to 5×, while it does not. */
export const DEFAULT_PROBE_INTERVAL_MS = 1_000;
const PROBE_TIMEOUT_MS = 2_000;
/** Held events per append when they are handed to the broker. */
const HAND_OVER_BATCH = 100;
/** Events per read when the feed catches up after an outage. */
const CATCH_UP_PAGE = 1_000;
/** Appends remembered (one slot each, a power of two) to find what the feed had not brought back at an outage. */
const RECENT = 256;
const RECENT_MASK = RECENT - 1;
/** Pages read at most to find held events the broker may have stored as it went down. */
const SETTLE_PAGES = 20;
/**
 * Positions past any a broker will reach, one per shape the built-in brokers use (Redis entry
 * ids, NATS sequences): each broker's `compare` takes its own shape as the greater.
 */
const FAR_ENDS = ['18446744073709551615-18446744073709551615', '9007199254740991'];
/**
 * A node that started with its broker down delivers, once it reaches it, what other nodes
 * accepted since it started (their clocks may be this much behind), not the whole history.
 */
const CLOCK_SKEW_MS = 2_000;

export type OutageState = OutageStats['state'];

export interface FailoverOptions {
  /** Events held at most while the broker is down; past it publishes are refused (503). Default 10 000. */
  readonly outageBuffer?: number;
  /** How often the broker is probed, ms: while it answers, and while it does not (then with a backoff up to 5×). Default 1 000. */
  readonly probeIntervalMs?: number;
  /** Told of every change of state and why, for the operator's log. Default: nothing. */
  readonly onState?: (state: OutageState, detail: string) => void;
  /** Failures no caller waits for (a hand-over that failed). Default: nothing. */
  readonly onError?: (error: unknown, context: string) => void;
}

/**
 * A broker's log that rides out the broker's outages (`--on-broker-down local`). States:
 *
 * - `broker`: appends, the feed and reads are the broker's; the cost is a field check per
 *   append and per feed batch.
 * - `local`: the broker failed (an append, a start, a probe): what this node accepts gets a held
 *   position (positions.ts) and is delivered to its own streams at once, and kept in a bounded
 *   held log (past the bound publishes are refused: nothing accepted is dropped). The broker is
 *   probed every second or so.
 * - `rejoining`: the broker answers: what was held is appended to it in order, with its ids; then
 *   this node's feed goes on from where it stood before the outage, reading what it missed, minus
 *   its own held events (its streams had them), and back to `broker`.
 *
 * Positions: one order over broker and held positions (`comparePositions`), the order this
 * node's feed dispatched them in, so the hub's cursor and replay hand-off hold as on any log.
 */
export class FailoverLog implements Broker, OutageReporting {
  readonly kind: string;
  readonly latestMaxKeys: number;
  // The inner broker's optional abilities, forwarded when it has them (see the constructor).
  readBack?: (until: string, limit: number, exclusive: boolean) => Promise<HeraldEvent[]>;
  latest?: (tenant: string, limit: number) => Promise<LatestEvents>;
  persistenceWarning?: () => Promise<string | undefined>;
  broadcast?: (message: string) => Promise<void>;
  listen?: (listener: (message: string) => void) => () => void;
  acquire?: (key: string, node: string, limit: number, live: readonly string[]) => Promise<boolean>;
  release?: (key: string, node: string) => Promise<void>;
  consume?: (key: string, amount: number, windowMs: number) => Promise<WindowCount>;

  private readonly inner: Log;
  private readonly held: HeldLog;
  private readonly probeMs: number;
  private readonly onState: (state: OutageState, detail: string) => void;
  private readonly onError: (error: unknown, context: string) => void;
  /** This process's tag in held positions: unique across nodes and restarts. */
  private readonly node = randomBytes(6).toString('base64url');

  private state: OutageState = 'broker';
  /** Appends go to the broker (else to the held log). */
  private direct = true;
  /** The broker's feed goes to the hub (else it is read again once the broker is back). */
  private forwarding = true;
  /** Since a rejoin: the feed skips what this node dispatched already (see `forward`). */
  private filtering = false;
  /** Held positions exist: reads, locates and compares may meet them. */
  private heldPositions = false;
  /** The broker's start succeeded: its feed runs. */
  private started = false;
  private closed = false;
  private feed: ((events: readonly HeraldEvent[]) => void) | undefined;
  private reset: ((from: string) => void) | undefined;
  /** The broker position of the last feed event this node took in ('': none yet). */
  private mark = '';
  /** The furthest broker position its feed delivered, taken in or not. */
  private seen = '';
  /** Where the current outage began: `mark` then. */
  private base = '';
  /** A reset the broker's feed reported while not forwarding: passed on when catching up. */
  private pendingReset: string | undefined;
  /** Held events handed to the broker whose copies the feed has not brought back yet (by `copyKey`). */
  private readonly copies = new Set<string>();
  /** Where the last copy went in the broker: once the feed is past it, no copy is still due. */
  private lastCopy = '';
  /** Started with the broker down: its first catch-up starts at this time, not at the oldest event. */
  private notBefore = 0;
  private seq = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private backoff: number;
  /** The last appends' events, by `recentAt` modulo RECENT. */
  private readonly recent: (readonly HeraldEvent[] | undefined)[] = new Array(RECENT).fill(undefined);
  private recentAt = 0;
  /** Failed health probes in a row, while on the broker. */
  private probeFailures = 0;
  private rejoined = 0;
  private refused = 0;
  private outages = 0;

  constructor(inner: Log, options: FailoverOptions = {}) {
    this.inner = inner;
    this.kind = inner.kind;
    this.held = new HeldLog(options.outageBuffer ?? DEFAULT_OUTAGE_BUFFER);
    if (!(this.held.max >= 1)) throw new RangeError('the outage buffer must hold at least 1 event');
    this.probeMs = options.probeIntervalMs ?? DEFAULT_PROBE_INTERVAL_MS;
    this.backoff = this.probeMs;
    this.onState = options.onState ?? (() => {});
    this.onError = options.onError ?? (() => {});
    const reader = backwardReaderOf(inner);
    if (reader !== undefined)
      this.readBack = (until, limit, exclusive) => reader.readBack(until, limit, exclusive);
    const keeper = latestKeeperOf(inner);
    this.latestMaxKeys = keeper?.latestMaxKeys ?? 0;
    if (keeper !== undefined) this.latest = (tenant, limit) => keeper.latest(tenant, limit);
    if ('persistenceWarning' in inner) this.persistenceWarning = () => persistenceWarningOf(inner);
    // What nodes share besides the log: through the broker, so not while it is down.
    const bus = broadcasterOf(inner);
    if (bus !== undefined) {
      this.broadcast = (message) => (this.direct ? bus.broadcast(message) : this.down());
      this.listen = (listener) => bus.listen(listener);
    }
    const counter = sharedCounterOf(inner);
    if (counter !== undefined) {
      this.acquire = (key, node, limit, live) =>
        this.direct ? counter.acquire(key, node, limit, live) : this.down();
      this.release = (key, node) => (this.direct ? counter.release(key, node) : this.down());
      this.consume = (key, amount, windowMs) =>
        this.direct ? counter.consume(key, amount, windowMs) : this.down();
    }
  }

  outage(): OutageStats {
    return {
      state: this.state,
      held: this.held.held,
      maxHeld: this.held.max,
      rejoined: this.rejoined,
      refused: this.refused,
      outages: this.outages,
    };
  }

  async start(
    feed: (events: readonly HeraldEvent[]) => void,
    onReset?: (from: string) => void,
  ): Promise<string> {
    this.feed = feed;
    this.reset = onReset;
    try {
      const head = await this.inner.start(this.fromBroker, this.fromBrokerReset);
      this.started = true;
      this.mark = head;
      this.seen = head;
      this.watch(this.probeMs);
      return head;
    } catch (error) {
      if (this.closed) throw error;
      // No exit: this node serves alone and joins the broker when it comes up.
      this.notBefore = Date.now() - CLOCK_SKEW_MS;
      this.lose(`the ${this.kind} broker is unreachable at start: ${messageOf(error)}`);
      return heldPosition('', this.node, 0);
    }
  }

  async append(drafts: readonly EventDraft[]): Promise<HeraldEvent[]> {
    if (this.direct) {
      try {
        const events = await this.inner.append(drafts);
        // One slot per append, no work per event: what went down with the feed (see `adopt`).
        this.recent[this.recentAt++ & RECENT_MASK] = events;
        if (!this.direct) this.adopt(events);
        return events;
      } catch (error) {
        if (!isOutage(error) || this.closed) throw error;
        this.lose(`an append failed: ${messageOf(error)}`);
        return this.appendHere(drafts, true);
      }
    }
    return this.appendHere(drafts, false);
  }

  async locate(id: string, tenant: string): Promise<Location> {
    const held = this.heldPositions ? this.held.find(id, tenant) : undefined;
    if (held !== undefined) return { kind: 'found', pos: held.pos };
    const position = parseHeld(id);
    if (position === undefined) {
      // What this node's feed took in last needs no broker to be found.
      if (!this.direct && id === this.mark) return { kind: 'found', pos: id };
      return this.inner.locate(id, tenant);
    }
    // Another node's held event (or one of this node's it no longer keeps): its client had
    // everything up to `base` and the sender's held events up to `seq`; `read` goes on from there.
    if (position.base !== '') {
      const base = await this.inner.locate(position.base, tenant);
      if (base.kind !== 'found') return base;
    }
    this.heldPositions = true;
    return { kind: 'found', pos: id };
  }

  read(after: string | null, until: string, limit: number): Promise<HeraldEvent[]> {
    if (!this.heldPositions) return this.inner.read(after, until, limit);
    return this.readAcross(after, until, limit);
  }

  compare(a: string, b: string): number {
    if (!this.heldPositions) return this.inner.compare(a, b);
    return comparePositions(a, b, (x, y) => this.inner.compare(x, y));
  }

  async health(): Promise<LogHealth> {
    // Serving on the held log: /readyz says degraded (fallback-local, rejoining), not down.
    if (this.state !== 'broker') return { ok: true };
    return healthOf(this.inner);
  }

  async history(): Promise<HistoryStats> {
    const history = historyOf(this.inner).then((stats) => stats ?? { size: 0, maxSize: 0, maxAgeMs: 0 });
    if (this.direct) return history;
    // While the broker is down: what this node holds for it.
    return history.catch(() => ({ size: this.held.held, maxSize: this.held.max, maxAgeMs: 0 }));
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    await this.inner.close();
  }

  // ---- the broker's feed

  private readonly fromBroker = (events: readonly HeraldEvent[]): void => {
    const last = events[events.length - 1];
    if (last === undefined) return;
    if (!this.forwarding) {
      // Read again from `mark` once the broker is back, after what this node held.
      this.seen = last.pos;
      return;
    }
    if (!this.filtering) {
      this.mark = last.pos;
      this.seen = last.pos;
      this.feed?.(events);
      return;
    }
    this.forward(events);
  };

  private readonly fromBrokerReset = (from: string): void => {
    if (this.forwarding) this.resetTo(from);
    else this.pendingReset = from;
  };

  private resetTo(from: string): void {
    if (this.mark === '' || this.inner.compare(from, this.mark) > 0) this.mark = from;
    this.reset?.(from);
  }

  /**
   * Passes the broker's events on, minus what this node dispatched already: events up to `mark`,
   * and the copies of what it held (its streams had them when it accepted them).
   */
  private forward(events: readonly HeraldEvent[]): void {
    const kept: HeraldEvent[] = [];
    for (const event of events) {
      if (this.mark !== '' && this.inner.compare(event.pos, this.mark) <= 0) continue;
      if (this.copies.size > 0 && this.copies.delete(copyKey(event))) continue;
      if (event.time < this.notBefore) continue;
      kept.push(event);
    }
    const last = (events[events.length - 1] as HeraldEvent).pos;
    if (this.mark === '' || this.inner.compare(last, this.mark) > 0) this.mark = last;
    if (this.seen === '' || this.inner.compare(last, this.seen) > 0) this.seen = last;
    if (this.copies.size > 0 && this.lastCopy !== '' && this.inner.compare(this.mark, this.lastCopy) >= 0) {
      this.copies.clear();
    }
    if (this.forwarding && this.copies.size === 0) this.filtering = false;
    if (kept.length > 0) this.feed?.(kept);
  }

  // ---- the outage

  private appendHere(drafts: readonly EventDraft[], uncertain: boolean): HeraldEvent[] {
    if (this.held.full(drafts.length)) {
      this.refused += drafts.length;
      throw new HeraldError(
        503,
        'outage-buffer-full',
        `the ${this.kind} broker is down and this node already holds ${this.held.max} events for it ` +
          '(--outage-buffer); nothing more is accepted until it is back. Retry shortly',
        { headers: { 'retry-after': String(Math.ceil((this.probeMs * 2) / 1000)) } },
      );
    }
    const taken = new Set<string>();
    for (const draft of drafts) {
      if (draft.id === undefined || draft.reuseId === true) continue;
      const key = chosenIdKey(draft.tenant, draft.id);
      if (this.held.chosen(draft.tenant, draft.id) || taken.has(key)) {
        throw new HeraldError(
          409,
          'duplicate-id',
          `id "${draft.id}" is already in the history; ids must be unique`,
        );
      }
      taken.add(key);
    }
    this.heldPositions = true;
    const events: HeraldEvent[] = new Array(drafts.length);
    for (let i = 0; i < drafts.length; i++) {
      const draft = drafts[i] as EventDraft;
      const event = toEvent(draft, heldPosition(this.base, this.node, ++this.seq));
      this.held.add(draft, event, uncertain);
      events[i] = event;
    }
    // Delivered to this node's streams now, as the broker's feed would.
    this.feed?.(events);
    return events;
  }

  /** The broker failed: hold what comes, and probe it until it answers. */
  private lose(detail: string): void {
    if (this.closed || this.state === 'local') return;
    const fromBroker = this.state === 'broker';
    if (fromBroker) this.outages++;
    this.state = 'local';
    this.direct = false;
    this.forwarding = false;
    this.heldPositions = true;
    this.base = this.mark;
    this.backoff = this.probeMs;
    this.probeFailures = 0;
    this.onState('local', detail);
    if (fromBroker) {
      // This node's appends the broker took but its feed had not brought back yet.
      const pending: HeraldEvent[] = [];
      for (const events of this.recent) {
        for (const event of events ?? []) {
          if (this.mark === '' || this.inner.compare(event.pos, this.mark) > 0) pending.push(event);
        }
      }
      pending.sort((a, b) => this.inner.compare(a.pos, b.pos));
      this.adopt(pending);
    }
    this.recent.fill(undefined);
    this.watch(this.probeMs);
  }

  /**
   * Delivers now events this node appended that the broker stored but its feed did not bring
   * back before the outage: after the outage they would come after what this node held since,
   * out of their publisher's order. They get held positions (their ids stay the broker's), and
   * their copies in the broker are skipped when the feed catches up.
   */
  private adopt(events: readonly HeraldEvent[]): void {
    if (events.length === 0) return;
    const adopted: HeraldEvent[] = [];
    for (const event of events) {
      const held: HeraldEvent = { ...event, pos: heldPosition(this.base, this.node, ++this.seq) };
      held.frame = undefined;
      held.variants = undefined;
      this.copies.add(copyKey(event));
      if (this.lastCopy === '' || this.inner.compare(event.pos, this.lastCopy) > 0) this.lastCopy = event.pos;
      this.held.add(event, held, false, true);
      adopted.push(held);
    }
    this.feed?.(adopted);
  }

  private watch(ms: number): void {
    clearTimeout(this.timer);
    if (this.closed) return;
    this.timer = setTimeout(() => {
      this.probe().catch((error: unknown) => this.onError(error, 'broker probe'));
    }, ms);
    this.timer.unref?.();
  }

  private async probe(): Promise<void> {
    if (this.closed) return;
    if (this.state === 'broker') {
      const health = await withTimeout(healthOf(this.inner), PROBE_TIMEOUT_MS, 'health').catch(
        (error: unknown): LogHealth => ({ ok: false, detail: messageOf(error) }),
      );
      // Twice in a row: one slow answer on a busy machine is not an outage (a failed append is).
      this.probeFailures = health.ok ? 0 : this.probeFailures + 1;
      if (this.probeFailures >= 2 && this.state === 'broker') {
        this.lose(`the broker's health probe failed twice: ${health.detail ?? 'unhealthy'}`);
      } else this.watch(this.probeMs);
      return;
    }
    if (this.state !== 'local') return;
    if (await this.answers()) {
      await this.rejoin();
      return;
    }
    this.backoff = Math.min(this.backoff * 2, this.probeMs * 5);
    this.watch(this.backoff);
  }

  /** Whether the broker answers; a broker that never started is started now. */
  private async answers(): Promise<boolean> {
    try {
      if (!this.started) {
        const head = await withTimeout(
          this.inner.start(this.fromBroker, this.fromBrokerReset),
          PROBE_TIMEOUT_MS * 2,
          'start',
        );
        this.started = true;
        if (this.seen === '') this.seen = head;
        return true;
      }
      return (await withTimeout(healthOf(this.inner), PROBE_TIMEOUT_MS, 'health')).ok;
    } catch {
      return false;
    }
  }

  /** Hands what it held to the broker, catches its feed up, and is back on the broker. */
  private async rejoin(): Promise<void> {
    this.state = 'rejoining';
    this.onState('rejoining', `the ${this.kind} broker answers; handing over ${this.held.held} held events`);
    try {
      await this.settleUncertain();
      while (this.held.held > 0 && !this.closed) await this.handOver(this.held.next(HAND_OVER_BATCH));
      // Nothing is held: from here new publishes go to the broker, after what was held.
      this.direct = true;
      await this.catchUp();
      if (this.closed) return;
      this.state = 'broker';
      this.backoff = this.probeMs;
      this.onState('broker', `back on the ${this.kind} broker`);
      this.watch(this.probeMs);
    } catch (error) {
      if (this.closed) return;
      this.onError(error, 'rejoining the broker');
      this.lose(`rejoining failed: ${messageOf(error)}`);
    }
  }

  private async handOver(batch: HeldEntry[]): Promise<void> {
    const drafts: EventDraft[] = [];
    for (const { draft, event, stored } of batch) {
      if (stored) continue;
      // Known before the append: its feed may bring the copies back before the append answers.
      this.copies.add(copyKey(event));
      // The event's id goes with it into the broker: a client's Last-Event-ID of it stays valid.
      drafts.push(draft.id === undefined ? { ...draft, id: event.id } : draft);
    }
    let stored: HeraldEvent[] = [];
    if (drafts.length > 0) {
      try {
        stored = await this.inner.append(drafts);
      } catch (error) {
        if (!(error instanceof HeraldError && error.code === 'duplicate-id')) throw error;
        stored = [];
        for (const draft of drafts) stored.push(...(await this.handOverOne(draft)));
      }
    }
    const last = stored[stored.length - 1];
    if (last !== undefined) this.lastCopy = last.pos;
    this.held.handOver(batch.length);
    this.rejoined += drafts.length;
  }

  /**
   * Held events whose append failed as the broker went down may be in it all the same (stored,
   * and the answer lost with the connection): looked for after where the outage began, by what
   * they are (tenant, time, topics, type, data), and not handed over twice. The broker's copy of
   * one found is this node's own: its feed skips it, as it skips what it hands over.
   */
  private async settleUncertain(): Promise<void> {
    const wanted = new Map<string, HeldEntry>();
    for (const entry of this.held.uncertain()) wanted.set(fingerprint(entry.event), entry);
    if (wanted.size === 0) return;
    const end = farEnd(this.inner);
    let cursor: string | null = this.base === '' ? null : this.base;
    for (let pages = 0; wanted.size > 0 && pages < SETTLE_PAGES; pages++) {
      const page = await this.inner.read(cursor, end, CATCH_UP_PAGE);
      for (const event of page) {
        const entry = wanted.get(fingerprint(event));
        if (entry === undefined) continue;
        wanted.delete(fingerprint(event));
        entry.stored = true;
        this.copies.add(copyKey(event));
        if (this.lastCopy === '' || this.inner.compare(event.pos, this.lastCopy) > 0)
          this.lastCopy = event.pos;
      }
      if (page.length < CATCH_UP_PAGE) return;
      cursor = (page[page.length - 1] as HeraldEvent).pos;
    }
  }

  /**
   * One held event whose id the broker already has: a held id is there from an earlier try whose
   * answer was lost; a publisher's id was taken meanwhile by another node's event, and this one
   * takes it over (nothing accepted is dropped).
   */
  private async handOverOne(draft: EventDraft): Promise<HeraldEvent[]> {
    try {
      return await this.inner.append([draft]);
    } catch (error) {
      if (!(error instanceof HeraldError && error.code === 'duplicate-id')) throw error;
      if (draft.id !== undefined && parseHeld(draft.id) !== undefined) return [];
      return this.inner.append([{ ...draft, reuseId: true }]);
    }
  }

  /** Reads what the broker's feed brought while this node was away, from `mark` to `seen`. */
  private async catchUp(): Promise<void> {
    this.filtering = true;
    if (this.pendingReset !== undefined) {
      const from = this.pendingReset;
      this.pendingReset = undefined;
      this.resetTo(from);
    }
    for (;;) {
      if (this.seen === '' || (this.mark !== '' && this.inner.compare(this.mark, this.seen) >= 0)) break;
      const page = await this.inner.read(this.mark === '' ? null : this.mark, this.seen, CATCH_UP_PAGE);
      if (this.closed) return;
      if (page.length === 0) {
        this.mark = this.seen;
        break;
      }
      this.forward(page);
    }
    // No turn in between: whatever the feed brings from now on is past `seen`.
    this.forwarding = true;
    this.notBefore = 0;
    if (this.copies.size === 0) this.filtering = false;
  }

  // ---- reading across held positions

  /**
   * The log in (after, until] as this node's streams saw it. Up to a held position of this node:
   * the broker's events before its base, then what it holds, in order. A resume from a held
   * position (this node's or another's) goes on in the broker from its base, skipping the
   * sender's held events up to its sequence: until the copy of that event has passed, the page
   * is not cut at `limit` (a later page would no longer know what to skip).
   */
  private async readAcross(after: string | null, until: string, limit: number): Promise<HeraldEvent[]> {
    const from = after === null ? undefined : parseHeld(after);
    const to = parseHeld(until);
    const ownUntil = to !== undefined && to.node === this.node;
    const innerAfter = from === undefined ? after : from.base === '' ? null : from.base;
    const innerUntil = to === undefined ? until : to.base;
    const compare = (a: string, b: string) => this.compare(a, b);
    const ownFrom = from !== undefined && from.node === this.node;
    // Another node's held position says nothing of where this node's own held events stood for
    // its client: all of them past its base are news to it.
    const heldAfter = from !== undefined && !ownFrom ? (from.base === '' ? null : from.base) : after;
    const skip = (event: HeraldEvent): boolean => {
      const kept = this.held.find(event.id, event.tenant);
      // This node's own copy: its streams saw it at its held position.
      if (kept !== undefined && kept.pos !== event.pos) {
        // Read from the held log instead (or it was before `after`).
        if (ownUntil) return true;
        if (ownFrom && compare(kept.pos, after as string) <= 0) return true;
      }
      // The sender's held events up to the resume point: its client had them.
      const held = parseHeld(event.id);
      return held !== undefined && from !== undefined && held.node === from.node && held.seq <= from.seq;
    };
    const broker: HeraldEvent[] = [];
    if (innerUntil !== '' && (innerAfter === null || this.inner.compare(innerAfter, innerUntil) < 0)) {
      let passed = from === undefined;
      let cursor = innerAfter;
      const page = Math.max(limit, 1);
      for (;;) {
        const events = await this.inner.read(cursor, innerUntil, page);
        for (const event of events) {
          if (!passed && event.id === after) passed = true;
          if (!skip(event)) broker.push(event);
        }
        if (events.length < page) break;
        cursor = (events[events.length - 1] as HeraldEvent).pos;
        if (passed && broker.length >= limit) break;
      }
    }
    if (!ownUntil) return broker;
    const held = this.held.between(heldAfter, until, compare);
    if (held.length === 0) return broker;
    if (broker.length === 0) return held;
    return merge(broker, held, compare);
  }

  /** What the broker's other abilities answer while it is down: a rejection, as the broker's own. */
  private down<T>(): Promise<T> {
    return Promise.reject(
      new HeraldError(
        503,
        'broker-unavailable',
        `the ${this.kind} broker is down; this node runs on its own until it is back`,
      ),
    );
  }
}

/** The key of a held event's copy in the broker: its id in its tenant's namespace. */
function copyKey(event: HeraldEvent): string {
  return chosenIdKey(event.tenant, event.id);
}

function merge(a: HeraldEvent[], b: HeraldEvent[], compare: (x: string, y: string) => number): HeraldEvent[] {
  const out: HeraldEvent[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    const x = a[i];
    const y = b[j];
    if (y === undefined || (x !== undefined && compare(x.pos, y.pos) <= 0)) {
      out.push(x as HeraldEvent);
      i++;
    } else {
      out.push(y);
      j++;
    }
  }
  return out;
}

/** The end of the log for a read that must reach whatever the broker holds now. */
function farEnd(log: Log): string {
  return FAR_ENDS.reduce((a, b) => (log.compare(a, b) >= 0 ? a : b));
}

/** What an event is, whatever id and position it was given. */
function fingerprint(event: HeraldEvent): string {
  return JSON.stringify([event.tenant, event.time, event.topics, event.type ?? null, event.data]);
}

function isOutage(error: unknown): boolean {
  return error instanceof HeraldError && error.status === 503 && error.code === 'broker-unavailable';
}

function messageOf(error: unknown): string {
  if (error instanceof HeraldError) return error.detail;
  return error instanceof Error ? error.message : String(error);
}
