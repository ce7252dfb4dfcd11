import type { Hub } from '../core/hub.ts';
import { healthOf, type Log } from '../core/log.ts';
import { ALL_TENANTS } from '../core/principal.ts';
import { STATS_EVENT, STATS_TOPIC } from '../core/protocol/system-events.ts';
import type { HeraldStats } from '../observability/node-stats.ts';

// The notices' topic and type belong to the wire protocol (the page and clients read them too),
// and keep here the names this module first gave them.
export { STATS_EVENT as STATS_TYPE, STATS_TOPIC } from '../core/protocol/system-events.ts';

/**
 * One stats notice, the data of `herald.stats`: this node's `/v1/stats` (admin view), with rates
 * and the broker's health.
 */
export interface DashboardStats extends HeraldStats {
  /** Events per second over the last interval: accepted by this node, and written to its streams. */
  readonly rates: { readonly published: number; readonly delivered: number; readonly intervalMs: number };
  readonly health: { readonly ok: boolean; readonly detail?: string };
  /** Streams on this node watching these figures (dashboards open). */
  readonly watchers: number;
}

const DEFAULT_INTERVAL_MS = 1_000;

/** What the feed reads its figures from. */
export interface StatsFeedSources {
  readonly hub: Hub;
  readonly log: Log;
  /** This node's admin view of `/v1/stats`. */
  stats(): Promise<HeraldStats>;
  readonly onError: (error: unknown, context: string) => void;
}

/**
 * Sends this node's figures to the dashboards watching it, once per interval, without polling
 * and without the log: figures are per node and stale a second later, so they must not fill the
 * shared history or be replayed. While no one watches, a tick costs one map lookup.
 */
export class StatsFeed {
  private readonly sources: StatsFeedSources;
  private readonly intervalMs: number;
  private timer: ReturnType<typeof setInterval> | undefined;
  /** The counters at the previous tick, for the rates. */
  private last = { at: 0, published: 0, delivered: 0 };
  /** A tick whose snapshot is still being taken (a slow broker): the next one is skipped. */
  private busy = false;

  constructor(sources: StatsFeedSources, intervalMs = DEFAULT_INTERVAL_MS) {
    this.sources = sources;
    this.intervalMs = intervalMs;
  }

  start(): void {
    if (this.timer !== undefined) return;
    this.last = this.sample();
    this.timer = setInterval(this.tick, this.intervalMs);
    this.timer.unref?.();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private sample() {
    const { published, delivered } = this.sources.hub.counters;
    return { at: performance.now(), published, delivered };
  }

  private readonly tick = (): void => {
    const previous = this.last;
    const now = this.sample();
    this.last = now;
    const { hub, log } = this.sources;
    const watchers = hub.watchers(ALL_TENANTS, STATS_TOPIC);
    if (watchers === 0 || this.busy || hub.isClosing) return;
    const seconds = (now.at - previous.at) / 1000;
    const rates = {
      published: round((now.published - previous.published) / seconds),
      delivered: round((now.delivered - previous.delivered) / seconds),
      intervalMs: Math.round(now.at - previous.at),
    };
    this.busy = true;
    Promise.all([this.sources.stats(), healthOf(log)])
      .then(([stats, health]) => {
        const notice: DashboardStats = { ...stats, rates, health, watchers };
        hub.notify(ALL_TENANTS, STATS_TOPIC, STATS_EVENT, notice);
      })
      .catch((error: unknown) => this.sources.onError(error, 'taking the dashboard figures failed'))
      .finally(() => {
        this.busy = false;
      });
  };
}

const round = (value: number) => Math.round(value * 10) / 10;
