import type { HeraldEvent } from './event.ts';
import { historyFor, historyPayload } from './history-start.ts';
import { type HubState, shuttingDown } from './hub-state.ts';
import { logPages, wantsFromLog } from './log-reader.ts';
import type { PollEvent, PollResult } from './protocol/poll.ts';
import type { HistoryPayload } from './protocol/system-events.ts';
import { visibleData } from './redaction.ts';
import { type GapReason, locateResume } from './resume.ts';
import { type Sink, Subscriber, type SubscriberOwner, type Subscription } from './subscriber.ts';

export type { PollResult } from './protocol/poll.ts';

/** A poll's waiter never blocks its sink nor is closed by a transport: nothing to hand back. */
const NO_OWNER: SubscriberOwner = { drained() {}, detach() {} };

/**
 * The long-poll twin of a stream, for clients whose streams keep failing (a buffering proxy). A
 * poll answers from the log; while it waits, a waiter in the index is woken by the first event
 * dispatched for it.
 */
export class LongPoll {
  private readonly state: HubState;
  /** Wakes every long poll under way, so `close()` does not wait out their waits. */
  private readonly pollers = new Set<() => void>();

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
    const waiter = new Subscriber('poll', subscription, sink, NO_OWNER, Date.now(), Number.POSITIVE_INFINITY);
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
          return {
            events: sent.map((event) => pollEvent(event, waiter.permissions)),
            lastEventId: sent === events || snapshot ? until : (sent.at(-1) as HeraldEvent).id,
            history: payload,
          };
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
      return gap === undefined ? result : { ...result, gap };
    } finally {
      clearTimeout(timer);
      state.index.remove(waiter);
      this.pollers.delete(wake);
      signal?.removeEventListener('abort', wake);
    }
  }

  /** Ends the wait of every poll under way: they answer with what they have. */
  wakeAll(): void {
    for (const wake of this.pollers) wake();
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
