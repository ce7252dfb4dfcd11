import type { HubCounters, HubState } from './hub-state.ts';
import { type HistoryStats, historyOf } from './log.ts';

export interface HubStats {
  readonly broker: string;
  /** Where this node's feed is in the log, and how late it got the last event. */
  readonly feed: { readonly position: string; readonly lagMs: number };
  readonly connections: {
    readonly total: number;
    readonly byTenant: Record<string, number>;
    readonly byTopic: Record<string, number>;
  };
  readonly events: Readonly<HubCounters>;
  /**
   * Per tenant: open streams, and events published and delivered (live events written) on this
   * node since it started. Kept per publish call and per flush, not per event per recipient.
   */
  readonly tenants: Record<string, { streams: number; published: number; delivered: number }>;
  readonly outbox: { readonly queuedEvents: number; readonly queuedBytes: number };
  /** What the log retains; absent when the log cannot tell. */
  readonly history?: HistoryStats;
}

export interface TenantStats {
  readonly tenant: string;
  readonly connections: { readonly total: number; readonly byTopic: Record<string, number> };
}

/** This node's figures: its streams, what they hold, its counters, and what the log retains. */
export async function hubStats(state: HubState): Promise<HubStats> {
  const { byTenant, byTopic } = state.index.counts();
  let queuedEvents = 0;
  let queuedBytes = 0;
  for (const subscriber of state.subscribers.values()) {
    queuedEvents += subscriber.queuedEvents;
    queuedBytes += subscriber.queuedBytes;
  }
  // No prototype: a tenant may be named `__proto__`.
  const tenants: HubStats['tenants'] = Object.create(null);
  const of = (tenant: string) => {
    tenants[tenant] ??= { streams: 0, published: 0, delivered: 0 };
    return tenants[tenant];
  };
  for (const [tenant, totals] of state.tenantTotals) {
    const entry = of(tenant);
    entry.published = totals.published;
    entry.delivered = totals.delivered;
  }
  for (const subscriber of state.subscribers.values()) {
    if (subscriber.carrier) continue;
    const entry = of(subscriber.tenant);
    entry.streams++;
    entry.delivered += subscriber.delivered;
  }
  return {
    broker: state.broker.kind,
    feed: { position: state.cursor, lagMs: state.feedLagMs },
    connections: { total: state.subscribers.size - state.carriers, byTenant, byTopic },
    events: { ...state.counters, closed: { ...state.counters.closed } },
    tenants,
    outbox: { queuedEvents, queuedBytes },
    history: await historyOf(state.broker),
  };
}

/** What a tenant may know: its own streams, nothing of other tenants or of the shared log. */
export function tenantStats(state: HubState, tenant: string): TenantStats {
  const { byTenant, byTopic } = state.index.counts(tenant);
  return { tenant, connections: { total: byTenant[tenant] ?? 0, byTopic } };
}

/** Bytes written to every stream this node has served, the open ones included. */
export function bytesWritten(state: HubState): number {
  let bytes = state.bytesOfClosed;
  for (const subscriber of state.subscribers.values()) bytes += subscriber.bytesWritten;
  return bytes;
}
