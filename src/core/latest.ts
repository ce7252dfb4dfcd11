import { badRequest } from './errors.ts';
import type { HeraldEvent } from './event.ts';
import type { HubState } from './hub-state.ts';
import { backwardReaderOf, latestKeeperOf } from './log.ts';
import { wantsFromLog } from './log-reader.ts';
import { ALL_TENANTS } from './principal.ts';
import type { InitialHistory } from './rewind.ts';
import type { Subscriber } from './subscriber.ts';

/**
 * The latest event of every key a subscriber matches and may see: the snapshot a stream or first
 * poll starts with (`snapshot=latest`) and what `GET /v1/latest` answers.
 */

/** One latest value as `GET /v1/latest` and `herald.latest()` give it. */
export interface LatestEvent {
  readonly id: string;
  /** `message` for an event published without a type. */
  readonly type: string;
  /** As on a stream: the published data as text, with what the caller may not see removed. */
  readonly data: string;
  /** The canonical topic: the slot is (tenant, topic, key). */
  readonly topic: string;
  readonly key: string;
  /** When the hub accepted the event, ISO 8601. */
  readonly time: string;
}

export interface LatestResult {
  /** Oldest first (log order). */
  readonly events: readonly LatestEvent[];
  /**
   * Where a stream opened with `lastEventId` set to this goes on from, with no gap and no
   * duplicate: a page rendered on the server hands off to the browser with it.
   */
  readonly lastEventId: string;
  /** False when a bound of the hub (`snapshot.maxEvents`, `snapshot.maxScan`) cut it short. */
  readonly complete: boolean;
}

export const latestDisabled = () =>
  badRequest(
    'latest-disabled',
    'this hub keeps no latest values (latest-max-keys is 0, or its log cannot keep them)',
  );

export const snapshotNeedsTenant = () =>
  badRequest('invalid-snapshot', 'a snapshot is per tenant; name one with tenant=');

/**
 * The latest event of each slot of `who`'s tenant that `who` wants (selectors, filter, grants),
 * as of `until`: a slot whose latest event is after `until` is left out, as that event is still to
 * reach `who` live (or by its replay), so each key ends at its latest value with no duplicate.
 * At most `limit`, the newest; oldest first.
 */
export async function latestFor(
  state: HubState,
  who: Subscriber,
  until: string,
  limit: number,
): Promise<InitialHistory> {
  const keeper = latestKeeperOf(state.broker);
  if (keeper === undefined) throw latestDisabled();
  if (who.tenant === ALL_TENANTS) throw snapshotNeedsTenant();
  const log = state.broker;
  const stored = await keeper.latest(who.tenant, state.options.snapshot.maxScan);
  if (who.isClosed) return { kind: 'snapshot', events: [], complete: true };
  const slots = new Map<string, HeraldEvent>();
  /** Slots whose latest event is after `until`: the live feed brings it. */
  const ahead = new Set<string>();
  for (const event of stored.events) {
    const slot = slotOf(event);
    if (log.compare(event.pos, until) > 0) ahead.add(slot);
    else slots.set(slot, event);
  }
  // A store written after the append (NATS) can lag the feed by an instant: an event this node
  // has dispatched may not be in its slot yet. The newest page of the log covers that instant.
  const reader = backwardReaderOf(log);
  if (reader !== undefined) {
    const recent = await reader.readBack(until, state.options.replayPageSize, false);
    if (who.isClosed) return { kind: 'snapshot', events: [], complete: true };
    for (const event of recent) {
      if (event.key === undefined || event.tenant !== who.tenant) continue;
      const slot = slotOf(event);
      if (ahead.has(slot)) continue;
      const held = slots.get(slot);
      if (held === undefined || log.compare(held.pos, event.pos) < 0) slots.set(slot, event);
    }
  }
  const wanted: HeraldEvent[] = [];
  for (const event of slots.values()) {
    const wants = wantsFromLog(who, event);
    if (wants === true || (wants !== false && (await wants))) wanted.push(event);
    if (who.isClosed) return { kind: 'snapshot', events: [], complete: true };
  }
  wanted.sort((a, b) => log.compare(a.pos, b.pos));
  const over = wanted.length - limit;
  // A copy each: frames encoded for this snapshot must not stay pinned to the store's events.
  const events = (over > 0 ? wanted.slice(over) : wanted).map(unframed);
  return { kind: 'snapshot', events, complete: stored.complete && over <= 0 };
}

function slotOf(event: HeraldEvent): string {
  const topic = event.topics[0] as string;
  return `${topic.length}:${topic}:${event.key}`;
}

function unframed(event: HeraldEvent): HeraldEvent {
  if (event.frame === undefined && event.variants === undefined) return { ...event };
  const { frame: _frame, variants: _variants, ...rest } = event;
  return rest;
}
