import type { CachedTemplate, Selector } from './topics.ts';

/** What the index needs to know of a subscriber. */
export interface Indexed {
  readonly tenant: string;
  readonly selectors: readonly Selector[];
}

export interface TemplateEntry<S> {
  readonly matcher: CachedTemplate;
  readonly subscribers: Set<S>;
}

/**
 * Subscribers of one tenant by what they asked for. Exact topics are a map lookup; templates are
 * matched once per distinct topic and the result kept, so fan-out costs what the recipients cost,
 * not what the subscriber count costs. A topic is only matched against the templates whose
 * literal start it shares, so a new topic costs what its few candidates cost, not one test per
 * template (10 000 per-user templates would otherwise make every new topic a 10 000-regex scan).
 */
export class TenantIndex<S> {
  /**
   * A topic's only subscriber is kept as is, a Set only from the second on: topics of one
   * subscriber each (a user's own feed) are common, and a Set costs a few hundred bytes.
   */
  readonly exact = new Map<string, S | Set<S>>();
  readonly all = new Set<S>();
  readonly templates = new Map<string, TemplateEntry<S>>();
  /** Templates by their literal start up to its last `/` (`dealers/{id}` under `dealers/`). */
  private readonly byStem = new Map<string, TemplateEntry<S>[]>();
  private matches = new Map<string, TemplateEntry<S>[]>();
  /** Entries left without subscribers; kept so cached match lists stay valid, swept in bulk. */
  private vacant = 0;
  size = 0;

  templatesFor(topic: string): readonly TemplateEntry<S>[] {
    if (this.templates.size === 0) return NONE;
    let found = this.matches.get(topic);
    if (found === undefined) {
      found = [];
      this.collect(this.byStem.get(''), topic, found);
      for (let slash = topic.indexOf('/'); slash !== -1; slash = topic.indexOf('/', slash + 1)) {
        this.collect(this.byStem.get(topic.slice(0, slash + 1)), topic, found);
      }
      if (this.matches.size >= MATCH_CACHE_LIMIT) this.matches.clear();
      this.matches.set(topic, found);
    }
    return found;
  }

  private collect(
    candidates: readonly TemplateEntry<S>[] | undefined,
    topic: string,
    found: TemplateEntry<S>[],
  ): void {
    if (candidates === undefined) return;
    for (const entry of candidates) if (entry.matcher.test(topic)) found.push(entry);
  }

  add(selector: Selector, subscriber: S): void {
    switch (selector.kind) {
      case 'exact': {
        const present = this.exact.get(selector.source);
        if (present === undefined) this.exact.set(selector.source, subscriber);
        else if (present instanceof Set) present.add(subscriber);
        else if (present !== subscriber) this.exact.set(selector.source, new Set([present, subscriber]));
        return;
      }
      case 'all':
        this.all.add(subscriber);
        return;
      case 'template': {
        let entry = this.templates.get(selector.source);
        if (entry === undefined) {
          entry = { matcher: selector.matcher, subscribers: new Set() };
          this.templates.set(selector.source, entry);
          const stem = stemOf(entry.matcher);
          const siblings = this.byStem.get(stem);
          if (siblings === undefined) this.byStem.set(stem, [entry]);
          else siblings.push(entry);
          // A new template may match topics already cached.
          this.matches.clear();
        } else if (entry.subscribers.size === 0) this.vacant--;
        entry.subscribers.add(subscriber);
        return;
      }
    }
  }

  remove(selector: Selector, subscriber: S): void {
    switch (selector.kind) {
      case 'exact': {
        const present = this.exact.get(selector.source);
        if (present === subscriber) this.exact.delete(selector.source);
        else if (present instanceof Set && present.delete(subscriber) && present.size === 1) {
          for (const last of present) this.exact.set(selector.source, last);
        }
        return;
      }
      case 'all':
        this.all.delete(subscriber);
        return;
      case 'template': {
        const entry = this.templates.get(selector.source);
        if (entry?.subscribers.delete(subscriber) && entry.subscribers.size === 0) {
          this.vacant++;
          if (this.vacant > VACANT_SWEEP && this.vacant * 2 > this.templates.size) this.sweep();
        }
        return;
      }
    }
  }

  private sweep(): void {
    for (const [source, entry] of this.templates)
      if (entry.subscribers.size === 0) this.templates.delete(source);
    for (const [stem, entries] of this.byStem) {
      const kept = entries.filter((entry) => entry.subscribers.size > 0);
      if (kept.length === 0) this.byStem.delete(stem);
      else this.byStem.set(stem, kept);
    }
    this.vacant = 0;
    this.matches.clear();
  }
}

/** The template's literal start, cut after its last `/`: every topic it matches starts so. */
function stemOf(matcher: CachedTemplate): string {
  const { prefix } = matcher.template;
  return prefix.slice(0, prefix.lastIndexOf('/') + 1);
}

const NONE: readonly never[] = [];
// Above the distinct topics a busy tenant publishes to at once: cleared when full, and a
// cleared cache costs one candidate scan per topic again.
const MATCH_CACHE_LIMIT = 100_000;
const VACANT_SWEEP = 64;

/** Tenant → topic → subscribers. A tenant's bucket exists while it has subscribers. */
export class SubscriberIndex<S extends Indexed> {
  private readonly tenants = new Map<string, TenantIndex<S>>();

  get(tenant: string): TenantIndex<S> | undefined {
    return this.tenants.get(tenant);
  }

  add(subscriber: S): void {
    let bucket = this.tenants.get(subscriber.tenant);
    if (bucket === undefined) {
      bucket = new TenantIndex();
      this.tenants.set(subscriber.tenant, bucket);
    }
    for (const selector of subscriber.selectors) bucket.add(selector, subscriber);
    bucket.size++;
  }

  remove(subscriber: S): void {
    const bucket = this.tenants.get(subscriber.tenant);
    if (bucket === undefined) return;
    for (const selector of subscriber.selectors) bucket.remove(selector, subscriber);
    if (--bucket.size === 0) this.tenants.delete(subscriber.tenant);
  }

  /** Open subscriptions by tenant and by selector, for `/v1/stats`; of one tenant only if given. */
  counts(only?: string): { byTenant: Record<string, number>; byTopic: Record<string, number> } {
    const byTenant: Record<string, number> = {};
    const byTopic: Record<string, number> = {};
    const count = (selector: string, n: number) => {
      if (n > 0) byTopic[selector] = (byTopic[selector] ?? 0) + n;
    };
    for (const [tenant, bucket] of this.tenants) {
      if (only !== undefined && tenant !== only) continue;
      byTenant[tenant] = bucket.size;
      for (const [topic, members] of bucket.exact) count(topic, members instanceof Set ? members.size : 1);
      for (const [source, entry] of bucket.templates) count(source, entry.subscribers.size);
      count('*', bucket.all.size);
    }
    return { byTenant, byTopic };
  }
}
