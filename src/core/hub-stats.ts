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
  return {
    broker: state.broker.kind,
    feed: { position: state.cursor, lagMs: state.feedLagMs },
    connections: { total: state.subscribers.size - state.carriers, byTenant, byTopic },
    events: { ...state.counters, closed: { ...state.counters.closed } },
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
