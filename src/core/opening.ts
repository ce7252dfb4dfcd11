import type { Flusher } from './flush.ts';
import { historyFor, historyPayload } from './history-start.ts';
import type { HubState } from './hub-state.ts';
import { logPages, wantsFromLog } from './log-reader.ts';
import {
  CONNECTED_EVENT,
  type ConnectedPayload,
  GAP_EVENT,
  HISTORY_EVENT,
} from './protocol/system-events.ts';
import { frameFor } from './redaction.ts';
import { type GapReason, locateResume } from './resume.ts';
import type { InitialHistory } from './rewind.ts';
import { encodeRetry, encodeSystemEvent, joinFrames, OPENING_COMMENT } from './sse.ts';
import type { Subscriber, Subscription } from './subscriber.ts';

/**
 * Opens a registered stream: its first bytes (`herald.connected`, and `herald.gap` when its resume
 * point is lost), the replay of what it missed, then the hand-off to live. Registering in the
 * index comes first, so live events that arrive meanwhile wait in the outbox and follow the
 * replay without a gap or a duplicate.
 *
 * A stream with nothing to resume from may start with history instead (`rewind`/`since`, or the
 * latest value per key): all of it from at or before the registration point, followed by
 * `herald.history` whose id is that point, and then the same replay from there as a resume.
 */
export async function openStream(
  state: HubState,
  flusher: Flusher,
  subscriber: Subscriber,
  subscription: Subscription,
): Promise<void> {
  await state.ready;
  if (subscriber.isClosed) return;
  // Registering and reading the cursor happen in one synchronous step: every event dispatched
  // from here on is after `until`, so it is held in the outbox and never also replayed.
  // A carrier selects nothing of its own: what it carries is indexed as the subscribers it carries.
  if (!subscriber.carrier) {
    state.index.add(subscriber);
    subscriber.indexed = true;
  }
  subscriber.replayUntil = state.cursor;

  const { lastEventId, replayAfter, start } = subscription;
  let replayFrom: string | null | undefined; // undefined: no replay; null: from the oldest retained
  let resumeId = state.cursor;
  let gap: GapReason | undefined;
  let history: InitialHistory | undefined;
  if (
    start !== undefined &&
    replayAfter === undefined &&
    lastEventId === undefined &&
    subscriber.systemEvents
  ) {
    const until = subscriber.replayUntil;
    history = await historyFor(state, subscriber, start, until);
    if (subscriber.isClosed) return;
    // What was dispatched after `until` waits in the outbox or, if it overflowed meanwhile, is
    // read from the log by the replay that follows, from exactly there.
    replayFrom = until;
    resumeId = until;
  } else if (replayAfter !== undefined) {
    replayFrom = replayAfter === null ? null : resumeAfter(state, subscriber, replayAfter);
  } else if (lastEventId !== undefined) {
    const point = await locateResume(state.broker, lastEventId, subscriber.tenant);
    if (subscriber.isClosed) return;
    gap = point.gap;
    if (point.gap === undefined) {
      resumeId = lastEventId;
      replayFrom = resumeAfter(state, subscriber, point.after);
    } else if (point.gap !== 'unknown') {
      // The resume point moves to where what is left begins, so a reconnect is not told of the
      // same loss again.
      replayFrom = point.after;
      resumeId = point.after ?? lastEventId;
      if (
        point.gap === 'reset' &&
        point.after !== null &&
        state.broker.compare(state.cursor, point.after) < 0
      ) {
        state.toldOfReset.add(subscriber);
      }
    }
  }

  let first: Uint8Array[];
  if (subscriber.systemEvents) {
    // The connected event carries the resume point as its id, so a client that drops before any
    // event arrives still reconnects from here and misses nothing published in between. Not
    // before history: a client that dropped in it would resume past what it never got, while
    // without an id it reconnects afresh and is sent the history again.
    const connected: ConnectedPayload = {
      connectionId: subscriber.id,
      lastEventId: resumeId,
      secret: subscriber.secret,
      ...(history === undefined ? {} : { history: history.kind }),
    };
    first = [
      encodeRetry(state.options.retryMs),
      encodeSystemEvent(CONNECTED_EVENT, connected, history === undefined ? resumeId : undefined),
    ];
    if (gap !== undefined) {
      first.push(encodeSystemEvent(GAP_EVENT, { lastEventId, reason: gap }));
      state.counters.gaps++;
    }
  } else first = [OPENING_COMMENT];
  if (!subscriber.write(first, Date.now())) await subscriber.waitForDrain();
  if (history !== undefined) {
    await sendHistory(state, subscriber, history, resumeId);
    if (subscriber.isClosed) return;
  } else if (replayFrom !== undefined) state.counters.replays++;
  if (replayFrom !== undefined) await replay(state, subscriber, replayFrom);
  if (subscriber.isClosed) return;
  subscriber.state = 'live';
  if (subscriber.queuedEvents > 0) flusher.markDirty(subscriber);
}

/**
 * Where to replay from for a client that has everything up to `pos`: `pos` itself when this
 * node's feed has reached it; otherwise nothing to replay (undefined).
 */
function resumeAfter(state: HubState, subscriber: Subscriber, pos: string): string | undefined {
  const log = state.broker;
  if (log.compare(pos, subscriber.replayUntil) <= 0) return pos;
  // The client has seen events this node's feed has not dispatched yet (it was served by a node
  // further ahead): nothing to replay, and what this node holds or will dispatch up to that
  // point is not sent again.
  subscriber.skipThrough = pos;
  subscriber.outbox.dropWhile((event) => log.compare(event.pos, pos) <= 0);
  return undefined;
}

/**
 * Sends a stream's starting history, a page at a time at the socket's pace, then `herald.history`
 * with `until` as its id: the point the stream resumes from once it has the history.
 */
async function sendHistory(
  state: HubState,
  subscriber: Subscriber,
  history: InitialHistory,
  until: string,
): Promise<void> {
  const { events } = history;
  const pageSize = state.options.replayPageSize;
  for (let from = 0; from < events.length; from += pageSize) {
    const page = events.slice(from, from + pageSize);
    const frames = page.map((event) => frameFor(event, subscriber.permissions));
    subscriber.lastSentId = (page.at(-1) as (typeof page)[number]).id;
    state.counters.replayed += frames.length;
    subscriber.lastEventAt = Date.now();
    if (!subscriber.write([joinFrames(frames)], subscriber.lastEventAt)) await subscriber.waitForDrain();
    if (subscriber.isClosed) return;
  }
  const marker = encodeSystemEvent(HISTORY_EVENT, historyPayload(history, events.length), until);
  if (!subscriber.write([marker], Date.now())) await subscriber.waitForDrain();
}

/** Sends the log from `after` up to the subscriber's `replayUntil`, page by page, at the socket's pace. */
async function replay(state: HubState, subscriber: Subscriber, after: string | null): Promise<void> {
  const frames: Uint8Array[] = [];
  const until = () => subscriber.replayUntil;
  for await (const page of logPages(state.broker, after, until, state.options.replayPageSize)) {
    if (subscriber.isClosed) return;
    frames.length = 0;
    for (const event of page) {
      const wanted = wantsFromLog(subscriber, event);
      if (wanted !== true && (wanted === false || !(await wanted))) continue;
      if (subscriber.isClosed) return;
      frames.push(frameFor(event, subscriber.permissions));
      subscriber.lastSentId = event.id;
    }
    if (frames.length > 0) {
      state.counters.replayed += frames.length;
      subscriber.lastEventAt = Date.now();
      if (!subscriber.write([joinFrames(frames)], subscriber.lastEventAt)) await subscriber.waitForDrain();
      if (subscriber.isClosed) return;
    }
  }
}
