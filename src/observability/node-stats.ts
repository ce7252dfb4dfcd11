import type { Hub, HubStats, TenantStats } from '../core/hub.ts';
import { OPEN_PRINCIPAL, type Principal } from '../core/principal.ts';

export interface HeraldStats extends HubStats {
  /** Which node answered: the figures are this node's, the history is the shared log's. */
  readonly node: string;
  /** Why the hub is not running as configured, e.g. `fallback-local`. */
  readonly degraded?: string;
  readonly uptimeMs: number;
  readonly timestamp: string;
}

/**
 * `/v1/stats` and `herald.stats()`: the hub's figures with this node's name and uptime, and the
 * figures of parts running beside the hub (bridges, the worker's number) under names of their own.
 */
export class NodeStats {
  private readonly hub: Hub;
  private readonly nodeId: string;
  /** Why the hub runs other than configured now: it may change (a broker outage ridden out). */
  private readonly degraded: () => string | undefined;
  private readonly startedAt = Date.now();
  private readonly sources = new Map<string, () => unknown>();

  constructor(hub: Hub, nodeId: string, degraded: () => string | undefined) {
    this.hub = hub;
    this.nodeId = nodeId;
    this.degraded = degraded;
  }

  /** Adds a part's figures to the admin view, under `name`. */
  add(name: string, source: () => unknown): void {
    this.sources.set(name, source);
  }

  /** Every figure for an admin (the default); a tenant's own figures for anyone else. */
  async of(principal: Principal = OPEN_PRINCIPAL): Promise<HeraldStats | TenantStats> {
    return principal.admin ? this.all() : this.hub.tenantStats(principal.tenant);
  }

  async all(): Promise<HeraldStats> {
    const degraded = this.degraded();
    return {
      node: this.nodeId,
      ...(degraded === undefined ? {} : { degraded }),
      ...(await this.hub.stats()),
      ...Object.fromEntries([...this.sources].map(([name, source]) => [name, source()])),
      uptimeMs: Date.now() - this.startedAt,
      timestamp: new Date().toISOString(),
    };
  }
}
