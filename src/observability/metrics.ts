import { createRequire } from 'node:module';
import type { Metric, Registry } from 'prom-client';
import type { Hub, HubStats } from '../core/hub.ts';
import type { LatencyHistogram } from '../core/latency.ts';
import { outageOf } from '../core/log.ts';
import type { AuthFailures } from '../http/auth-failures.ts';

/**
 * `/metrics`: the hub's figures in the Prometheus text format, on a registry of this Herald's
 * own (several hubs may share a process, and the host app's default registry is not ours).
 *
 * Nothing here runs per event. The hub keeps plain counters and allocation-free histograms; each
 * metric reads them when scraped, from one snapshot per scrape.
 */

/** prom-client's `Registry.PROMETHEUS_CONTENT_TYPE`, without loading prom-client to read it. */
export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

type PromClient = typeof import('prom-client');
const require = createRequire(import.meta.url);
let promClient: PromClient | undefined;

/**
 * prom-client, loaded the first time a Herald's metrics are made (a scrape of `/metrics`, or
 * `metricsOf`): `import 'herald'` does not load it. Loaded with `require` so that `metricsOf`
 * stays synchronous (prom-client is a CommonJS package; bundlers follow `createRequire`).
 */
function loadPromClient(): PromClient {
  promClient ??= require('prom-client') as PromClient;
  return promClient;
}

/**
 * Tenants that get their own `tenant` label on `herald_connections`; the rest are summed as
 * `other`, so a deployment with 100 000 tenants still exports a bounded number of series.
 */
export const DEFAULT_TENANT_LABELS = 20;

export interface MetricsOptions {
  /** Default `DEFAULT_TENANT_LABELS`. */
  readonly tenantLabels?: number;
  /** Labels on every series, e.g. `{ worker: '2' }` when several processes share a port. */
  readonly labels?: Record<string, string>;
}

/** What the metrics read when scraped: a Herald has all of it. */
export interface MetricsSource {
  readonly hub: Hub;
  readonly nodeId: string;
  /** The HTTP API, for the requests it refused. */
  readonly http: { readonly authFailures: AuthFailures };
  /** The admission limits, for the checks they made on this node because the broker could not answer. */
  readonly limits?: { readonly fallbacks: number };
}

export class HeraldMetrics {
  readonly registry: Registry;
  private readonly herald: MetricsSource;
  private readonly tenantLabels: number;
  /** The figures of the scrape under way, shared by all its metrics: the broker is asked once. */
  private pending: Promise<HubStats> | undefined;

  constructor(herald: MetricsSource, options: MetricsOptions = {}) {
    this.herald = herald;
    this.registry = new (loadPromClient().Registry)();
    this.tenantLabels = options.tenantLabels ?? DEFAULT_TENANT_LABELS;
    if (options.labels !== undefined) this.registry.setDefaultLabels(options.labels);
    this.define();
  }

  /** The exposition text of every metric, as of now (the same as `registry.metrics()`). */
  render(): Promise<string> {
    return this.registry.metrics();
  }

  /**
   * Every metric of one scrape starts collecting in the same tick, so they share one `stats()`
   * call (one broker round trip); the next scrape makes its own.
   */
  private stats(): Promise<HubStats> {
    if (this.pending === undefined) {
      this.pending = this.herald.hub.stats();
      setImmediate(() => {
        this.pending = undefined;
      });
    }
    return this.pending;
  }

  private define(): void {
    const { Counter, Gauge } = loadPromClient();
    const registers = [this.registry];
    const hub = this.herald.hub;
    const metrics = this;
    const counter = (name: string, help: string, read: (stats: HubStats) => number) =>
      new Counter({
        name,
        help,
        registers,
        async collect() {
          const value = read(await metrics.stats());
          this.reset();
          this.inc(value);
        },
      });
    const gauge = (name: string, help: string, read: (stats: HubStats) => number) =>
      new Gauge({
        name,
        help,
        registers,
        async collect() {
          this.set(read(await metrics.stats()));
        },
      });

    new Gauge({
      name: 'herald_node_info',
      help: 'Always 1; labels say which node answered and on which broker',
      labelNames: ['node', 'broker'],
      registers,
      async collect() {
        const { broker } = await metrics.stats();
        this.reset();
        this.set({ node: metrics.herald.nodeId, broker }, 1);
      },
    });
    new Gauge({
      name: 'herald_connections',
      help: `Open streams by tenant: the ${this.tenantLabels} tenants with the most, the rest summed as "other"`,
      labelNames: ['tenant'],
      registers,
      async collect() {
        const counts = metrics.tenantCounts(await metrics.stats());
        this.reset();
        for (const [tenant, count] of counts) this.set({ tenant }, count);
      },
    });
    gauge('herald_connections_total', 'Open streams on this node', (s) => s.connections.total);
    counter('herald_connections_opened_total', 'Streams opened', (s) => s.events.opened);
    new Counter({
      name: 'herald_connections_closed_total',
      help: 'Streams closed, by reason: client, overflow, lifetime, idle, expired, shutdown, error',
      labelNames: ['reason'],
      registers,
      async collect() {
        const { closed } = (await metrics.stats()).events;
        this.reset();
        for (const [reason, count] of Object.entries(closed)) this.inc({ reason }, count);
      },
    });
    counter(
      'herald_events_published_total',
      'Events appended to the log by this node',
      (s) => s.events.published,
    );
    counter(
      'herald_events_delivered_total',
      'Live events written to streams, one per recipient',
      (s) => s.events.delivered,
    );
    counter(
      'herald_events_replayed_total',
      'Events sent from the log to resuming streams',
      (s) => s.events.replayed,
    );
    counter('herald_replays_total', 'Streams that resumed with a replay of the log', (s) => s.events.replays);
    counter(
      'herald_gaps_total',
      'herald.gap events sent (unknown or expired Last-Event-ID, overflow)',
      (s) => s.events.gaps,
    );
    counter(
      'herald_outbox_dropped_events_total',
      'Events dropped from full outboxes (drop-oldest)',
      (s) => s.events.droppedEvents,
    );
    counter(
      'herald_slow_consumer_disconnects_total',
      'Streams cut because their outbox overflowed (disconnect policy)',
      (s) => s.events.closed.overflow,
    );
    counter('herald_bytes_written_total', 'Bytes written to streams', () => hub.bytesWritten());
    new Counter({
      name: 'herald_auth_failures_total',
      help: 'Requests refused for their credential (401) or its rights (403), by problem code',
      labelNames: ['reason'],
      registers,
      collect() {
        this.reset();
        for (const [reason, count] of metrics.herald.http.authFailures.entries()) this.inc({ reason }, count);
      },
    });
    new Counter({
      name: 'herald_limits_fallback_total',
      help: 'Limit checks made on this node alone because the broker could not count across nodes in time',
      registers,
      collect() {
        this.reset();
        this.inc(metrics.herald.limits?.fallbacks ?? 0);
      },
    });
    gauge(
      'herald_feed_lag_seconds',
      "How late this node's broker feed delivered the last event after its acceptance",
      (s) => s.feed.lagMs / 1000,
    );
    gauge(
      'herald_outbox_queued_events',
      'Events waiting in outboxes for slow sockets',
      (s) => s.outbox.queuedEvents,
    );
    gauge(
      'herald_outbox_queued_bytes',
      'Bytes waiting in outboxes for slow sockets',
      (s) => s.outbox.queuedBytes,
    );
    gauge('herald_history_events', 'Events retained in the log for replay', (s) => s.history?.size ?? 0);
    // Only on a log that rides out broker outages (`--on-broker-down local`); read when scraped.
    const outage = outageOf(hub.broker);
    if (outage !== undefined) {
      new Gauge({
        name: 'herald_broker_state',
        help: '1 for the state this node is in: broker (on the broker), local (riding out an outage), rejoining',
        labelNames: ['state'],
        registers,
        collect() {
          const { state } = outage.outage();
          for (const each of ['broker', 'local', 'rejoining']) {
            this.set({ state: each }, each === state ? 1 : 0);
          }
        },
      });
      new Gauge({
        name: 'herald_outage_held_events',
        help: 'Events accepted while the broker was down and not yet handed to it (bound: --outage-buffer)',
        registers,
        collect() {
          this.set(outage.outage().held);
        },
      });
      new Counter({
        name: 'herald_outage_rejoined_events_total',
        help: 'Held events handed to the broker after an outage',
        registers,
        collect() {
          this.reset();
          this.inc(outage.outage().rejoined);
        },
      });
      new Counter({
        name: 'herald_outage_refused_total',
        help: 'Events refused (503 outage-buffer-full) because the outage buffer was full',
        registers,
        collect() {
          this.reset();
          this.inc(outage.outage().refused);
        },
      });
    }
    this.registry.registerMetric(
      histogram(
        'herald_broker_append_duration_seconds',
        'How long the broker took to append one publish call',
        hub.appendLatency,
      ),
    );
    this.registry.registerMetric(
      histogram(
        'herald_publish_to_write_seconds',
        "From an event's acceptance to the flush that first writes it to a stream, once per event",
        hub.writeLatency,
      ),
    );
  }

  /** Open streams per tenant: the `tenantLabels` tenants with the most, the rest summed as `other`. */
  private tenantCounts(stats: HubStats): [string, number][] {
    const entries = Object.entries(stats.connections.byTenant).sort((a, b) => b[1] - a[1]);
    const named = entries.slice(0, this.tenantLabels);
    const rest = entries.slice(this.tenantLabels).reduce((sum, [, count]) => sum + count, 0);
    return rest > 0 ? [...named, ['other', rest]] : named;
  }
}

/**
 * A histogram that prom-client formats but the hub fills: prom-client's own would have to be fed
 * on the hot path, this reads the hub's buckets when scraped. Milliseconds become seconds.
 */
function histogram(name: string, help: string, source: LatencyHistogram): Metric {
  const view = {
    name,
    help,
    type: 'histogram',
    aggregator: 'sum',
    async get() {
      const values: { metricName: string; labels: Record<string, string | number>; value: number }[] = [];
      let cumulative = 0;
      source.bounds.forEach((bound, i) => {
        cumulative += source.counts[i] as number;
        values.push({ metricName: `${name}_bucket`, labels: { le: bound / 1000 }, value: cumulative });
      });
      values.push({ metricName: `${name}_bucket`, labels: { le: '+Inf' }, value: source.count });
      values.push({ metricName: `${name}_sum`, labels: {}, value: source.sum / 1000 });
      values.push({ metricName: `${name}_count`, labels: {}, value: source.count });
      return { name, help, type: 'histogram', values, aggregator: 'sum' };
    },
    reset() {},
  };
  return view as unknown as Metric;
}

const cache = new WeakMap<MetricsSource, HeraldMetrics>();

/** The metrics of a Herald, made on first use with its `metrics` options. */
export function metricsOf(herald: MetricsSource, options?: MetricsOptions): HeraldMetrics {
  let metrics = cache.get(herald);
  if (metrics === undefined) {
    metrics = new HeraldMetrics(herald, options);
    cache.set(herald, metrics);
  }
  return metrics;
}
