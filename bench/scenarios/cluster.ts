import { BROKERS, type BrokerName } from '../brokers.ts';
import { measureSpread, type SpreadParams } from '../cluster-spread.ts';
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
/**
 * The check of the scaling model (docs/scaling.md, shape B: one recipient per event): nodes ×
 * `--workers` each, every subscriber on a topic of its own, spread over the nodes, one event per
 * publish request to the nodes in turn. 4 000 streams is 1 000 per worker; 1 000 events/s is
 * what S4's one-process case sustains at one event per request here with room to spare.
 */
export const SPREAD_WORKERS = 2;
export const SPREAD_SUBSCRIBERS = 4_000;
export const SPREAD_RATE = 1_000;
/**
 * The model's shape A at a small scale: the same streams on 4 topics of 1 000, each topic 10
 * events/s as in the model (40 events/s, 40 000 deliveries/s).
 */
const BROADCAST_TOPICS = 4;
const BROADCAST_RATE_PER_TOPIC = 10;

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
    { key: 'deliveriesPerCpuSec', label: 'Deliveries/CPU-s', format: 'int' },
    // The model's check only: per worker process, and the broker per event of the log.
    { key: 'fanInMicros', label: 'Fan-in µs/event', format: 'fixed1' },
    { key: 'kibPerStream', label: 'KiB/stream', format: 'fixed1' },
    { key: 'brokerCpuPct', label: 'Broker CPU', format: 'percent' },
    { key: 'brokerMicrosPerEvent', label: 'Broker µs/event', format: 'fixed1' },
    { key: 'serverRssBytes', label: 'RSS MiB', format: 'mib' },
    { key: 'clientCpuPct', label: 'Load-gen CPU', format: 'percent' },
    { key: 'foreignCpuPct', label: 'Other CPU', format: 'percent' },
  ],
  plan(options: PlanOptions): readonly ScenarioCase[] {
    const rates = options.rate !== undefined ? [options.rate] : [CLUSTER_RATE, 0];
    const brokers = options.brokers ?? CLUSTER_BROKERS;
    // Fixed rate first, every broker side by side; then saturated; then the model's check.
    const fanout = rates.flatMap((rate) =>
      brokers.map((broker): ScenarioCase => {
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
    return [
      ...fanout,
      ...brokers
        .filter((broker) => BROKERS[broker].maxNodes >= NODES)
        .flatMap((broker) => [spreadCase(broker, options, 'one'), spreadCase(broker, options, 'broadcast')]),
    ];
  },
};

/**
 * `redis 2×2 workers, 1 recipient/event`: the model's shape B on a hub of nodes with workers;
 * `broadcast`, its shape A at a small scale (`… 1000 recipients/event`).
 */
function spreadCase(broker: BrokerName, options: PlanOptions, shape: 'one' | 'broadcast'): ScenarioCase {
  const subscribers = options.subscribers ?? (options.quick ? 400 : SPREAD_SUBSCRIBERS);
  const topics = shape === 'one' ? subscribers : BROADCAST_TOPICS;
  const fixed = options.rate !== undefined && options.rate > 0 ? options.rate : undefined;
  const params: SpreadParams = {
    subscribers,
    topics,
    rate:
      fixed ??
      (shape === 'broadcast' ? topics * BROADCAST_RATE_PER_TOPIC : options.quick ? 200 : SPREAD_RATE),
    warmupS: options.warmupS ?? (options.quick ? 0.5 : 2),
    durationS: options.durationS ?? (options.quick ? 1.5 : 10),
    workers: SPREAD_WORKERS,
  };
  const recipients = subscribers / topics;
  return {
    label: `${broker} ${NODES}×${SPREAD_WORKERS} workers, ${recipients} recipient${recipients === 1 ? '' : 's'}/event`,
    params: { broker, nodes: NODES, ...params },
    server: { broker, nodes: NODES, workers: SPREAD_WORKERS },
    run: (target, context) => {
      if (target.name !== 'herald') throw new NotRun('S6 compares Herald on its brokers (peers: see S1)');
      return measureSpread(target, params, context);
    },
  };
}
