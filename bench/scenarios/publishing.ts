import { DELIVERY_COLUMNS } from '../columns.ts';
import { fanoutParams, measureFanout, SATURATED_BATCH, SATURATED_WINDOW } from '../fanout-measure.ts';
import type { PhaseDone, PublisherIn, PublisherOut, PublishPhase } from '../messages.ts';
import { PAYLOAD_BYTES } from '../payload.ts';
import { cpuSeconds, kernelCpuSeconds, machineBusySeconds } from '../proc-stats.ts';
import { protocolNamed } from '../protocols.ts';
import {
  type CaseResult,
  NotRun,
  type PlanOptions,
  type RunContext,
  type Scenario,
  type ScenarioCase,
} from '../scenario.ts';
import type { RunningTarget } from '../targets.ts';
import { WorkerHandle } from '../worker-handle.ts';
import { PARALLEL_PUBLISHERS } from './fanout.ts';

/**
 * S8, publish throughput: how many events a server accepts per CPU-second, saturated, with one
 * event per request (`PARALLEL_PUBLISHERS` publishers at once) and in batches (one publisher),
 * with no subscriber (the publish path alone: HTTP, auth, JSON, validation, limits, the append)
 * and with one (plus the index lookup, the encoding and the write of each event).
 */

const PUBLISHER = new URL('../publisher-worker.ts', import.meta.url);
const TOPIC = 'bench/fanout';
/** Without a subscriber nothing holds the publisher back but the answers it waits for. */
const NO_WINDOW = Number.MAX_SAFE_INTEGER;
const FOREIGN_CPU_WARNING = 0.1;

interface PublishingParams {
  readonly subscribers: 0 | 1;
  /** Publishers at once, one event per request each; 1: one publisher, `batch` events per request. */
  readonly lanes: number;
  readonly batch: number;
  readonly durationS: number;
  readonly warmupS: number;
}

type Publisher = WorkerHandle<PublisherIn, PublisherOut>;

/** The publisher alone, saturated: events accepted, and the server's CPU for them. */
async function measureAlone(
  target: RunningTarget,
  params: PublishingParams,
  context: RunContext,
): Promise<CaseResult> {
  const problems: string[] = [];
  const warnings: string[] = [];
  const publisher: Publisher = new WorkerHandle(PUBLISHER, 'publisher worker');
  try {
    const phase = (firstSeq: number, seconds: number): PublishPhase => ({
      type: 'run',
      host: target.publishTo.host,
      port: target.publishTo.port,
      protocol: target.protocol,
      topic: TOPIC,
      firstSeq,
      rate: 0,
      durationMs: seconds * 1000,
      maxEvents: NO_WINDOW,
      batch: params.batch,
      window: NO_WINDOW,
      payloadBytes: PAYLOAD_BYTES,
      ...(params.lanes > 1 ? { lanes: params.lanes, single: true } : {}),
    });
    const publish = async (firstSeq: number, seconds: number, name: string): Promise<PhaseDone> => {
      publisher.send(phase(firstSeq, seconds));
      const done = await publisher.next('done', seconds * 1000 + 30_000);
      if (done.error !== undefined) problems.push(`${name}: publishing failed: ${done.error}`);
      return done;
    };
    context.log(`warmup, ${params.warmupS} s`);
    const warmup = await publish(1, params.warmupS, 'warmup');
    context.log(`measuring, ${params.durationS} s`);
    const cpuStart = cpuSeconds(target.pids);
    const kernelStart = kernelCpuSeconds(target.pids);
    const machineStart = machineBusySeconds();
    const measured = await publish(warmup.lastSeq + 1, params.durationS, 'measured window');
    const serverCpuS = cpuSeconds(target.pids) - cpuStart;
    const kernelCpuS = kernelCpuSeconds(target.pids) - kernelStart;
    const machineS = machineBusySeconds() - machineStart;
    const wallS = measured.elapsedMs / 1000;
    const events = measured.lastSeq - measured.firstSeq + 1;
    const publisherCpuS = measured.cpuMicros / 1e6;
    const foreignCpuS = Math.max(0, machineS - serverCpuS - publisherCpuS);
    if (foreignCpuS / wallS > FOREIGN_CPU_WARNING) {
      warnings.push(
        `other processes used ${Math.round((100 * foreignCpuS) / wallS)} % of a core during the window: ` +
          'the machine was not quiet, so throughput is pessimistic',
      );
    }
    const exit = target.exitReason();
    if (exit !== undefined) problems.push(`${exit}; its output:\n${target.output()}`);
    return {
      metrics: {
        subscribers: 0,
        events,
        publishRate: events / wallS,
        acceptedPerCpuSec: serverCpuS > 0 ? events / serverCpuS : null,
        kernelUsPerEvent: events > 0 ? (kernelCpuS * 1e6) / events : null,
        userUsPerEvent: events > 0 ? ((serverCpuS - kernelCpuS) * 1e6) / events : null,
        deliveredPct: null,
        serverCpuSeconds: serverCpuS,
        serverCpuPct: serverCpuS / wallS,
        publisherCpuPct: publisherCpuS / wallS,
        foreignCpuPct: foreignCpuS / wallS,
      },
      problems,
      warnings,
      details: { warmup, measured },
    };
  } finally {
    await publisher.stop({ type: 'quit' });
  }
}

async function measurePublishing(
  target: RunningTarget,
  params: PublishingParams,
  context: RunContext,
): Promise<CaseResult> {
  if (params.lanes === 1 && protocolNamed(target.protocol).maxBatch < params.batch) {
    throw new NotRun(`${target.name} takes one event per publish request`);
  }
  if (params.subscribers === 0) return measureAlone(target, params, context);
  // One subscriber: S1's measurement, every event checked on arrival; what is figured here is
  // per event accepted rather than per delivery (the same number).
  const fanout = fanoutParams(
    { quick: false, subscribers: 1, durationS: params.durationS, warmupS: params.warmupS, workers: 1 },
    0,
    SATURATED_WINDOW,
    params.lanes,
  );
  const result = await measureFanout(target, { ...fanout, batch: params.batch }, context);
  const { events, serverCpuSeconds } = result.metrics;
  return {
    ...result,
    metrics: {
      ...result.metrics,
      acceptedPerCpuSec:
        typeof events === 'number' && typeof serverCpuSeconds === 'number' && serverCpuSeconds > 0
          ? events / serverCpuSeconds
          : null,
    },
  };
}

const requestLabel = (lanes: number, batch: number) =>
  lanes > 1 ? `1 event/request ×${lanes}` : `batches of ${batch}`;

export const publishing: Scenario = {
  name: 'publish',
  title: 'S8 publish throughput: events accepted per server CPU-second',
  description:
    'One topic, saturated: publishers send ~100-byte events as fast as they are answered, one event per ' +
    `request from ${PARALLEL_PUBLISHERS} publishers at once (each on its own connection), or in batches of ` +
    `${SATURATED_BATCH} from one; with no subscriber (the publish path alone) and with one (every event also ` +
    `looked up, encoded and written; the publishers stay within ${SATURATED_WINDOW} events of it, and it must ` +
    'get every event once, in order). A peer that takes one event per request runs no batched case.',
  columns: [
    { key: 'subscribers', label: 'Subs', format: 'int' },
    { key: 'events', label: 'Events', format: 'int' },
    { key: 'publishRate', label: 'Accepted/s', format: 'int' },
    { key: 'acceptedPerCpuSec', label: 'Accepted/CPU-s', format: 'int' },
    // No subscriber only: the publish path's cost split into the kernel's and the server's own.
    { key: 'kernelUsPerEvent', label: 'Kernel µs/event', format: 'ms' },
    { key: 'userUsPerEvent', label: 'User µs/event', format: 'ms' },
    ...DELIVERY_COLUMNS,
    { key: 'serverCpuPct', label: 'Server CPU', format: 'percent' },
    { key: 'publisherCpuPct', label: 'Publisher CPU', format: 'percent' },
    { key: 'foreignCpuPct', label: 'Other CPU', format: 'percent' },
  ],
  charts: [
    {
      title: 'S8 publish throughput: events accepted per server CPU-second',
      key: 'acceptedPerCpuSec',
      format: 'int',
      better: 'higher',
    },
  ],
  plan(options: PlanOptions): readonly ScenarioCase[] {
    const durationS = options.durationS ?? (options.quick ? 1.5 : 10);
    const warmupS = options.warmupS ?? (options.quick ? 0.5 : 2);
    const cases: ScenarioCase[] = [];
    for (const [lanes, batch] of [
      [PARALLEL_PUBLISHERS, 1],
      [1, SATURATED_BATCH],
    ] as const) {
      for (const subscribers of [0, 1] as const) {
        const params: PublishingParams = { subscribers, lanes, batch, durationS, warmupS };
        cases.push({
          label: `${requestLabel(lanes, batch)}, ${subscribers === 0 ? 'no subscriber' : '1 subscriber'}`,
          params: { ...params },
          server: {},
          run: (target, context) => measurePublishing(target, params, context),
        });
      }
    }
    return cases;
  },
};
