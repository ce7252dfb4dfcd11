import type { HubState } from './hub-state.ts';
import { latestFor } from './latest.ts';
import type { HistoryPayload } from './protocol/system-events.ts';
import { type InitialHistory, rewindFor } from './rewind.ts';
import type { HistoryStart, Subscriber } from './subscriber.ts';

/**
 * The history `start` asks for, at or before `until`, the position `who` was registered at:
 * streams and first polls alike.
 */
export function historyFor(
  state: HubState,
  who: Subscriber,
  start: HistoryStart,
  until: string,
): Promise<InitialHistory> {
  return start.kind === 'latest'
    ? latestFor(state, who, until, state.options.snapshot.maxEvents)
    : rewindFor(state, who, until, start);
}

/** What `herald.history` (or a poll's `history`) says of `sent` events out of `history`. */
export function historyPayload(
  history: InitialHistory,
  sent: number,
  complete = history.complete,
): HistoryPayload {
  return { kind: history.kind, events: sent, complete };
}
