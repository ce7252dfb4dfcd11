import type { HeraldEvent } from './event.ts';
import type { HubState } from './hub-state.ts';
import { backwardReaderOf } from './log.ts';
import { logPages, wantsFromLog } from './log-reader.ts';
import type { HistoryKind } from './protocol/system-events.ts';
import type { Subscriber } from './subscriber.ts';

/**
 * The history a new stream or first poll starts with, all of it at or before the position the
 * subscriber was registered at: what follows that position reaches it as a replay and then live,
 * so the two meet with no gap and no duplicate.
 */
export interface InitialHistory {
  readonly kind: HistoryKind;
  /** Oldest first, in log order; each one the subscriber may see. */
  readonly events: readonly HeraldEvent[];
  /** False when a bound of the hub cut it short (events sent, log entries examined). */
  readonly complete: boolean;
}

export interface RewindRequest {
  readonly count: number;
  /** No event accepted before this (ms since the epoch). */
  readonly since?: number | undefined;
  /** `count` is the hub's bound rather than what was asked: more matching means incomplete. */
  readonly capped?: boolean | undefined;
}

/**
 * The last `want.count` events at or before `until` that `who` wants (its tenant, selectors,
 * filter and grants), none older than `want.since`. Read from the log's newest end, so a page
 * load costs the events it needs, not the whole history; at most `maxScan` entries are looked at,
 * as the log is shared by every tenant and a rare selector could otherwise walk all of it.
 */
export async function rewindFor(
  state: HubState,
  who: Subscriber,
  until: string,
  want: RewindRequest,
): Promise<InitialHistory> {
  // One more than a capped count tells "exactly the cap" from "more than the cap".
  const wanted = want.capped === true ? want.count + 1 : want.count;
  const found =
    wanted === 0
      ? { events: [], complete: true }
      : backwardReaderOf(state.broker) === undefined
        ? await forwards(state, who, until, wanted, want.since)
        : await backwards(state, who, until, wanted, want.since);
  const events = found.events;
  let complete = found.complete;
  if (events.length > want.count) {
    events.splice(0, events.length - want.count);
    complete = false;
  }
  return { kind: 'rewind', events, complete };
}

interface Found {
  /** Oldest first. */
  readonly events: HeraldEvent[];
  readonly complete: boolean;
}

async function backwards(
  state: HubState,
  who: Subscriber,
  until: string,
  wanted: number,
  since: number | undefined,
): Promise<Found> {
  const reader = backwardReaderOf(state.broker);
  if (reader === undefined) return { events: [], complete: true };
  const { replayPageSize: pageSize, rewind } = state.options;
  const newestFirst: HeraldEvent[] = [];
  let bound = until;
  let exclusive = false;
  let scanned = 0;
  for (;;) {
    const page = await reader.readBack(bound, pageSize, exclusive);
    if (who.isClosed) return { events: [], complete: true };
    for (const event of page) {
      // Acceptance times follow log order closely enough (across nodes, to their clock skew).
      if (since !== undefined && event.time < since) return done(newestFirst, true);
      if (scanned >= rewind.maxScan) return done(newestFirst, false);
      scanned++;
      const wants = wantsFromLog(who, event);
      if (wants === true || (wants !== false && (await wants))) {
        newestFirst.push(event);
        if (newestFirst.length >= wanted) return done(newestFirst, true);
      }
      if (who.isClosed) return { events: [], complete: true };
    }
    const oldest = page.at(-1);
    // A short page: nothing older is retained.
    if (oldest === undefined || page.length < pageSize) return done(newestFirst, true);
    bound = oldest.pos;
    exclusive = true;
  }
}

const done = (newestFirst: HeraldEvent[], complete: boolean): Found => ({
  events: newestFirst.reverse(),
  complete,
});

/**
 * For a log that reads forwards only (no built-in one): the whole retained history up to `until`,
 * keeping the last `wanted` matches. Examining stops at nothing here, since stopping early would
 * keep the oldest events instead of the newest; such a log is expected to be small.
 */
async function forwards(
  state: HubState,
  who: Subscriber,
  until: string,
  wanted: number,
  since: number | undefined,
): Promise<Found> {
  const kept: HeraldEvent[] = [];
  for await (const page of logPages(state.broker, null, () => until, state.options.replayPageSize)) {
    if (who.isClosed) return { events: [], complete: true };
    for (const event of page) {
      if (since !== undefined && event.time < since) continue;
      const wants = wantsFromLog(who, event);
      if (wants !== true && (wants === false || !(await wants))) continue;
      kept.push(event);
      // Trimmed now and then rather than per event: shifting an array is linear in its length.
      if (kept.length >= 2 * wanted) kept.splice(0, kept.length - wanted);
    }
  }
  return { events: kept.slice(-wanted), complete: true };
}
