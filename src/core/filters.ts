import type { EventDraft } from './event.ts';

/**
 * What a subscription narrows its topics down to: event types (`type=ai-score`) and tag values
 * (`tag.dealerId=STORE1`). Several types, or several values of one tag, are alternatives; different
 * tags must all match. An untyped event has the SSE default type `message`.
 */
export class EventFilter {
  private readonly types: ReadonlySet<string> | undefined;
  private readonly tags: ReadonlyArray<readonly [string, ReadonlySet<string>]> | undefined;

  constructor(types: readonly string[], tags: ReadonlyMap<string, readonly string[]>) {
    this.types = types.length > 0 ? new Set(types) : undefined;
    this.tags =
      tags.size > 0 ? [...tags].map(([name, values]) => [name, new Set(values)] as const) : undefined;
  }

  /** A filter that lets everything through is `undefined`, so the hot path skips it entirely. */
  static of(types: readonly string[], tags: ReadonlyMap<string, readonly string[]>): EventFilter | undefined {
    return types.length === 0 && tags.size === 0 ? undefined : new EventFilter(types, tags);
  }

  accepts(event: EventDraft): boolean {
    if (this.types !== undefined && !this.types.has(event.type ?? 'message')) return false;
    if (this.tags !== undefined) {
      const tags = event.tags;
      if (tags === undefined) return false;
      for (const [name, values] of this.tags) {
        const value = tags[name];
        if (value === undefined || !values.has(value)) return false;
      }
    }
    return true;
  }
}
