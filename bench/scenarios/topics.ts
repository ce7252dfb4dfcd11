import { readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DELIVERY_COLUMNS } from '../columns.ts';
import { encodeHistogram, summarizeLatency } from '../histogram.ts';
import type { PhaseDone, PublisherIn, PublisherOut, PublishPhase } from '../messages.ts';
import { nowMs, PAYLOAD_BYTES } from '../payload.ts';
import { cpuSeconds, kernelCpuSeconds, runQueueWaitSeconds } from '../proc-stats.ts';
import { protocolNamed } from '../protocols.ts';
import type { CaseResult, PlanOptions, RunContext, Scenario, ScenarioCase } from '../scenario.ts';
import { SubscriberFleet } from '../subscriber-fleet.ts';
import type { RunningTarget } from '../targets.ts';
import { WorkerHandle } from '../worker-handle.ts';

/**
 * S4, many topics: each subscriber on a topic of its own, events spread evenly over the topics,
 * so each reaches one subscriber. What is measured is how the server finds the recipients of an
 * event among many subscriptions (its index), not how fast it writes to one socket.
 *
 * Half the streams select their topic with a URI template, `bench/t/<i>/{leaf}`: a template with a
 * literal prefix unique to it, whose one variable (simple expansion, which cannot span a `/`) matches
 * the last segment, and only `bench/t/<i>/e` is ever published under that prefix, so each stream
 * still receives exactly its own topic's events, while the server must treat half its subscriptions
 * as patterns. (A template such as `bench/t/{i}/e` would match every topic.)
 */

const PUBLISHER = new URL('../publisher-worker.ts', import.meta.url);
export const TOPICS_SUBSCRIBERS = 10_000;
/** Events per second over all topics: one round (an event to every topic) per second. */
export const TOPICS_RATE = 10_000;
const WORKERS = 4;
const DRAIN_TIMEOUT_MS = 15_000;
/** The publisher stops at its event count; the deadline is only a bound. */
const PHASE_SLACK_MS = 5_000;

const topicOf = (i: number) => `bench/t/${i}/e`;
const templateOf = (i: number) => `bench/t/${i}/{leaf}`;

interface TopicsParams {
  readonly subscribers: number;
  readonly rate: number;
  /** Rounds published before the measured ones. */
  readonly warmupRounds: number;
  readonly rounds: number;
  /** `single`: one event per request, `PARALLEL` at once, even to a peer that takes batches. */
  readonly requests: 'batches' | 'single';
}

/** Single-event requests in flight at once (`PublishPhase.parallel`). */
const PARALLEL = 16;

type Publisher = WorkerHandle<PublisherIn, PublisherOut>;

/** The GC pauses `gc-monitor.ts` wrote between `from` and `to` (ms since the epoch), or null without a file. */
function gcPauses(
  file: string,
  from: number,
  to: number,
): { count: number; totalMs: number; maxMs: number } | null {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return null; // a peer that is not Herald: no monitor
  }
  let count = 0;
  let totalMs = 0;
  let maxMs = 0;
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const { t, ms } = JSON.parse(line) as { t: number; ms: number };
    if (t < from || t > to) continue;
    count++;
    totalMs += ms;
    maxMs = Math.max(maxMs, ms);
  }
  return { count, totalMs, maxMs };
}

async function measureTopics(
  target: RunningTarget,
  params: TopicsParams,
  context: RunContext,
  gcFile: string,
): Promise<CaseResult> {
  const problems: string[] = [];
  const warnings: string[] = [];
  const protocol = protocolNamed(target.protocol);
  const n = params.subscribers;
  const topics = Array.from({ length: n }, (_, i) => topicOf(i));
  const selectors = topics.map((topic, i) =>
    protocol.templates === true && i % 2 === 1 ? templateOf(i) : topic,
  );
  const templates = protocol.templates === true ? Math.floor(n / 2) : 0;
  const selectorText =
    templates > 0
      ? `${(n - templates).toLocaleString('en-US')} exact + ${templates.toLocaleString('en-US')} template`
      : `${n.toLocaleString('en-US')} exact (no templates)`;
  context.log(`opening ${n} streams, ${selectorText}, over ${WORKERS} workers`);
  const fleet = await SubscriberFleet.open(target, {
    topic: '',
    topics: selectors,
    connections: n,
    workers: WORKERS,
  });
  let publisher: Publisher | undefined;
  try {
    if (fleet.failed > 0)
      problems.push(`${fleet.failed} of ${n} streams failed to open: ${fleet.errors.join('; ')}`);
    if (fleet.ready === 0) throw new Error(`no stream opened: ${fleet.errors.join('; ')}`);
    const pub: Publisher = new WorkerHandle(PUBLISHER, 'publisher worker');
    publisher = pub;
    // Event g goes to topic (g - 1) % n as that topic's event floor((g - 1) / n) + 1: its round.
    const publish = async (firstSeq: number, rounds: number, name: string): Promise<PhaseDone> => {
      const events = rounds * n;
      const phase: PublishPhase = {
        type: 'run',
        host: target.publishTo.host,
        port: target.publishTo.port,
        protocol: target.protocol,
        topic: '',
        topics,
        firstSeq,
        rate: params.rate,
        durationMs: (events / params.rate) * 1000 + PHASE_SLACK_MS,
        maxEvents: events,
        batch: 1_000,
        window: 0,
        payloadBytes: PAYLOAD_BYTES,
        parallel: PARALLEL,
        ...(params.requests === 'single' && { single: true }),
      };
      pub.send(phase);
      const done = await pub.next('done', phase.durationMs + 30_000);
      if (done.error !== undefined) problems.push(`${name}: publishing failed: ${done.error}`);
      // The last round every topic got an event of (all of them, unless the publisher fell behind).
      const round = Math.floor(done.lastSeq / n);
      const drained = await fleet.waitFor(round, DRAIN_TIMEOUT_MS);
      if (!drained) {
        problems.push(
          `${name}: not every stream had its round ${round} event ${DRAIN_TIMEOUT_MS / 1000} s after`,
        );
      }
      return done;
    };

    context.log(`warmup, ${params.warmupRounds} rounds`);
    const warmup = await publish(1, params.warmupRounds, 'warmup');
    // Whole rounds, unless the publisher fell behind: then the window goes on from where it stopped
    // (a skipped event would read as lost) and counts from the round of its first event.
    const fromSeq = warmup.lastSeq + 1;
    await fleet.measure(Math.floor((fromSeq - 1) / n) + 1);
    context.log(`measuring, ${params.rounds} rounds at ${params.rate} events/s`);
    const openAtStart = fleet.open();
    const cpuStart = cpuSeconds(target.pids);
    const kernelStart = kernelCpuSeconds(target.pids);
    const waitStart = runQueueWaitSeconds(target.pids);
    const startWall = Date.now();
    const start = nowMs();
    const measured = await publish(fromSeq, params.rounds, 'measured window');
    const end = nowMs();
    const serverCpuS = cpuSeconds(target.pids) - cpuStart;
    const kernelCpuS = kernelCpuSeconds(target.pids) - kernelStart;
    const waitS = runQueueWaitSeconds(target.pids) - waitStart;
    const gc = gcPauses(gcFile, startWall, Date.now());
    const report = await fleet.report();
    const latency = summarizeLatency(report.histogram);
    const latencyHistogram = encodeHistogram(report.histogram);
    report.histogram.destroy();

    const events = measured.lastSeq - measured.firstSeq + 1;
    // Each event has one subscriber: its topic's, if that stream is still open.
    // A warmup cut short leaves its last events queued, to arrive in the window and count there:
    // then only gaps and duplicates say whether anything was lost.
    const warmupDone = warmup.lastSeq === params.warmupRounds * n;
    if (!warmupDone) {
      problems.push(
        `the warmup published ${warmup.lastSeq} of ${params.warmupRounds * n} events in its time: the hub ` +
          'fell behind from the start, so delivered ÷ expected is not computed (gaps and duplicates are)',
      );
    }
    const expected = openAtStart === n && warmupDone ? events : null;
    if (openAtStart < fleet.ready) problems.push(`${fleet.ready - openAtStart} streams closed during warmup`);
    if (expected !== null && report.delivered !== expected) {
      const lost = expected - report.delivered;
      // Without gaps, what is missing is the tail: still queued when the window closed, not skipped.
      const tail = report.missing === 0 ? ' (none skipped: the last were still on their way)' : '';
      problems.push(
        `DELIVERED ${report.delivered} OF ${expected}: ${lost > 0 ? `${lost} missing${tail}` : `${-lost} extra`}`,
      );
    }
    if (report.missing > 0) problems.push(`${report.missing} events skipped (gaps in seq) on some stream`);
    if (report.duplicates > 0) problems.push(`${report.duplicates} events duplicated or out of order`);
    if (report.closed > 0)
      problems.push(`${report.closed} streams closed during the run: ${report.errors.join('; ')}`);
    // One per stream is its peer's hello (`herald.connected`); more is something unexpected.
    if (report.other > report.streams) {
      warnings.push(`${report.other} blocks were not benchmark events (system events, or another topic's?)`);
    }
    const publishRate = events / (measured.elapsedMs / 1000);
    if (publishRate < params.rate * 0.95) {
      problems.push(
        `the publisher fell behind: ${Math.round(publishRate)} of ${params.rate} events/s ` +
          `(at worst ${Math.round(measured.maxLagMs)} ms late)`,
      );
    }
    const exit = target.exitReason();
    if (exit !== undefined) problems.push(`${exit}; its output:\n${target.output()}`);
    const windowMs = (report.lastArrival > 0 ? report.lastArrival : end) - start;
    const wallS = (end - start) / 1000;
    return {
      metrics: {
        subscribers: openAtStart,
        selectors: selectorText,
        events,
        publishRate,
        expected,
        delivered: report.delivered,
        deliveredPct: expected === null || expected === 0 ? null : report.delivered / expected,
        deliveriesPerSec: windowMs > 0 ? report.delivered / (windowMs / 1000) : null,
        p50Ms: latency.p50Ms,
        p99Ms: latency.p99Ms,
        maxMs: latency.maxMs,
        serverCpuSeconds: serverCpuS,
        serverCpuPct: serverCpuS / wallS,
        runQueueWaitPct: waitS / wallS,
        gcPauses: gc?.count ?? null,
        gcPauseMs: gc === null || gc.count === 0 ? null : gc.totalMs / gc.count,
        gcMaxMs: gc?.maxMs ?? null,
        deliveriesPerCpuSec: serverCpuS > 0 ? report.delivered / serverCpuS : null,
        kernelUsPerDelivery: report.delivered > 0 ? (kernelCpuS * 1e6) / report.delivered : null,
        userUsPerDelivery: report.delivered > 0 ? ((serverCpuS - kernelCpuS) * 1e6) / report.delivered : null,
        clientCpuPct: report.cpuMicros / 1e6 / wallS,
        publisherCpuPct: measured.cpuMicros / 1e6 / wallS,
      },
      problems,
      warnings,
      details: { measured, latency, latencyHistogram, subscribers: { ...report, histogram: undefined } },
    };
  } finally {
    await Promise.all([publisher?.stop({ type: 'quit' }), fleet.stop()]);
  }
}

export const topicsScenario: Scenario = {
  name: 'topics',
  title: 'S4 many topics: each subscriber on its own topic',
  description:
    `N subscribers (${TOPICS_SUBSCRIBERS.toLocaleString('en-US')} by default), each on a topic of its own ` +
    '(`bench/t/<i>/e`), half of them selecting it with a URI template that matches only it ' +
    '(`bench/t/<i>/{leaf}`; a peer without templates gets exact topics for all, as the Selectors column ' +
    `says). One publisher sends ${TOPICS_RATE.toLocaleString('en-US')} events/s spread round robin over ` +
    'the topics (in batches where the peer takes events to several topics in one request, else one ' +
    `request per event, ${PARALLEL} at once; the \u201c1 event/request\u201d case sends one request per event to ` +
    'every peer, the way the seeds publish), so each event has one recipient: the server\u2019s subscriber index ' +
    'and its per-event path are what is measured. Latency from just before the publish request to the socket ' +
    'read that brought the event.',
  columns: [
    { key: 'subscribers', label: 'Subs', format: 'int' },
    { key: 'selectors', label: 'Selectors', format: 'text' },
    { key: 'events', label: 'Events', format: 'int' },
    ...DELIVERY_COLUMNS,
    { key: 'deliveriesPerCpuSec', label: 'Deliveries/CPU-s', format: 'int' },
    { key: 'kernelUsPerDelivery', label: 'Kernel µs/delivery', format: 'ms' },
    { key: 'userUsPerDelivery', label: 'User µs/delivery', format: 'ms' },
    { key: 'serverCpuPct', label: 'Server CPU', format: 'percent' },
    // Runnable but not running: the server waiting for a core the load generators hold.
    { key: 'runQueueWaitPct', label: 'Server waiting for a core', format: 'percent' },
    // Herald only: V8's pauses in the window; every delivery due meanwhile waits one out.
    { key: 'gcPauses', label: 'GC pauses', format: 'int' },
    { key: 'gcPauseMs', label: 'GC mean ms', format: 'ms' },
    { key: 'gcMaxMs', label: 'GC max ms', format: 'ms' },
    { key: 'clientCpuPct', label: 'Load-gen CPU', format: 'percent' },
    { key: 'publisherCpuPct', label: 'Publisher CPU', format: 'percent' },
  ],
  charts: [
    {
      title: 'S4 many topics: deliveries per server CPU-second',
      key: 'deliveriesPerCpuSec',
      format: 'int',
      better: 'higher',
    },
  ],
  plan(options: PlanOptions): readonly ScenarioCase[] {
    const subscribers = options.subscribers ?? (options.quick ? 1_000 : TOPICS_SUBSCRIBERS);
    const rate =
      options.rate !== undefined && options.rate > 0 ? options.rate : options.quick ? 2_000 : TOPICS_RATE;
    // Whole rounds, so every topic's measured events start at the same seq.
    const roundS = subscribers / rate;
    const batched: TopicsParams = {
      subscribers,
      rate,
      warmupRounds: Math.max(1, Math.round((options.warmupS ?? (options.quick ? 0.5 : 2)) / roundS)),
      rounds: Math.max(1, Math.round((options.durationS ?? (options.quick ? 1.5 : 10)) / roundS)),
      requests: 'batches',
    };
    const single: TopicsParams = { ...batched, requests: 'single' };
    // The peers that take no batch publish one event per request in both: the same work twice,
    // which shows their run-to-run noise beside Herald's two ways.
    const gcFile = (label: string) => join(tmpdir(), `bench-s4-gc-${process.pid}-${label}.jsonl`);
    const measured = (params: TopicsParams) => (target: RunningTarget, context: RunContext) => {
      const file = gcFile(params.requests);
      // Removed before as well: the previous target's server may have written its last pauses
      // after its own case ended.
      rmSync(file, { force: true });
      return measureTopics(target, params, context, file).finally(() => rmSync(file, { force: true }));
    };
    return [
      {
        label: `${rate}/s`,
        params: { ...batched },
        server: { gcMonitorFile: gcFile(batched.requests) },
        run: measured(batched),
      },
      {
        label: `${rate}/s, 1 event/request`,
        params: { ...single },
        server: { gcMonitorFile: gcFile(single.requests) },
        run: measured(single),
      },
    ];
  },
};
