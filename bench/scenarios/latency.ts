import { FANOUT_COLUMNS } from '../columns.ts';
import { fanoutParams, measureFanout } from '../fanout-measure.ts';
import type { PlanOptions, Scenario, ScenarioCase } from '../scenario.ts';

/**
 * S2, latency: many subscribers (10 000) on one topic at a steady rate, well below every peer's
 * ceiling, so that what is measured is how long one event takes to reach them all, not a queue.
 */

export const LATENCY_SUBSCRIBERS = 10_000;
/**
 * Events per second: 50 000 deliveries/s at 10 000 subscribers, which already takes the seed-style
 * server and better-sse about half a core each on this 2-core machine (one `res.write` per
 * delivery); at 20 events/s they would need two cores, and each is one process, so what S2 measured
 * on them would be a growing queue, not the time to reach everyone.
 */
export const LATENCY_RATE = 5;

export const latency: Scenario = {
  name: 'latency',
  title: 'S2 latency: 10 000 subscribers on one topic, steady rate',
  description:
    `N subscribers (${LATENCY_SUBSCRIBERS.toLocaleString('en-US')} by default) hold a stream of one topic; ` +
    `one publisher sends one ~100-byte event per request at ${LATENCY_RATE} events/s, a rate every peer ` +
    'sustains, so each event leaves before the next arrives. Latency runs from just before the publish ' +
    'request to the socket read that brought the event (HDR histogram over every delivery of the window): ' +
    'p99 is how long the slowest 1 % of subscribers waits while the server writes one event to all of them.',
  columns: FANOUT_COLUMNS,
  charts: [{ title: 'S2 p99 latency at a steady rate, ms', key: 'p99Ms', format: 'ms', better: 'lower' }],
  plan(options: PlanOptions): readonly ScenarioCase[] {
    // Saturated is S1's business: a rate of 0 here still means the steady default.
    const rate = options.rate !== undefined && options.rate > 0 ? options.rate : LATENCY_RATE;
    const subscribers = options.subscribers ?? (options.quick ? 1_000 : LATENCY_SUBSCRIBERS);
    const params = fanoutParams({ ...options, subscribers }, rate);
    return [
      {
        label: `${rate}/s`,
        params: { ...params },
        server: {},
        run: (target, context) => measureFanout(target, params, context),
      },
    ];
  },
};
