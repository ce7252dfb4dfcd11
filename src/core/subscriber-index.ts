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
 * not what the subscriber count costs.
 */
export class TenantIndex<S> {
  readonly exact = new Map<string, Set<S>>();
  readonly all = new Set<S>();
  readonly templates = new Map<string, TemplateEntry<S>>();
  private matches = new Map<string, TemplateEntry<S>[]>();
  /** Entries left without subscribers; kept so cached match lists stay valid, swept in bulk. */
  private vacant = 0;
  size = 0;

  templatesFor(topic: string): readonly TemplateEntry<S>[] {
    if (this.templates.size === 0) return NONE;
    let found = this.matches.get(topic);
    if (found === undefined) {
      found = [];
      for (const entry of this.templates.values()) if (entry.matcher.test(topic)) found.push(entry);
      if (this.matches.size >= MATCH_CACHE_LIMIT) this.matches.clear();
      this.matches.set(topic, found);
    }
    return found;
  }

  add(selector: Selector, subscriber: S): void {
    switch (selector.kind) {
      case 'exact': {
        let set = this.exact.get(selector.source);
        if (set === undefined) {
          set = new Set();
          this.exact.set(selector.source, set);
        }
        set.add(subscriber);
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
        const set = this.exact.get(selector.source);
        if (set?.delete(subscriber) && set.size === 0) this.exact.delete(selector.source);
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
    this.vacant = 0;
    this.matches.clear();
  }
}

const NONE: readonly never[] = [];
const MATCH_CACHE_LIMIT = 10_000;
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
      for (const [topic, set] of bucket.exact) count(topic, set.size);
      for (const [source, entry] of bucket.templates) count(source, entry.subscribers.size);
      count('*', bucket.all.size);
    }
    return { byTenant, byTopic };
  }
}
