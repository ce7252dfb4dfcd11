import type { HeraldEvent } from '../../core/event.ts';
import type { LatestEvents } from '../../core/log.ts';
import { toEvent } from '../codec.ts';

/**
 * The latest event of each (tenant, canonical topic, key) of the memory log. One process appends
 * in log order, so the last write is always the newest event.
 *
 * `slots` is in update order (an update deletes and sets again), so the slot updated longest ago
 * is its first key: eviction past `maxKeys` is O(1), across tenants, as the bound is global.
 */
export class LatestSlots {
  private readonly maxKeys: number;
  /** `<tenant length>:<tenant><topic length>:<topic>:<key>` → the slot's event. */
  private readonly slots = new Map<string, HeraldEvent>();
  /** Each tenant's slot names, so that a tenant's read does not walk every tenant's. */
  private readonly byTenant = new Map<string, Set<string>>();

  constructor(maxKeys: number) {
    this.maxKeys = maxKeys;
  }

  keep(event: HeraldEvent): void {
    const key = event.key as string;
    const topic = event.topics[0] as string;
    const name = `${event.tenant.length}:${event.tenant}${topic.length}:${topic}:${key}`;
    // A copy without the shared frame caches, which would otherwise pin encoded bytes per slot.
    const stored = toEvent(event, event.pos);
    if (!this.slots.delete(name)) {
      const names = this.byTenant.get(event.tenant);
      if (names === undefined) this.byTenant.set(event.tenant, new Set([name]));
      else names.add(name);
    }
    this.slots.set(name, stored);
    if (this.slots.size > this.maxKeys) this.evictOldest();
  }

  latest(tenant: string, limit: number): LatestEvents {
    const names = this.byTenant.get(tenant);
    const events: HeraldEvent[] = [];
    if (names === undefined) return { events, complete: true };
    for (const name of names) {
      if (events.length >= limit) break;
      const event = this.slots.get(name);
      if (event !== undefined) events.push(event);
    }
    return { events, complete: names.size <= limit };
  }

  private evictOldest(): void {
    const [name, event] = this.slots.entries().next().value as [string, HeraldEvent];
    this.slots.delete(name);
    const names = this.byTenant.get(event.tenant);
    names?.delete(name);
    if (names?.size === 0) this.byTenant.delete(event.tenant);
  }
}
