import { encodeHistogram, summarizeLatency } from './histogram.ts';
import type { PhaseDone, PublisherIn, PublisherOut, PublishPhase } from './messages.ts';
import { nowMs, PAYLOAD_BYTES } from './payload.ts';
import { cpuSeconds, machineBusySeconds, rssBytes } from './proc-stats.ts';
import { type ProtocolName, protocolNamed } from './protocols.ts';
import type { CaseResult, PlanOptions, RunContext } from './scenario.ts';
import { SubscriberFleet } from './subscriber-fleet.ts';
import type { Endpoint, RunningTarget } from './targets.ts';
import { WorkerHandle } from './worker-handle.ts';

/**
 * One fan-out measurement, shared by the scenarios that differ only in how the target runs (S1 on
 * one node, S6 across nodes): N subscribers on one topic on the target's `subscribeTo` node, one
 * publisher sending to its `publishTo` node, at a fixed rate or saturated. Every event must reach
 * every subscriber; the figures are how many deliveries per second, how late, and at what CPU cost
 * (the target's processes, and its shared broker's apart).
 */

const PUBLISHER = new URL('./publisher-worker.ts', import.meta.url);
const TOPIC = 'bench/fanout';
/** Saturated: events per publish request. */
export const SATURATED_BATCH = 50;
/**
 * Saturated: events published but not yet received by every subscriber, at most. Kept under
 * Herald's default outbox (1 000 events), so a subscriber that falls behind is never cut off.
 */
export const SATURATED_WINDOW = 500;
/** Saturated: a bound on events, whatever the duration. */
const SATURATED_MAX_EVENTS = 5_000_000;
/**
 * Fixed rate: deliveries per second at least this share of the events published per second times
 * the subscribers, else the hub did not keep up (its latency is a growing queue). Below 1 since the
 * window runs to the last arrival, one latency past the last publish.
 */
const KEEP_PACE = 0.9;
/** How long the last events may take to reach everyone before the run counts them lost. */
const DRAIN_TIMEOUT_MS = 15_000;
/** CPU that other processes used during the window, as a share of one core, above which the figures are suspect. */
const FOREIGN_CPU_WARNING = 0.1;

export interface FanoutParams {
  readonly subscribers: number;
  /** Events per second; 0: saturated. */
  readonly rate: number;
  readonly durationS: number;
  readonly warmupS: number;
  readonly workers: number;
  readonly batch: number;
  readonly window: number;
  readonly payloadBytes: number;
  /**
   * Publishers at once, each one event per request on its own connection (`PublishPhase.lanes`);
   * 1: one publisher, in batches (`batch`).
   */
  readonly lanes: number;
}

/**
 * The parameters of one case at `rate` (0: saturated), from the command line's options and the
 * defaults; `window` replaces the saturated window.
 */
export function fanoutParams(
  options: PlanOptions,
  rate: number,
  window = SATURATED_WINDOW,
  lanes = 1,
): FanoutParams {
  const subscribers = options.subscribers ?? (options.quick ? 100 : 1_000);
  return {
    subscribers,
    rate,
    durationS: options.durationS ?? (options.quick ? 1.5 : 10),
    warmupS: options.warmupS ?? (options.quick ? 0.5 : 2),
    workers: options.workers ?? Math.min(4, Math.max(2, Math.ceil(subscribers / 500))),
    // Fixed rate: a request carries what is due (one event, unless the publisher fell behind).
    batch: lanes > 1 ? 1 : rate > 0 ? 1_000 : SATURATED_BATCH,
    window,
    payloadBytes: PAYLOAD_BYTES,
    lanes,
  };
}

/** `100/s`, or `saturated`. */
export const rateLabel = (rate: number): string => (rate > 0 ? `${rate}/s` : 'saturated');

type Publisher = WorkerHandle<PublisherIn, PublisherOut>;

export async function measureFanout(
  target: RunningTarget,
  params: FanoutParams,
  context: RunContext,
): Promise<CaseResult> {
  const problems: string[] = [];
  context.log(`opening ${params.subscribers} streams over ${params.workers} workers`);
  const opening = performance.now();
  const fleet = await SubscriberFleet.open(target, {
    topic: TOPIC,
    connections: params.subscribers,
    workers: params.workers,
    ...(params.lanes > 1 && { lanes: params.lanes }),
  });
  let publisher: Publisher | undefined;
  try {
    const openMs = performance.now() - opening;
    context.log(
      `${fleet.ready} streams ready in ${Math.round(openMs)} ms${fleet.failed ? `, ${fleet.failed} FAILED` : ''}`,
    );
    if (fleet.failed > 0) {
      problems.push(
        `${fleet.failed} of ${params.subscribers} streams failed to open: ${fleet.errors.join('; ')}`,
      );
    }
    if (fleet.ready === 0) throw new Error(`no stream opened: ${fleet.errors.join('; ')}`);

    const pub: Publisher = new WorkerHandle(PUBLISHER, 'publisher worker');
    publisher = pub;
    fleet.onProgress((minSeq) => {
      // Only saturated mode listens; a publisher that died is reported by its next phase.
      if (minSeq !== null && pub.running) pub.send({ type: 'delivered', minSeq });
    });
    const phase = (firstSeq: number, seconds: number): Omit<PublishPhase, 'type'> => ({
      host: target.publishTo.host,
      port: target.publishTo.port,
      protocol: target.protocol,
      topic: TOPIC,
      firstSeq,
      rate: params.rate,
      durationMs: seconds * 1000,
      maxEvents: params.rate > 0 ? Math.ceil(params.rate * seconds) : SATURATED_MAX_EVENTS,
      batch: params.batch,
      window: params.window,
      payloadBytes: params.payloadBytes,
      ...(params.lanes > 1 && { lanes: params.lanes, single: true }),
    });
    const publish = async (firstSeq: number, seconds: number, name: string): Promise<PhaseDone> => {
      pub.send({ type: 'run', ...phase(firstSeq, seconds) });
      const done = await pub.next('done', seconds * 1000 + 30_000);
      if (done.error !== undefined) problems.push(`${name}: publishing failed: ${done.error}`);
      const drained = await fleet.waitFor(done.lastSeq, DRAIN_TIMEOUT_MS);
      if (!drained) {
        problems.push(
          `${name}: not every stream had event ${done.lastSeq} ${DRAIN_TIMEOUT_MS / 1000} s after it was sent`,
        );
      }
      return done;
    };

    context.log(`warmup, ${params.warmupS} s`);
    const warmup = await publish(1, params.warmupS, 'warmup');
    const fromSeq = warmup.lastSeq + 1;
    await fleet.measure(fromSeq);

    context.log(
      `measuring, ${params.durationS} s, ${params.rate > 0 ? `${params.rate} events/s` : 'saturated'}`,
    );
    const openAtStart = fleet.open();
    const nodeCpuStart = target.pids.map((pid) => cpuSeconds([pid]));
    const brokerStart = cpuSeconds(target.brokerPids);
    const machineStart = machineBusySeconds();
    const start = nowMs();
    const measured = await publish(fromSeq, params.durationS, 'measured window');
    const end = nowMs();
    const nodeCpuEnd = target.pids.map((pid) => cpuSeconds([pid]));
    const brokerEnd = cpuSeconds(target.brokerPids);
    const machineEnd = machineBusySeconds();
    const rss = rssBytes(target.pids);
    const nodeRss = target.pids.map((pid) => rssBytes([pid]));

    const report = await fleet.report();
    const latency = summarizeLatency(report.histogram);
    const latencyHistogram = encodeHistogram(report.histogram);
    report.histogram.destroy();
    const serverStats = await Promise.all(target.nodes.map((node) => fetchStats(node, target.protocol)));

    const events = measured.lastSeq - fromSeq + 1;
    const expected = events * openAtStart;
    const windowMs = (report.lastArrival > 0 ? report.lastArrival : end) - start;
    const nodeCpuS = nodeCpuEnd.map((cpu, i) => cpu - (nodeCpuStart[i] ?? cpu));
    const serverCpuS = nodeCpuS.reduce((total, cpu) => total + cpu, 0);
    const brokerCpuS = brokerEnd - brokerStart;
    const publishRate = events / (measured.elapsedMs / 1000);
    const wallS = (end - start) / 1000;
    const clientCpuS = report.cpuMicros / 1e6;
    const publisherCpuS = measured.cpuMicros / 1e6;
    // Whatever else ran meanwhile: the machine's busy time minus the server's, the broker's and the load generators'.
    const foreignCpuS = Math.max(
      0,
      machineEnd - machineStart - serverCpuS - brokerCpuS - clientCpuS - publisherCpuS,
    );
    const warnings: string[] = [];
    if (foreignCpuS / wallS > FOREIGN_CPU_WARNING) {
      warnings.push(
        `other processes used ${Math.round((100 * foreignCpuS) / wallS)} % of a core during the window: ` +
          'the machine was not quiet, so latency and throughput are pessimistic',
      );
    }

    if (openAtStart < fleet.ready) problems.push(`${fleet.ready - openAtStart} streams closed during warmup`);
    if (report.delivered !== expected) {
      const lost = expected - report.delivered;
      problems.push(
        `DELIVERED ${report.delivered} OF ${expected} (${pct(report.delivered, expected)}): ` +
          `${lost > 0 ? `${lost} missing` : `${-lost} extra`}`,
      );
    }
    if (report.missing > 0) problems.push(`${report.missing} events skipped (gaps in seq) on some stream`);
    if (report.duplicates > 0) problems.push(`${report.duplicates} events duplicated or out of order`);
    if (report.closed > 0)
      problems.push(`${report.closed} streams closed during the run: ${report.errors.join('; ')}`);
    if (params.rate > 0 && publishRate < params.rate * 0.95) {
      problems.push(
        `the publisher fell behind: ${Math.round(publishRate)} of ${params.rate} events/s ` +
          `(at worst ${Math.round(measured.maxLagMs)} ms late)`,
      );
    }
    const deliveriesPerSec = windowMs > 0 ? report.delivered / (windowMs / 1000) : null;
    if (
      params.rate > 0 &&
      deliveriesPerSec !== null &&
      deliveriesPerSec < KEEP_PACE * publishRate * openAtStart
    ) {
      // The publisher kept its rate but the subscribers' node did not: what is measured is a queue.
      problems.push(
        `delivery fell behind: ${Math.round(deliveriesPerSec)} deliveries/s for ${Math.round(publishRate * openAtStart)} ` +
          `published (p50 ${Math.round(latency.p50Ms ?? 0)} ms): this rate is past what the hub sustains`,
      );
    }
    const exit = target.exitReason();
    if (exit !== undefined) problems.push(`${exit}; its output:\n${target.output()}`);
    if (report.negative > 0) {
      context.log(
        `note: ${report.negative} latencies below zero (clock skew between processes), counted as 0`,
      );
    }

    return {
      metrics: {
        broker: target.broker,
        nodes: target.nodes.length,
        subscribers: openAtStart,
        events,
        publishRate,
        expected,
        delivered: report.delivered,
        deliveredPct: expected === 0 ? null : report.delivered / expected,
        deliveriesPerSec,
        meanMs: latency.meanMs,
        p50Ms: latency.p50Ms,
        p90Ms: latency.p90Ms,
        p99Ms: latency.p99Ms,
        p999Ms: latency.p999Ms,
        maxMs: latency.maxMs,
        serverCpuSeconds: serverCpuS,
        deliveriesPerCpuSec: serverCpuS > 0 ? report.delivered / serverCpuS : null,
        serverCpuPct: serverCpuS / wallS,
        serverRssBytes: rss,
        brokerCpuSeconds: target.brokerPids.length > 0 ? brokerCpuS : null,
        brokerCpuPct: target.brokerPids.length > 0 ? brokerCpuS / wallS : null,
        clientCpuPct: clientCpuS / wallS,
        publisherCpuPct: publisherCpuS / wallS,
        foreignCpuPct: foreignCpuS / wallS,
        windowMs,
        openMs,
      },
      problems,
      warnings,
      details: {
        warmup,
        measured,
        subscribers: { ...report, histogram: undefined },
        /** Each node's CPU time over the window and resident memory at its end, in `target.nodes` order. */
        nodes: target.nodes.map((node, i) => ({
          ...node,
          cpuSeconds: nodeCpuS[i],
          rssBytes: nodeRss[i],
        })),
        latency,
        /** Every latency sample, µs: hdr-histogram-js `decodeFromCompressedBase64`. */
        latencyHistogram,
        serverStats,
      },
    };
  } finally {
    await Promise.all([publisher?.stop({ type: 'quit' }), fleet.stop()]);
  }
}

const pct = (part: number, whole: number) => `${((100 * part) / whole).toFixed(3)} %`;

/** A node's own counters, when its protocol has an endpoint for them. */
async function fetchStats(node: Endpoint, protocol: ProtocolName): Promise<unknown> {
  const path = protocolNamed(protocol).statsPath;
  if (path === undefined) return undefined;
  try {
    const response = await fetch(`http://${node.host}:${node.port}${path}`, {
      signal: AbortSignal.timeout(5_000),
    });
    return await response.json();
  } catch (error) {
    return { error: error instanceof Error ? error.message : String(error) };
  }
}
