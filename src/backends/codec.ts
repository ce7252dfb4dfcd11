import type { EventDraft, HeraldEvent, Priority } from '../core/event.ts';

/**
 * How a draft is stored in an external log (a Redis stream entry, a JetStream message) and read
 * back: one JSON document with short keys, written once per append. Every broker decodes into the
 * same object shape, so the hub's hot path sees one hidden class whatever the backend.
 */

interface Stored {
  /** topics */ t: readonly string[];
  /** data */ d: string;
  /** tenant */ n: string;
  /** time */ m: number;
  /** type */ y?: string;
  /** private */ p?: true;
  /** tags */ g?: Readonly<Record<string, string>>;
  /** key */ k?: string;
  /** priority: present when high */ h?: true;
  /** retry */ r?: number;
  /** publisher-chosen id */ i?: string;
  /** redact */ x?: Readonly<Record<string, string>>;
}

export function encodeDraft(draft: EventDraft): string {
  const stored: Stored = { t: draft.topics, d: draft.data, n: draft.tenant, m: draft.time };
  if (draft.type !== undefined) stored.y = draft.type;
  if (draft.private) stored.p = true;
  if (draft.tags !== undefined) stored.g = draft.tags;
  if (draft.key !== undefined) stored.k = draft.key;
  if (draft.priority === 'high') stored.h = true;
  if (draft.retry !== undefined) stored.r = draft.retry;
  if (draft.id !== undefined) stored.i = draft.id;
  if (draft.redact !== undefined) stored.x = draft.redact;
  return JSON.stringify(stored);
}

/**
 * Where a publisher-chosen id is kept: in its tenant's namespace, so no tenant can take, move,
 * confirm or resume from another tenant's id. The tenant's length comes first, so no pair of
 * (tenant, id) can spell another pair's key.
 */
export function chosenIdKey(tenant: string, id: string): string {
  return `${tenant.length}:${tenant}:${id}`;
}

/** The event at `pos` of the log; its id is the publisher's when it chose one. */
export function decodeEvent(text: string, pos: string): HeraldEvent {
  const stored = JSON.parse(text) as Stored;
  return toEvent(
    {
      topics: stored.t,
      data: stored.d,
      tenant: stored.n,
      time: stored.m,
      type: stored.y,
      private: stored.p,
      tags: stored.g,
      key: stored.k,
      priority: (stored.h ? 'high' : 'normal') as Priority,
      retry: stored.r,
      id: stored.i,
      redact: stored.x,
    },
    pos,
  );
}

/** Every event gets the same fields in the same order, so the hot path sees one object shape. */
export function toEvent(draft: EventDraft, pos: string): HeraldEvent {
  return {
    id: draft.id ?? pos,
    pos,
    topics: draft.topics,
    type: draft.type,
    data: draft.data,
    tenant: draft.tenant,
    private: draft.private,
    tags: draft.tags,
    key: draft.key,
    priority: draft.priority,
    retry: draft.retry,
    redact: draft.redact,
    time: draft.time,
    frame: undefined,
    variants: undefined,
  };
}
