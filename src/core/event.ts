import { badRequest, formatBytes, HeraldError, type ProblemCodeOf } from './errors.ts';
import { EVENT_FIELDS, type EventDraft } from './protocol/fields.ts';

/**
 * A publish, checked field by field. The fields, their names and limits are in
 * `protocol/fields.ts`; the order of the checks here is the order in which a publish with several
 * mistakes learns of them.
 */

export type {
  EventDraft,
  HeraldEvent,
  Priority,
  PublishInput,
} from './protocol/fields.ts';

export interface EventLimits {
  /** Largest `data` after serialization, in UTF-8 bytes. */
  readonly maxDataBytes: number;
}

export const MAX_TOPIC_LENGTH = EVENT_FIELDS.topics.maxLength;
const MAX_TOPICS_PER_EVENT = EVENT_FIELDS.topics.maxEntries;
const MAX_TAGS = EVENT_FIELDS.tags.maxEntries;
const MAX_TAG_LENGTH = EVENT_FIELDS.tags.maxLength;
const MAX_REDACTIONS = EVENT_FIELDS.redact.maxEntries;

/** What a publish may name, in the order the `unknown-field` refusal lists them. */
const KNOWN_FIELDS: ReadonlySet<string> = new Set(
  Object.values(EVENT_FIELDS).flatMap((field) => ('input' in field ? [field.input] : [])),
);

// A CR or LF in a field that becomes an SSE line would let a publisher inject fields; NUL makes
// browsers ignore an id (WHATWG HTML §9.2.6). Other C0 controls have no business there either.
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const CONTROL = /[\u0000-\u001f\u007f]/;
export const hasControlCharacter = (text: string): boolean => CONTROL.test(text);
/** The shape of a log position on every broker; no chosen id may take it. */
const LOG_POSITION = /^\d+(-\d+)?$/;
/**
 * The ids of events a node accepted while its broker was down (`<base>~<node>~<seq>`, see
 * backends/failover/positions.ts): they are positions too, which any node resumes from, so no
 * chosen id may take their shape either.
 */
export const HELD_ID = /^(\d+(?:-\d+)?)?~([A-Za-z0-9_-]{1,64})~(\d{1,16})$/;

/**
 * Checks a publish request and turns it into a draft. Every rejection names the field and says
 * what would be accepted, because the person reading it is fixing a publisher.
 * `where` prefixes details in a batch ("event 3: ...").
 */
export function validateEvent(
  input: unknown,
  /** The caller's own tenant, used when the event names none. */
  tenant: string,
  limits: EventLimits,
  now: number,
  where = '',
): EventDraft {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw badRequest(
      'invalid-event',
      `${where}an event must be a JSON object with at least "topic" and "data"`,
    );
  }
  const fields = input as Record<string, unknown>;
  for (const name of Object.keys(fields)) {
    if (!KNOWN_FIELDS.has(name)) {
      throw badRequest(
        'unknown-field',
        `${where}unknown field "${name}"; an event may have ${[...KNOWN_FIELDS].map((f) => `"${f}"`).join(', ')}`,
      );
    }
  }

  const topics = validateTopics(fields.topic, where);
  const type = optionalText(fields.type, 'type', where);
  if (type?.startsWith('herald.')) {
    throw badRequest(
      'reserved-type',
      `${where}type "${type}" starts with "herald.", which is reserved for Herald's own events`,
    );
  }
  const id = optionalText(fields.id, 'id', where);
  // Every broker's positions are digits or digits-digits (memory `<epoch ms>-<seq>`, Redis
  // `<ms>-<seq>`, NATS `<seq>`). A chosen id of that shape would be ambiguous in `locate`, and on
  // the memory broker a later position could repeat it (a resume from it would re-send events).
  if (id !== undefined && (LOG_POSITION.test(id) || HELD_ID.test(id))) {
    throw badRequest(
      'invalid-id',
      `${where}id "${id}" looks like a log position (digits, digits-digits, or position~node~number, the ids of events held through a broker outage), which Herald uses for its own ids; choose another, e.g. a URN`,
    );
  }
  const key = optionalText(fields.key, 'key', where);
  // Whether the caller may choose another tenant than its own is the hub's decision, not ours.
  const chosenTenant = fields.tenant === '' ? '' : optionalText(fields.tenant, 'tenant', where);
  const data = serializeData(fields.data, limits, where);

  const draft: {
    -readonly [K in keyof EventDraft]: EventDraft[K];
  } = { topics, data, tenant: chosenTenant ?? tenant, priority: 'normal', time: now };
  if (type !== undefined) draft.type = type;
  if (id !== undefined) draft.id = id;
  if (key !== undefined) draft.key = key;
  if (fields.private !== undefined) {
    if (typeof fields.private !== 'boolean') {
      throw badRequest('invalid-private', `${where}"private" must be true or false`);
    }
    if (fields.private) draft.private = true;
  }
  if (fields.priority !== undefined) {
    if (fields.priority !== 'normal' && fields.priority !== 'high') {
      throw badRequest('invalid-priority', `${where}"priority" must be "normal" or "high"`);
    }
    draft.priority = fields.priority;
  }
  if (fields.retry !== undefined) {
    const retry = fields.retry;
    if (typeof retry !== 'number' || !Number.isSafeInteger(retry) || retry < 0) {
      throw badRequest('invalid-retry', `${where}"retry" must be a whole number of milliseconds, 0 or more`);
    }
    draft.retry = retry;
  }
  if (fields.tags !== undefined) draft.tags = validateTags(fields.tags, where);
  if (fields.redact !== undefined) draft.redact = validateRedact(fields.redact, fields.data, where);
  return draft;
}

function validateTopics(value: unknown, where: string): string[] {
  if (value === undefined || value === null) {
    throw badRequest(
      'topic-required',
      `${where}topic is required: give "topic" a string or an array of strings`,
    );
  }
  const list = typeof value === 'string' ? [value] : value;
  if (!Array.isArray(list) || list.length === 0) {
    throw badRequest(
      'topic-required',
      `${where}topic is required: give "topic" a string or an array of strings`,
    );
  }
  if (list.length > MAX_TOPICS_PER_EVENT) {
    throw badRequest(
      'too-many-topics',
      `${where}an event has ${list.length} topics; the limit is ${MAX_TOPICS_PER_EVENT}`,
    );
  }
  for (const topic of list) checkTopic(topic, where);
  return list as string[];
}

/** A topic as published: non-empty text without control characters, bounded in length. */
export function checkTopic(topic: unknown, where = ''): asserts topic is string {
  if (typeof topic !== 'string' || topic.length === 0) {
    throw badRequest('topic-required', `${where}a topic must be a non-empty string`);
  }
  if (topic.length > MAX_TOPIC_LENGTH) {
    throw badRequest(
      'topic-too-long',
      `${where}a topic is ${topic.length} characters long; the limit is ${MAX_TOPIC_LENGTH}`,
    );
  }
  if (CONTROL.test(topic)) {
    throw badRequest('invalid-topic', `${where}topic ${JSON.stringify(topic)} contains a control character`);
  }
  checkWellFormed(topic, 'a topic', 'invalid-topic', where);
}

/**
 * A lone surrogate has no UTF-8 form: on the wire it becomes U+FFFD, so a client would send back
 * another id than the one that was stored, and could never resume from it.
 */
function checkWellFormed(text: string, what: string, code: ProblemCodeOf<400>, where: string): void {
  if (!text.isWellFormed()) {
    throw badRequest(
      code,
      `${where}${what} contains a lone UTF-16 surrogate (half of a character), which has no UTF-8 form; send whole characters`,
    );
  }
}

/** The publish fields that are one line of text. */
type TextField = 'type' | 'id' | 'key' | 'tenant';

function optionalText(value: unknown, field: TextField, where: string): string | undefined {
  if (value === undefined) return undefined;
  const { invalid, maxLength: max } = EVENT_FIELDS[field];
  if (typeof value !== 'string' || value.length === 0) {
    throw badRequest(invalid, `${where}"${field}" must be a non-empty string`);
  }
  if (value.length > max) {
    throw badRequest(invalid, `${where}"${field}" is ${value.length} characters long; the limit is ${max}`);
  }
  if (CONTROL.test(value)) {
    throw badRequest(
      invalid,
      `${where}"${field}" contains a control character (CR, LF, NUL…); it would break the SSE framing`,
    );
  }
  checkWellFormed(value, `"${field}"`, invalid, where);
  return value;
}

function validateTags(value: unknown, where: string): Record<string, string> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw badRequest(
      'invalid-tags',
      `${where}"tags" must be an object of string values, e.g. {"dealerId": "S1"}`,
    );
  }
  const entries = Object.entries(value);
  if (entries.length > MAX_TAGS) {
    throw badRequest('invalid-tags', `${where}an event has ${entries.length} tags; the limit is ${MAX_TAGS}`);
  }
  const tags: Record<string, string> = {};
  for (const [name, tag] of entries) {
    if (typeof tag !== 'string') {
      throw badRequest('invalid-tags', `${where}tag "${name}" must be a string, not ${typeof tag}`);
    }
    if (name.length === 0 || name.length > MAX_TAG_LENGTH || tag.length > MAX_TAG_LENGTH) {
      throw badRequest(
        'invalid-tags',
        `${where}tag names must be 1–${MAX_TAG_LENGTH} characters and values at most ${MAX_TAG_LENGTH}`,
      );
    }
    tags[name] = tag;
  }
  return tags;
}

const POINTER = /^(\/([^~]|~[01])*)+$/;

/** `{"/customer/email": "pii:read"}`: which fields of `data` need which permission. */
function validateRedact(value: unknown, data: unknown, where: string): Record<string, string> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw badRequest(
      'invalid-redact',
      `${where}"redact" must map JSON Pointers to permissions, e.g. {"/customer/email": "pii:read"}`,
    );
  }
  if (typeof data !== 'object' || data === null) {
    throw badRequest('invalid-redact', `${where}"redact" needs "data" to be a JSON object or array`);
  }
  const entries = Object.entries(value);
  if (entries.length === 0 || entries.length > MAX_REDACTIONS) {
    throw badRequest('invalid-redact', `${where}"redact" must have 1 to ${MAX_REDACTIONS} entries`);
  }
  for (const [pointer, permission] of entries) {
    if (!POINTER.test(pointer)) {
      throw badRequest(
        'invalid-redact',
        `${where}${JSON.stringify(pointer)} is not a JSON Pointer to a field (RFC 6901: "/a/b", "~1" for "/", "~0" for "~")`,
      );
    }
    if (typeof permission !== 'string' || permission.length === 0 || hasControlCharacter(permission)) {
      throw badRequest('invalid-redact', `${where}the permission for ${pointer} must be a non-empty string`);
    }
  }
  return value as Record<string, string>;
}

/** Strings go on the wire as they are; anything else as JSON. */
function serializeData(value: unknown, limits: EventLimits, where: string): string {
  let text: string;
  if (typeof value === 'string') text = value;
  else if (value === undefined) text = '';
  else {
    try {
      text = JSON.stringify(value);
    } catch {
      throw badRequest('invalid-data', `${where}"data" cannot be serialized as JSON`);
    }
    if (text === undefined) throw badRequest('invalid-data', `${where}"data" cannot be serialized as JSON`);
  }
  // A string's UTF-16 length bounds its UTF-8 size from below and 3× from above: count only when near.
  if (text.length * 3 > limits.maxDataBytes) {
    const bytes = utf8Length(text);
    if (bytes > limits.maxDataBytes) {
      throw new HeraldError(
        413,
        'data-too-large',
        `${where}data is ${formatBytes(bytes)}; the limit is ${formatBytes(limits.maxDataBytes)}`,
      );
    }
  }
  return text;
}

export function utf8Length(text: string): number {
  let bytes = text.length;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code >= 0x80) {
      if (code < 0x800) bytes += 1;
      else if (code >= 0xd800 && code <= 0xdbff && i + 1 < text.length) {
        bytes += 2; // a surrogate pair: 4 bytes for 2 units
        i++;
      } else bytes += 2;
    }
  }
  return bytes;
}
