import { badRequest } from '../core/errors.ts';
import { hasControlCharacter } from '../core/event.ts';
import { EventFilter } from '../core/filters.ts';

/**
 * The type and tag filters of a stream, read and checked alike whether they open it
 * (`?type=…&tag.<name>=…`) or change it (`POST /v1/subscriptions`), so that no filter a stream
 * can be given one way is refused the other. A refusal names the parameter it is about.
 */

/** As long as a published event's type or tag may be: a longer filter could never match. */
const MAX_TYPE_LENGTH = 128;
const MAX_TAG_LENGTH = 256;
/** Types of one stream, or values of one of its tags. */
export const MAX_FILTER_VALUES = 64;

/** The filter a stream's query asks for, `undefined` for none. */
export function queryFilter(query: URLSearchParams): EventFilter | undefined {
  const types = query.getAll('type');
  checkCount(types.length, 'type', 'invalid-type');
  for (const type of types) checkType(type, 'type filter');
  const tags = new Map<string, string[]>();
  for (const [name, value] of query) {
    if (!name.startsWith('tag.')) continue;
    const tag = name.slice(4);
    if (tag.length === 0) throw badRequest('invalid-tag', 'a tag filter needs a name: tag.<name>=<value>');
    checkTagName(tag, `tag filter ${JSON.stringify(name)}`);
    checkTagValue(value, name);
    const values = tags.get(tag) ?? [];
    values.push(value);
    checkCount(values.length, name, 'invalid-tag');
    tags.set(tag, values);
  }
  return EventFilter.of(types, tags);
}

/** The `types` (or `eventTypes`) of a change: a type or an array of them; `[]` is every type for `set`. */
export function bodyTypes(value: unknown, parameter: 'types' | 'eventTypes'): string[] {
  const types = typeof value === 'string' ? [value] : value;
  if (!Array.isArray(types) || !types.every((type) => typeof type === 'string')) {
    throw badRequest('invalid-type', `${parameter} must be an array of event types, e.g. ["ai-score"]`);
  }
  checkCount(types.length, parameter, 'invalid-type');
  types.forEach((type, i) => {
    checkType(type, `${parameter}[${i}]`);
  });
  return types;
}

/** The `tags` of a change: an object of a value or an array of values per tag name. */
export function bodyTags(value: unknown): Map<string, string[]> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw badRequest(
      'invalid-tag',
      'tags must be an object of values per tag name, e.g. {"dealerId": ["S1"]}',
    );
  }
  const tags = new Map<string, string[]>();
  for (const [name, given] of Object.entries(value)) {
    const where = `tags.${name}`;
    if (name.length === 0)
      throw badRequest('invalid-tag', 'tags: a tag filter needs a name, e.g. {"dealerId": "S1"}');
    checkTagName(name, where);
    const values = typeof given === 'string' ? [given] : given;
    if (!Array.isArray(values) || !values.every((v) => typeof v === 'string')) {
      throw badRequest(
        'invalid-tag',
        `${where} must be a string or an array of strings, not ${JSON.stringify(given)}`,
      );
    }
    checkCount(values.length, where, 'invalid-tag');
    for (const v of values) checkTagValue(v, where);
    tags.set(name, values);
  }
  return tags;
}

function checkType(type: string, where: string): void {
  if (type.length === 0 || type.length > MAX_TYPE_LENGTH || hasControlCharacter(type)) {
    throw badRequest(
      'invalid-type',
      `${where} ${JSON.stringify(type)} must be 1–${MAX_TYPE_LENGTH} characters, no control characters`,
    );
  }
  // Herald's own events reach every stream whatever its filter; naming one would select nothing.
  if (type.startsWith('herald.')) {
    throw badRequest(
      'invalid-type',
      `${where} ${JSON.stringify(type)}: the herald. types are Herald's own events, which a stream receives whatever its filter`,
    );
  }
}

function checkTagName(name: string, where: string): void {
  if (name.length > MAX_TAG_LENGTH) {
    throw badRequest('invalid-tag', `${where}: a tag name is at most ${MAX_TAG_LENGTH} characters`);
  }
}

function checkTagValue(value: string, where: string): void {
  if (value.length > MAX_TAG_LENGTH) {
    throw badRequest(
      'invalid-tag',
      `${where}: a tag value is at most ${MAX_TAG_LENGTH} characters; this one is ${value.length}`,
    );
  }
}

function checkCount(count: number, where: string, code: 'invalid-type' | 'invalid-tag'): void {
  if (count > MAX_FILTER_VALUES) {
    throw badRequest(code, `${where} has ${count} values; the limit is ${MAX_FILTER_VALUES}`);
  }
}
