import { HeraldError } from '../core/errors.ts';
import type { RouteEntry } from '../http/route-table.ts';
import { type HeraldMetrics, METRICS_CONTENT_TYPE } from './metrics.ts';

export interface MetricsRouteOptions {
  /** Served to anyone who can reach it; else to admin credentials only. */
  readonly public: boolean;
  /** The hub's metrics, made on the first scrape (prom-client loads then). */
  readonly metrics: () => HeraldMetrics;
}

/** `GET /metrics`: the Prometheus text format, for the hub's route table. */
export function metricsRoutes(options: MetricsRouteOptions): RouteEntry[] {
  return [
    {
      method: 'GET',
      path: '/metrics',
      async handle(context, request) {
        if (!options.public) {
          const principal = await context.authenticate(request, 'stats');
          if (!principal.admin) {
            throw new HeraldError(
              403,
              'admin-required',
              '/metrics needs admin credentials (a token with "admin": true), or a hub started with --metrics-public',
            );
          }
        }
        const body = await options.metrics().render();
        return {
          kind: 'response',
          status: 200,
          headers: { 'content-type': METRICS_CONTENT_TYPE, 'cache-control': 'no-store' },
          body,
        };
      },
    },
  ];
}
