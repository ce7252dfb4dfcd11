import { badRequest } from './errors.ts';
import type { EventDraft } from './event.ts';

/**
 * What a subscription narrows its topics down to: event types (`type=ai-score`) and tag values
 * (`tag.dealerId=STORE1`). Several types, or several values of one tag, are alternatives; different
 * tags must all match. An untyped event has the SSE default type `message`.
 */
export class EventFilter {
  private readonly typeSet: ReadonlySet<string> | undefined;
  private readonly tagSets: ReadonlyArray<readonly [string, ReadonlySet<string>]> | undefined;

  constructor(types: readonly string[], tags: ReadonlyMap<string, readonly string[]>) {
    this.typeSet = types.length > 0 ? new Set(types) : undefined;
    this.tagSets =
      tags.size > 0 ? [...tags].map(([name, values]) => [name, new Set(values)] as const) : undefined;
  }

  /** A filter that lets everything through is `undefined`, so the hot path skips it entirely. */
  static of(types: readonly string[], tags: ReadonlyMap<string, readonly string[]>): EventFilter | undefined {
    return types.length === 0 && tags.size === 0 ? undefined : new EventFilter(types, tags);
  }

  /** The types it lets through; `undefined` for every type. */
  get types(): readonly string[] | undefined {
    return this.typeSet === undefined ? undefined : [...this.typeSet];
  }

  /** The values each constrained tag may take; a tag not named here may take any value. */
  get tags(): ReadonlyMap<string, readonly string[]> {
    return new Map((this.tagSets ?? []).map(([name, values]) => [name, [...values]]));
  }

  accepts(event: EventDraft): boolean {
    if (this.typeSet !== undefined && !this.typeSet.has(event.type ?? 'message')) return false;
    if (this.tagSets !== undefined) {
      const tags = event.tags;
      if (tags === undefined) return false;
      for (const [name, values] of this.tagSets) {
        const value = tags[name];
        if (value === undefined || !values.has(value)) return false;
      }
    }
    return true;
  }
}

export type FilterAction = 'subscribe' | 'unsubscribe' | 'set';

/**
 * The filter an open stream has after `action` (`POST /v1/subscriptions`), or `undefined` for
 * none. Types or tags left out stay as they are. `subscribe` widens what is already narrowed (a
 * stream of every type stays one); `unsubscribe` narrows, and is refused where it would have to
 * guess: from every type or value there is no list to take from, and an emptied list would read
 * as "every" although it was meant as "nothing"; `set` replaces, `[]` meaning every type and `{}`
 * no tag filter. Throws before anything is built, so a refusal changes nothing.
 */
export function changeFilter(
  current: EventFilter | undefined,
  action: FilterAction,
  types?: readonly string[],
  tags?: ReadonlyMap<string, readonly string[]>,
): EventFilter | undefined {
  if (types === undefined && tags === undefined) return current;
  const nextTypes = types === undefined ? current?.types : changedTypes(current?.types, action, types);
  const currentTags = current?.tags ?? new Map<string, readonly string[]>();
  const nextTags = tags === undefined ? currentTags : changedTags(currentTags, action, tags);
  return EventFilter.of(nextTypes ?? [], nextTags);
}

function changedTypes(
  current: readonly string[] | undefined,
  action: FilterAction,
  given: readonly string[],
): readonly string[] | undefined {
  if (action === 'set') return given.length === 0 ? undefined : [...new Set(given)];
  if (given.length === 0) {
    throw badRequest(
      'invalid-type',
      `types is empty: name the types to ${action}, or use action "set" with [] for every type`,
    );
  }
  if (action === 'subscribe') return current === undefined ? undefined : [...new Set([...current, ...given])];
  if (current === undefined) {
    throw badRequest(
      'invalid-type',
      'this stream receives every type; use action "set" with the types to keep',
    );
  }
  const removed = new Set(given);
  const kept = current.filter((type) => !removed.has(type));
  if (kept.length === 0) {
    throw badRequest(
      'invalid-type',
      `types: the change would remove the stream's last type (${current.join(', ')}); use action "set" with [] for every type, or close the stream`,
    );
  }
  return kept;
}

function changedTags(
  current: ReadonlyMap<string, readonly string[]>,
  action: FilterAction,
  given: ReadonlyMap<string, readonly string[]>,
): ReadonlyMap<string, readonly string[]> {
  for (const [name, values] of given) {
    if (values.length === 0) {
      throw badRequest(
        'invalid-tag',
        `tags.${name} is empty: give it at least one value${action === 'set' ? `, or leave "${name}" out for any value` : ''}`,
      );
    }
  }
  if (action === 'set') return new Map([...given].map(([name, values]) => [name, [...new Set(values)]]));
  if (given.size === 0) {
    throw badRequest(
      'invalid-tag',
      `tags is empty: name the tag values to ${action}, or use action "set" with {} for no tag filter`,
    );
  }
  const next = new Map(current);
  for (const [name, values] of given) {
    const now = current.get(name);
    if (action === 'subscribe') {
      // A tag the stream does not filter on already takes every value.
      if (now !== undefined) next.set(name, [...new Set([...now, ...values])]);
      continue;
    }
    if (now === undefined) {
      throw badRequest(
        'invalid-tag',
        `this stream receives every value of tag "${name}"; use action "set" with the tags to keep`,
      );
    }
    const removed = new Set(values);
    const kept = now.filter((value) => !removed.has(value));
    if (kept.length === 0) {
      throw badRequest(
        'invalid-tag',
        `tags.${name}: the change would remove the last value of tag "${name}" (${now.join(', ')}); use action "set" without "${name}" for any value, or close the stream`,
      );
    }
    next.set(name, kept);
  }
  return next;
}
