import type { HeraldEvent } from './event.ts';
import { historyFor, historyPayload } from './history-start.ts';
import { type HubState, shuttingDown } from './hub-state.ts';
import { logPages, wantsFromLog } from './log-reader.ts';
import type { PollEvent, PollResult } from './protocol/poll.ts';
import type { DisconnectPayload, HistoryPayload } from './protocol/system-events.ts';
import { visibleData } from './redaction.ts';
import { type GapReason, locateResume } from './resume.ts';
import { type Sink, Subscriber, type SubscriberOwner, type Subscription } from './subscriber.ts';

export type { PollResult } from './protocol/poll.ts';

/** A poll's waiter never blocks its sink nor is closed by a transport: nothing to hand back. */
const NO_OWNER: SubscriberOwner = { drained() {}, detach() {} };

/**
 * How long a disconnect with `reconnect: false` that names no connection id (a subject, a tenant)
 * keeps answering the polls that match it. herald/client polls again as soon as an answer arrives
 * (after asking for a token, when its token is a function), or half a second after a poll that
 * failed: a client between two polls when the disconnect came starts its next one well within
 * this, a token fetch and a few quick retries included. Short, because a client that does not keep
 * its promise is only held off meanwhile, as on a stream, where `reconnect: false` is the client's
 * promise too.
 */
export const POLL_TOMBSTONE_MS = 10_000;
/**
 * The most tombstones kept: each is checked by every poll that starts. Past it, the oldest of the
 * scope (tenant) that holds the most goes first (see `evictable`).
 */
export const MAX_POLL_TOMBSTONES = 1_000;

/** A poll under way: what wakes it, and what an admin told it. */
interface PollInFlight {
  readonly wake: () => void;
  disconnect?: DisconnectPayload;
}

/** A disconnect remembered for the polls that start soon after it (see `POLL_TOMBSTONE_MS`). */
interface Tombstone {
  /** Whose disconnect it is: the tenant it was scoped to (`*` for every tenant). */
  readonly scope: string;
  readonly matches: (poll: Subscriber) => boolean;
  readonly notice: DisconnectPayload;
  /** On the monotonic clock (`performance.now()`): a clock set back does not make it last longer. */
  readonly until: number;
}

/**
 * The long-poll twin of a stream, for clients whose streams keep failing (a buffering proxy). A
 * poll answers from the log; while it waits, a waiter in the index is woken by the first event
 * dispatched for it.
 */
export class LongPoll {
  private readonly state: HubState;
  /** The long polls under way, by their waiter: `close()` and a disconnect wake them. */
  private readonly polls = new Map<Subscriber, PollInFlight>();
  /** Oldest first; all live as long, so the expired ones are at the front. */
  private tombstones: Tombstone[] = [];

  constructor(state: HubState) {
    this.state = state;
  }

  /**
   * The events after `subscription.lastEventId` (from now without one), at most `limit`, waiting
   * up to `waitMs` for the first. The returned `lastEventId` is where the next poll continues.
   * Without `lastEventId`, the history `subscription.start` asks for comes first, without a wait.
   */
  async poll(
    subscription: Subscription,
    waitMs: number,
    limit: number,
    signal: AbortSignal | undefined,
  ): Promise<PollResult> {
    const state = this.state;
    if (state.closing) throw shuttingDown();
    await state.ready;
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
    // Its id is per request: what an admin lists, and may end, is this poll.
    const waiter = new Subscriber(
      globalThis.crypto.randomUUID(),
      subscription,
      sink,
      NO_OWNER,
      Date.now(),
      Number.POSITIVE_INFINITY,
    );
    const barred = this.tombstoneFor(waiter);
    if (barred !== undefined) {
      return { events: [], lastEventId: subscription.lastEventId ?? state.cursor, disconnect: barred };
    }
    // Nobody waits for a client that left, or on a hub that closes, or that an admin ended.
    signal?.addEventListener('abort', wake, { once: true });
    const inFlight: PollInFlight = { wake };
    this.polls.set(waiter, inFlight);
    // What it has, then what it was told: an admin's disconnect answers at once.
    const told = (result: PollResult): PollResult =>
      inFlight.disconnect === undefined ? result : { ...result, disconnect: inFlight.disconnect };
    // A waiter in the index, registered before the log is read: what is dispatched meanwhile
    // wakes it instead of being missed.
    waiter.state = 'live';
    state.index.add(waiter);
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      let until = state.cursor;
      let after: string | null = until;
      let gap: GapReason | undefined;
      const from = subscription.lastEventId;
      if (from !== undefined) {
        const point = await locateResume(state.broker, from, subscription.tenant);
        if (point.after !== undefined) after = point.after;
        gap = point.gap;
      }
      let history: HistoryPayload | undefined;
      if (from === undefined && subscription.start !== undefined) {
        const initial = await historyFor(state, waiter, subscription.start, until);
        const { events } = initial;
        if (events.length > 0) {
          // A snapshot's oldest values are the least wanted; a rewind's rest follows from the
          // last one returned, on the next poll (every one of them matches).
          const snapshot = initial.kind === 'snapshot';
          const sent =
            events.length <= limit ? events : snapshot ? events.slice(-limit) : events.slice(0, limit);
          const payload = historyPayload(
            initial,
            sent.length,
            initial.complete && !(snapshot && sent !== events),
          );
          return told({
            events: sent.map((event) => pollEvent(event, waiter.permissions)),
            lastEventId: sent === events || snapshot ? until : (sent.at(-1) as HeraldEvent).id,
            history: payload,
          });
        }
        history = historyPayload(initial, 0);
      }
      let events = await this.collect(waiter, after, until, limit);
      if (events.length === 0 && gap === undefined && waitMs > 0) {
        await Promise.race([woken, new Promise((resolve) => (timer = setTimeout(resolve, waitMs)))]);
        const start = after !== null && state.broker.compare(after, until) > 0 ? after : until;
        until = state.cursor;
        events = await this.collect(waiter, start, until, limit);
      }
      const last = events.at(-1);
      // Without an event, the next poll goes on from what was examined, unless the client was
      // already further on (it came from a node ahead of this one).
      const ahead = after !== null && from !== undefined && state.broker.compare(after, until) > 0;
      const result: PollResult = {
        events: events.map((event) => pollEvent(event, waiter.permissions)),
        lastEventId: last?.id ?? (ahead ? (from as string) : until),
        ...(history === undefined ? {} : { history }),
      };
      return told(gap === undefined ? result : { ...result, gap });
    } finally {
      clearTimeout(timer);
      state.index.remove(waiter);
      this.polls.delete(waiter);
      signal?.removeEventListener('abort', wake);
    }
  }

  /** Ends the wait of every poll under way: they answer with what they have. */
  wakeAll(): void {
    for (const { wake } of this.polls.values()) wake();
  }

  /** The polls under way and not yet ended, one waiter each (its id new per request). */
  *inFlight(): IterableIterator<Subscriber> {
    for (const [waiter, { disconnect }] of this.polls) if (disconnect === undefined) yield waiter;
  }

  /**
   * Ends the polls under way that `matches` accepts: each answers at once with what it has and
   * `disconnect: notice`. With `remember` (the scope of the disconnect: a tenant, or `*`), a poll
   * that starts within `POLL_TOMBSTONE_MS` and matches is answered so too, at once and without
   * events: the client was between two polls. Returns how many were under way.
   */
  disconnect(
    matches: (poll: Subscriber) => boolean,
    notice: DisconnectPayload,
    remember: string | undefined,
  ): number {
    let ended = 0;
    for (const [waiter, poll] of this.polls) {
      if (poll.disconnect !== undefined || !matches(waiter)) continue;
      poll.disconnect = notice;
      poll.wake();
      ended++;
    }
    if (remember !== undefined) {
      this.dropExpired(performance.now());
      this.tombstones.push({
        scope: remember,
        matches,
        notice,
        until: performance.now() + POLL_TOMBSTONE_MS,
      });
      if (this.tombstones.length > MAX_POLL_TOMBSTONES) this.tombstones.splice(this.evictable(), 1);
    }
    return ended;
  }

  /**
   * Which tombstone goes when there are too many: the oldest of those whose scope holds the most.
   * Why not simply the oldest: a tenant's admin may end its own subjects at will, and a thousand
   * of those would push out another tenant's tombstones, whose clients, between two polls, would
   * then never hear that they were told not to come back.
   */
  private evictable(): number {
    const counts = new Map<string, number>();
    for (const { scope } of this.tombstones) counts.set(scope, (counts.get(scope) ?? 0) + 1);
    const most = Math.max(...counts.values());
    return this.tombstones.findIndex((tombstone) => counts.get(tombstone.scope) === most);
  }

  /** Forgets the tombstones past their time: all live as long, so those are at the front. */
  private dropExpired(now: number): void {
    const live = this.tombstones.findIndex((tombstone) => tombstone.until > now);
    if (live !== 0) this.tombstones = live === -1 ? [] : this.tombstones.slice(live);
  }

  /** The newest live tombstone that `waiter` matches: what it is told instead of being answered. */
  private tombstoneFor(waiter: Subscriber): DisconnectPayload | undefined {
    if (this.tombstones.length === 0) return undefined;
    this.dropExpired(performance.now());
    for (let i = this.tombstones.length - 1; i >= 0; i--) {
      const tombstone = this.tombstones[i] as Tombstone;
      if (tombstone.matches(waiter)) return tombstone.notice;
    }
    return undefined;
  }

  /** What `waiter` wants of the log in (after, until], at most `limit` events. */
  private async collect(waiter: Subscriber, after: string | null, until: string, limit: number) {
    const wanted: HeraldEvent[] = [];
    for await (const page of logPages(
      this.state.broker,
      after,
      () => until,
      this.state.options.replayPageSize,
    )) {
      for (const event of page) {
        const wants = wantsFromLog(waiter, event);
        if (wants === true || (wants !== false && (await wants))) wanted.push(event);
        if (wanted.length === limit) return wanted;
      }
    }
    return wanted;
  }
}

function pollEvent(event: HeraldEvent, permissions: ReadonlySet<string>): PollEvent {
  return {
    id: event.id,
    type: event.type ?? 'message',
    data: visibleData(event, permissions),
    ...(event.retry === undefined ? {} : { retry: event.retry }),
  };
}
