import type { EventDraft, HeraldEvent } from '../core/event.ts';
import { type EventRecord, fromRecord, toEvent, toRecord } from '../core/protocol/fields.ts';

/**
 * How a draft is stored in an external log (a Redis stream entry, a JetStream message) and read
 * back: its record (`core/protocol/fields.ts`, short keys) as one JSON document, written once per
 * append. Every broker decodes into the same object shape, so the hub's hot path sees one hidden
 * class whatever the backend.
 */

export { toEvent };

export const encodeDraft = (draft: EventDraft): string => JSON.stringify(toRecord(draft));

/**
 * Where a publisher-chosen id is kept: in its tenant's namespace, so no tenant can take, move,
 * confirm or resume from another tenant's id. The tenant's length comes first, so no pair of
 * (tenant, id) can spell another pair's key.
 */
export function chosenIdKey(tenant: string, id: string): string {
  return `${tenant.length}:${tenant}:${id}`;
}

/** The event at `pos` of the log; its id is the publisher's when it chose one. */
export const decodeEvent = (text: string, pos: string): HeraldEvent =>
  toEvent(fromRecord(JSON.parse(text) as EventRecord), pos);
