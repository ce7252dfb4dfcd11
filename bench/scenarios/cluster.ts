import { BROKERS, type BrokerName } from '../brokers.ts';
import { DELIVERY_COLUMNS } from '../columns.ts';
import { fanoutParams, measureFanout, rateLabel, SATURATED_BATCH } from '../fanout-measure.ts';
import { NotRun, type PlanOptions, type Scenario, type ScenarioCase } from '../scenario.ts';

/**
 * S6, cluster: the fan-out of S1 across the nodes of one hub. The publisher sends to one node,
 * every subscriber holds its stream on another, so each event goes through the shared broker (Redis
 * Streams, NATS JetStream) before it reaches anyone; the memory broker, on one node, is the baseline.
 */

/** Nodes of the hub on a shared broker: one to publish to, one to subscribe on. */
const NODES = 2;
/** The brokers, in the order of the table. */
export const CLUSTER_BROKERS: readonly BrokerName[] = ['memory', 'redis', 'nats'];
/**
 * Events per second of the fixed-rate case: 400 000 deliveries/s at 1 000 subscribers. On this
 * 2-core machine, which also runs the broker, both nodes and the load generators, every broker
 * delivers about 800 events/s saturated (the subscribers' node is the limit, not the broker); at
 * 600/s all still deliver everything, at 800/s NATS drops streams and Redis lags seconds behind.
 * Half the ceiling leaves room for a noisy run. (1 000/s is past every broker's ceiling.)
 */
export const CLUSTER_RATE = 400;
/**
 * Saturated: events ahead of the slowest subscriber. Smaller than S1's: node A answers a publish
 * as soon as the broker has the event, without waiting for node B, so the window alone sets the
 * queue on node B (on one node, the publish request waits behind the deliveries, and ~70 events
 * are in flight whatever the window). Measured here: 100 gives the most deliveries/s on every
 * broker; 50 lets the pipeline run dry; 250–500 fill node B's socket buffers (1+ GB), whose
 * garbage collection then takes a quarter of its CPU and a fifth of its throughput.
 */
const CLUSTER_WINDOW = 100;

export const cluster: Scenario = {
  name: 'cluster',
  title: 'S6 cluster: N subscribers on one node, the publisher on another, per broker',
  description:
    `The fan-out of S1 across a hub of ${NODES} \`herald serve\` processes sharing a broker (the machine's ` +
    'Redis or NATS JetStream server, on a log of its own that is removed afterwards): the publisher sends ' +
    '~100-byte events to node A, the N subscribers hold their streams on node B, so every event crosses ' +
    'the broker. The memory broker, one node for both, is the baseline. Fixed rate ' +
    `(${CLUSTER_RATE} events/s by default: about half of what every broker delivers saturated here, ` +
    'and sustained by each with every event delivered) and saturated (batches of ' +
    `${SATURATED_BATCH}, at most ${CLUSTER_WINDOW} events ahead of the slowest subscriber). Latency, from ` +
    'just before the publish request to the socket read that brought the event, includes the trip ' +
    'through the broker. Herald CPU sums both nodes; Broker CPU is the redis-server or nats-server ' +
    'process, shared with anything else using it meanwhile.',
  columns: [
    { key: 'nodes', label: 'Nodes', format: 'int' },
    { key: 'subscribers', label: 'Subs', format: 'int' },
    { key: 'events', label: 'Events', format: 'int' },
    ...DELIVERY_COLUMNS,
    { key: 'serverCpuPct', label: 'Herald CPU', format: 'percent' },
    { key: 'brokerCpuPct', label: 'Broker CPU', format: 'percent' },
    { key: 'serverRssBytes', label: 'RSS MiB', format: 'mib' },
    { key: 'clientCpuPct', label: 'Load-gen CPU', format: 'percent' },
    { key: 'foreignCpuPct', label: 'Other CPU', format: 'percent' },
  ],
  plan(options: PlanOptions): readonly ScenarioCase[] {
    const rates = options.rate !== undefined ? [options.rate] : [CLUSTER_RATE, 0];
    const brokers = options.brokers ?? CLUSTER_BROKERS;
    // Fixed rate first, every broker side by side; then saturated.
    return rates.flatMap((rate) =>
      brokers.map((broker) => {
        const nodes = Math.min(NODES, BROKERS[broker].maxNodes);
        const params = fanoutParams(options, rate, CLUSTER_WINDOW);
        return {
          label: `${broker} ${rateLabel(rate)}`,
          params: { broker, nodes, ...params },
          server: { broker, nodes },
          run: (target, context) => {
            // The peers' single-process case is S1 already; here it would only repeat it.
            if (target.name !== 'herald')
              throw new NotRun('S6 compares Herald on its brokers (peers: see S1)');
            return measureFanout(target, params, context);
          },
        };
      }),
    );
  },
};
