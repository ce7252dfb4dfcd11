import { FANOUT_COLUMNS } from '../columns.ts';
import {
  fanoutParams,
  measureFanout,
  rateLabel,
  SATURATED_BATCH,
  SATURATED_WINDOW,
} from '../fanout-measure.ts';
import type { PlanOptions, Scenario, ScenarioCase } from '../scenario.ts';

/**
 * S1, fan-out: N subscribers on one topic, one publisher, one server. Each event reaches every
 * subscriber; the figures are how many deliveries per second, how late, and at what server CPU cost.
 */

/**
 * Events per second of the fixed-rate case: 100 000 deliveries/s at 1 000 subscribers, which a
 * 2-core machine sustains. (1 000 events/s is a million deliveries/s, three times what such a
 * machine delivers saturated: the publisher falls behind and latency grows without bound.)
 */
export const DEFAULT_RATE = 100;
/**
 * Publishers of the saturated case with one event per request, each on its own connection: the
 * way the seeds publish (a call per event), from a few backend processes at once.
 */
export const PARALLEL_PUBLISHERS = 4;
/** The label of that case. */
export const PER_REQUEST_LABEL = `saturated, 1 event/request ×${PARALLEL_PUBLISHERS}`;

export const fanout: Scenario = {
  name: 'fanout',
  title: 'S1 fan-out: N subscribers on one topic',
  description:
    'N subscribers hold a stream of one topic; one publisher sends ~100-byte events over HTTP, either at ' +
    `a fixed rate or saturated (batches of ${SATURATED_BATCH}, at most ${SATURATED_WINDOW} events ahead of the ` +
    'slowest subscriber), and saturated with one event per request from ' +
    `${PARALLEL_PUBLISHERS} publishers at once (each on its own connection, the next request once the last ` +
    'is answered; order is checked per publisher). Latency runs from just before the publish request to the socket read that ' +
    'brought the event. A warmup precedes the measured window, which ends when the last event has ' +
    'reached every subscriber.',
  columns: FANOUT_COLUMNS,
  charts: [
    {
      title: 'S1 fan-out, saturated: deliveries per server CPU-second',
      key: 'deliveriesPerCpuSec',
      caseLabel: rateLabel(0),
      format: 'int',
      better: 'higher',
    },
    {
      title: `S1 fan-out, one event per request ×${PARALLEL_PUBLISHERS}: deliveries per server CPU-second`,
      key: 'deliveriesPerCpuSec',
      caseLabel: PER_REQUEST_LABEL,
      format: 'int',
      better: 'higher',
    },
  ],
  plan(options: PlanOptions): readonly ScenarioCase[] {
    const rates = options.rate !== undefined ? [options.rate] : [DEFAULT_RATE, 0];
    const cases: ScenarioCase[] = rates.map((rate) => {
      const params = fanoutParams(options, rate);
      return {
        label: rateLabel(rate),
        params: { ...params },
        server: {},
        run: (target, context) => measureFanout(target, params, context),
      };
    });
    if (rates.includes(0)) {
      const params = fanoutParams(options, 0, SATURATED_WINDOW, PARALLEL_PUBLISHERS);
      cases.push({
        label: PER_REQUEST_LABEL,
        params: { ...params },
        server: {},
        run: (target, context) => measureFanout(target, params, context),
      });
    }
    return cases;
  },
};
