import type { PollEvent } from './poll.ts';
import type { ProblemCode } from './problems.ts';

/**
 * The event's fields, defined once: for each, its name in a publish (`PublishInput`, the JSON of
 * `POST /v1/publish`) and on the event (`EventDraft`, `HeraldEvent`), its key in the broker record,
 * how a publish is checked, where a subscriber sees it (the SSE frame, the poll JSON), and which
 * other ways of publishing carry it (Mercure's form, the bridges, `herald publish`).
 *
 * Adding an event field touches:
 * - this file: its member in the types, its row in `EVENT_FIELDS` (which does not compile
 *   without one), and its line in each hand-written function under the table it appears in;
 * - src/core/event.ts, when publishers may set it: its check in `validateEvent`;
 * - docs/http-api.md: the field; a new refusal also gets its row in `problems.ts`.
 * Only where its row sends it: core/sse.ts (`sse`), protocol/poll.ts (`poll`),
 * mercure/publish.ts (`mercure`), bridges/map.ts (`bridge`), the `herald publish` options in
 * server/cli.ts and server/publish-command.ts (`cli`). test/core/fields.test.ts fails until the
 * table, the functions under it, the publish check and each of those agree; what the hub does with
 * the field is then the only other change.
 *
 * Functions on the hot path (every event appended, read back from Redis or NATS, or delivered)
 * are written out field by field instead of looping over the table: they build objects of one
 * shape, in one order, which a loop over a table would not guarantee the engine.
 *
 * Imports only types: the client bundle may import its types.
 */

export type Priority = 'normal' | 'high';

/**
 * An event the hub has accepted and validated, before a broker gives it a place in the log.
 * `data` is already text: a JSON publish is serialized once, at validation, and never again.
 */
export interface EventDraft {
  /** `topics[0]` is canonical; the others are alternates (a match on any of them delivers). */
  readonly topics: readonly string[];
  /** The SSE `event:` field; absent means the default `message`. */
  readonly type?: string;
  readonly data: string;
  readonly tenant: string;
  /** Only subscribers whose grants match one of the topics may see it. */
  readonly private?: boolean;
  readonly tags?: Readonly<Record<string, string>>;
  /** Latest-value slot: a newer event with the same key replaces this one while it is still queued. */
  readonly key?: string;
  readonly priority: Priority;
  /** Reconnection time hint (ms) sent with the event as the SSE `retry:` field. */
  readonly retry?: number;
  /** A publisher-chosen id; the broker maps it to the event's position in the log. */
  readonly id?: string;
  /**
   * The chosen id may already name an event in the history: it then names this newer one, and a
   * resume from it continues after this event (Mercure lets publishers repeat ids). Otherwise a
   * repeated id is refused.
   */
  readonly reuseId?: boolean;
  /** Fields of `data` (JSON Pointers) → the permission a subscriber needs to see them. */
  readonly redact?: Readonly<Record<string, string>>;
  /** Acceptance time, ms since the Unix epoch. */
  readonly time: number;
}

/** An event with its place in a log. */
export interface HeraldEvent extends EventDraft {
  /** What clients see and send back as `Last-Event-ID`. */
  readonly id: string;
  /** The broker's position of the event in its log; equal to `id` unless the publisher chose the id. */
  readonly pos: string;
  /** The encoded SSE frame, filled on first delivery and shared by every recipient and replay. */
  frame?: Uint8Array;
  /** With `redact`: the frame per visibility (a bit per permission held), each encoded once. */
  variants?: Map<number, Uint8Array>;
}

/** What a caller passes to `publish`: the JSON body of `POST /v1/publish`, or its in-process twin. */
export interface PublishInput {
  topic: string | readonly string[];
  data?: unknown;
  type?: string;
  id?: string;
  tags?: Readonly<Record<string, string>>;
  private?: boolean;
  key?: string;
  priority?: Priority;
  retry?: number;
  tenant?: string;
  redact?: Readonly<Record<string, string>>;
}

/**
 * A draft as a broker keeps it (a Redis stream entry, a JetStream message): short keys, since
 * every event of the history carries them.
 */
export interface EventRecord {
  t: readonly string[];
  d: string;
  n: string;
  m: number;
  y?: string;
  p?: true;
  g?: Readonly<Record<string, string>>;
  k?: string;
  /** Present only when high. */
  h?: true;
  r?: number;
  /** Only a publisher-chosen id: a broker's position is the entry's own. */
  i?: string;
  x?: Readonly<Record<string, string>>;
}

/** The SSE `event:` of an event published without a type. */
export const DEFAULT_TYPE = 'message';

export interface EventField {
  /** Its name in a publish; none when the hub sets it. */
  readonly input?: keyof PublishInput;
  /** Its key in the broker record; none when it is not kept. */
  readonly record?: keyof EventRecord;
  /** What a publish may give (docs/http-api.md says it at length). */
  readonly rule: string;
  /** The code a publish is refused with when the value is not of the kind `rule` says. */
  readonly invalid?: ProblemCode;
  /** Text, or each text of a list or map: at most this many characters. */
  readonly maxLength?: number;
  /** A list or map: at most this many entries. */
  readonly maxEntries?: number;
  /** Its field on the SSE frame. */
  readonly sse?: 'id' | 'event' | 'retry' | 'data';
  /** Its member in the poll JSON's events. */
  readonly poll?: keyof PollEvent;
  /** The field of Mercure's publish form that sets it. */
  readonly mercure?: string;
  /** What of a bridged message sets it: a mapping of the bridge spec, or the message itself. */
  readonly bridge?: 'topic' | 'tenant' | 'type' | 'id' | 'key' | 'message';
  /** The `herald publish` option that sets it, as commander names it. */
  readonly cli?: string;
}

/** Every field of an event but the per-process caches of its frames. */
export type EventFieldName = Exclude<keyof HeraldEvent, 'frame' | 'variants'>;

/**
 * The fields in the order a publish's fields are listed to a publisher (the `unknown-field`
 * refusal), then those the hub sets.
 */
export const EVENT_FIELDS = {
  topics: {
    input: 'topic',
    record: 't',
    rule: 'a topic, or a list of them (the first canonical), each non-empty and without control characters',
    invalid: 'topic-required',
    maxLength: 1024,
    maxEntries: 32,
    mercure: 'topic',
    bridge: 'topic',
    cli: 'topic',
  },
  data: {
    input: 'data',
    record: 'd',
    rule: 'a string, sent as it is, or any JSON, serialized; at most --max-data-size in UTF-8',
    invalid: 'invalid-data',
    sse: 'data',
    poll: 'data',
    mercure: 'data',
    bridge: 'message',
    cli: 'data',
  },
  type: {
    input: 'type',
    record: 'y',
    rule: 'text without control characters, not starting with "herald."',
    invalid: 'invalid-type',
    maxLength: 128,
    sse: 'event',
    poll: 'type',
    mercure: 'type',
    bridge: 'type',
    cli: 'type',
  },
  id: {
    input: 'id',
    // The chosen id only: without one, the event's id is its position.
    record: 'i',
    rule: 'text without control characters, not shaped like a log position (digits, or digits-digits)',
    invalid: 'invalid-id',
    maxLength: 256,
    sse: 'id',
    poll: 'id',
    mercure: 'id',
    bridge: 'id',
    cli: 'id',
  },
  tags: {
    input: 'tags',
    record: 'g',
    rule: 'an object of string values, names not empty',
    invalid: 'invalid-tags',
    maxLength: 256,
    maxEntries: 32,
    cli: 'tag',
  },
  private: {
    input: 'private',
    record: 'p',
    rule: 'true or false',
    invalid: 'invalid-private',
    mercure: 'private',
    cli: 'private',
  },
  key: {
    input: 'key',
    record: 'k',
    rule: 'text without control characters',
    invalid: 'invalid-key',
    maxLength: 256,
    bridge: 'key',
    cli: 'key',
  },
  priority: {
    input: 'priority',
    record: 'h',
    rule: '"normal" (the default) or "high"',
    invalid: 'invalid-priority',
    cli: 'priority',
  },
  retry: {
    input: 'retry',
    record: 'r',
    rule: 'a whole number of milliseconds, 0 or more',
    invalid: 'invalid-retry',
    sse: 'retry',
    poll: 'retry',
    mercure: 'retry',
  },
  tenant: {
    input: 'tenant',
    record: 'n',
    rule: "text without control characters, or empty for the default tenant; the caller's own when absent",
    invalid: 'invalid-tenant',
    maxLength: 256,
    bridge: 'tenant',
  },
  redact: {
    input: 'redact',
    record: 'x',
    rule: 'JSON Pointers into JSON data → the permission needed to see that part (of the frame and the poll JSON)',
    invalid: 'invalid-redact',
    maxEntries: 32,
  },
  time: { record: 'm', rule: 'set by the hub: acceptance time, ms since the Unix epoch' },
  pos: { rule: "set by the broker: the event's position in its log, the record's own id there" },
  reuseId: { rule: "set by the hub for Mercure's publishes: an instruction to the append, not kept" },
} as const satisfies { readonly [K in EventFieldName]: EventField };

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

/** The record a broker keeps for a draft: only the fields that are set. */
export function toRecord(draft: EventDraft): EventRecord {
  const record: EventRecord = { t: draft.topics, d: draft.data, n: draft.tenant, m: draft.time };
  if (draft.type !== undefined) record.y = draft.type;
  if (draft.private) record.p = true;
  if (draft.tags !== undefined) record.g = draft.tags;
  if (draft.key !== undefined) record.k = draft.key;
  if (draft.priority === 'high') record.h = true;
  if (draft.retry !== undefined) record.r = draft.retry;
  if (draft.id !== undefined) record.i = draft.id;
  if (draft.redact !== undefined) record.x = draft.redact;
  return record;
}

/** The draft a record was made from. */
export function fromRecord(record: EventRecord): EventDraft {
  return {
    topics: record.t,
    data: record.d,
    tenant: record.n,
    time: record.m,
    type: record.y,
    private: record.p,
    tags: record.g,
    key: record.k,
    priority: record.h ? 'high' : 'normal',
    retry: record.r,
    id: record.i,
    redact: record.x,
  };
}

/** An event in the poll JSON; `data` is what the subscriber may see of it. */
export function pollEvent(event: HeraldEvent, data: string): PollEvent {
  const polled: { -readonly [K in keyof PollEvent]: PollEvent[K] } = {
    id: event.id,
    type: event.type ?? DEFAULT_TYPE,
    data,
  };
  if (event.retry !== undefined) polled.retry = event.retry;
  return polled;
}
