import { badRequest } from './errors.ts';
import { checkTopic } from './event.ts';
import { compileUriTemplate, type UriTemplate } from './uri-template.ts';

/**
 * What a subscriber (or a grant) asks for: an exact topic, `*` for everything in the tenant, or
 * an RFC 6570 URI template such as `dealers/{dealerId}/scores`.
 */
export type Selector =
  | { readonly kind: 'exact'; readonly source: string }
  | { readonly kind: 'all'; readonly source: '*' }
  | { readonly kind: 'template'; readonly source: string; readonly matcher: CachedTemplate };

/** A compiled template with a bounded memo of the topics it was asked about. */
export class CachedTemplate {
  readonly template: UriTemplate;
  private readonly memo = new Map<string, boolean>();

  constructor(template: UriTemplate) {
    this.template = template;
  }

  test(topic: string): boolean {
    let hit = this.memo.get(topic);
    if (hit === undefined) {
      const { prefix, suffix } = this.template;
      // The literal ends rule out most topics with two string compares, before any regex runs.
      hit = topic.startsWith(prefix) && topic.endsWith(suffix) && this.template.test(topic);
      if (this.memo.size >= MEMO_LIMIT) this.memo.clear();
      this.memo.set(topic, hit);
    }
    return hit;
  }
}

const MEMO_LIMIT = 4096;
const COMPILED_LIMIT = 10_000;
// Compiled templates are shared by every subscriber that asks for the same one.
const compiled = new Map<string, Selector>();

export const ALL: Selector = { kind: 'all', source: '*' };

/**
 * Parses a selector. A selector without `{` is never parsed as a template: exact topics may
 * contain any other character.
 */
export function parseSelector(source: string): Selector {
  if (source === '*') return ALL;
  checkTopic(source);
  if (!source.includes('{')) return { kind: 'exact', source };
  let selector = compiled.get(source);
  if (selector === undefined) {
    selector = { kind: 'template', source, matcher: new CachedTemplate(compileUriTemplate(source)) };
    if (compiled.size >= COMPILED_LIMIT) compiled.clear();
    compiled.set(source, selector);
  }
  return selector;
}

export function parseSelectors(sources: readonly string[], limit: number, what = 'topic'): Selector[] {
  if (sources.length > limit) {
    throw badRequest('too-many-topics', `${sources.length} ${what} selectors given; the limit is ${limit}`);
  }
  return sources.map((source) => parseSelector(source));
}

export function selectorMatches(selector: Selector, topic: string): boolean {
  switch (selector.kind) {
    case 'exact':
      return selector.source === topic;
    case 'all':
      return true;
    case 'template':
      return selector.matcher.test(topic);
  }
}

/** True when some selector matches some topic. */
export function anyMatch(selectors: readonly Selector[], topics: readonly string[]): boolean {
  for (const selector of selectors) {
    for (const topic of topics) if (selectorMatches(selector, topic)) return true;
  }
  return false;
}
