import { TenantIndex } from './tenant-index.ts';
import type { MatchBudget, Selector } from './topics.ts';
import { nextTurn, turnBudget } from './topics.ts';

/** What the index needs to know of a subscriber. */
export interface Indexed {
  readonly tenant: string;
  readonly selectors: readonly Selector[];
}

/** Tenant → topic → subscribers. A tenant's bucket exists while it has subscribers. */
export class SubscriberIndex<S extends Indexed> {
  private readonly tenants = new Map<string, TenantIndex<S>>();

  get(tenant: string): TenantIndex<S> | undefined {
    return this.tenants.get(tenant);
  }

  /**
   * Matches every topic of an event against `tenant`'s templates within `budget` (see
   * `TenantIndex.prepare`): true when fanning the event out to that tenant is now only lookups.
   */
  prepare(tenant: string, topics: readonly string[], budget: MatchBudget): boolean {
    const bucket = this.tenants.get(tenant);
    if (bucket === undefined) return true;
    for (const topic of topics) if (!bucket.prepare(topic, budget)) return false;
    return true;
  }

  /**
   * `prepare` over as many turns of the event loop as it takes, each spending at most that turn's
   * matching time (`turnBudget`): undefined when the topics were ready at once (no need to wait),
   * else a promise that resolves once they are. For a publisher, so that it waits for what its
   * topics cost rather than every event dispatched after its own.
   */
  prepareInTurns(tenant: string, topics: readonly string[]): Promise<void> | undefined {
    if (this.prepare(tenant, topics, turnBudget())) return undefined;
    return (async () => {
      do await nextTurn();
      while (!this.prepare(tenant, topics, turnBudget()));
    })();
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
