import { readFileSync } from 'node:fs';
import http from 'node:http';
import { encodeHistogram, mergeHistograms, summarizeLatency } from './histogram.ts';
import type { PhaseDone, PublisherIn, PublisherOut, PublishPhase } from './messages.ts';
import { nowMs, PAYLOAD_BYTES } from './payload.ts';
import { cpuSeconds, machineBusySeconds, rssBytes } from './proc-stats.ts';
import { settledRss } from './rss-settle.ts';
import type { CaseResult, RunContext } from './scenario.ts';
import { SubscriberFleet } from './subscriber-fleet.ts';
import type { Endpoint, RunningTarget } from './targets.ts';
import { WorkerHandle } from './worker-handle.ts';

/**
 * S6's check of the scaling model (docs/scaling.md): a hub of several nodes, each `herald serve
 * --workers W`, on one broker, in the model's shape B (one recipient per event: every subscriber
 * has a topic of its own) or, with fewer topics than subscribers, its shape A (a broadcast). The
 * subscribers are spread over the nodes and so are the publishes (node k gets the events of the
 * k-th contiguous slice of the topics, one event per request), so part of a node's subscribers'
 * events were published on another node. Every worker is a reader of the log of its own, so each
 * pays the fan-in of every event, recipients or not.
 *
 * Measured per worker process: streams held, CPU over the window, events it accepted and
 * delivered (from its own `/v1/stats`), deliveries per CPU-second, RSS per stream (idle, once
 * settled, against the worker's RSS before any stream); then a second window in which one node
 * takes every publish, to topics nobody holds, so the other node's workers do nothing but read
 * the log: their CPU per event is the fan-in cost alone.
 */

const PUBLISHER = new URL('./publisher-worker.ts', import.meta.url);
/**
 * Single-event requests in flight at once per publisher (as S4's 1 event/request case), at most
 * one per topic: two events of one topic in flight together could arrive out of order.
 */
const PARALLEL = 16;
/** Subscriber worker processes per node. */
const FLEET_WORKERS = 2;
const DRAIN_TIMEOUT_MS = 15_000;
const PHASE_SLACK_MS = 5_000;
/** How long the idle servers' memory may take to settle, before and after the streams open. */
const SETTLE_MAX_MS = 20_000;
/** After the fan-in window's last publish: long enough for every reader to have the last event. */
const FAN_IN_TAIL_MS = 500;
/** A `/v1/stats` request lands on one worker of a node (SO_REUSEPORT): ask until each answered. */
const STATS_ATTEMPTS = 60;

export interface SpreadParams {
  readonly subscribers: number;
  /**
   * Topics the subscribers share, `subscribers` of them for one recipient per event (shape B),
   * fewer for a broadcast (shape A: `subscribers / topics` recipients per event). Subscriber i
   * holds topic i mod topics.
   */
  readonly topics: number;
  /** Events per second over all topics and nodes. */
  readonly rate: number;
  readonly warmupS: number;
  readonly durationS: number;
  /** Worker processes per node (`--workers`). */
  readonly workers: number;
}

const topicOf = (i: number) => `bench/s/${i}`;
const nobodyOf = (i: number) => `bench/nobody/${i}`;

type Publisher = WorkerHandle<PublisherIn, PublisherOut>;

/** One worker process of a node, and the figures asked of it. */
interface WorkerProc {
  readonly node: number;
  readonly pid: number;
}

interface WorkerStats {
  readonly streams: number;
  readonly published: number;
  readonly delivered: number;
}

/** The parent pid of `pid` (field 4 of /proc/<pid>/stat). */
function parentOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
}

/**
 * The worker processes of each node: `target.pids` lists every node's primary (a child of this
 * process, in node order) and the primary's workers.
 */
function workersOf(target: RunningTarget): WorkerProc[] {
  const primaries = target.pids.filter((pid) => parentOf(pid) === process.pid);
  const found: WorkerProc[] = [];
  for (const pid of target.pids) {
    if (primaries.includes(pid)) continue;
    const node = primaries.indexOf(parentOf(pid));
    if (node >= 0) found.push({ node, pid });
  }
  return found.sort((a, b) => a.node - b.node || a.pid - b.pid);
}

/** One `/v1/stats` on a fresh connection, so the kernel may hand it to either worker. */
function statsOnce(node: Endpoint): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const req = http.get(
      { host: node.host, port: node.port, path: '/v1/stats', agent: false, headers: { connection: 'close' } },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (text: string) => {
          body += text;
        });
        res.on('end', () => {
          try {
            resolve(JSON.parse(body) as Record<string, unknown>);
          } catch (error) {
            reject(error);
          }
        });
        res.on('error', reject);
      },
    );
    req.setTimeout(5_000, () => req.destroy(new Error('/v1/stats took over 5 s')));
    req.on('error', reject);
  });
}

/** Each worker's own figures, by pid, asked of its node until every worker of it has answered. */
async function workerStats(
  target: RunningTarget,
  procs: readonly WorkerProc[],
): Promise<Map<number, WorkerStats>> {
  const byPid = new Map<number, WorkerStats>();
  for (const [index, node] of target.nodes.entries()) {
    const wanted = procs.filter((proc) => proc.node === index).map((proc) => proc.pid);
    for (let attempt = 0; attempt < STATS_ATTEMPTS && wanted.some((pid) => !byPid.has(pid)); attempt++) {
      const stats = (await statsOnce(node)) as {
        worker?: { pid: number };
        connections: { total: number };
        events: { published: number; delivered: number };
      };
      const pid = stats.worker?.pid;
      if (pid === undefined || byPid.has(pid)) continue;
      byPid.set(pid, {
        streams: stats.connections.total,
        published: stats.events.published,
        delivered: stats.events.delivered,
      });
    }
  }
  return byPid;
}

export async function measureSpread(
  target: RunningTarget,
  params: SpreadParams,
  context: RunContext,
): Promise<CaseResult> {
  const problems: string[] = [];
  const warnings: string[] = [];
  const nodes = target.nodes.length;
  const n = params.subscribers;
  const procs = workersOf(target);
  if (procs.length !== nodes * params.workers) {
    throw new Error(`found ${procs.length} worker processes, not ${nodes} × ${params.workers}`);
  }
  const workerPids = () => procs.map((proc) => proc.pid);
  context.log('waiting for the idle workers’ memory to settle');
  const before = await settledRss(workerPids, SETTLE_MAX_MS);

  const t = params.topics;
  if (n % t !== 0 || t % nodes !== 0) {
    throw new Error(`${n} subscribers on ${t} topics do not split evenly over ${nodes} nodes`);
  }
  // Subscriber i holds topic i mod t on node (i + floor(i / t)) mod nodes: with a topic each, the
  // topics alternate between the nodes; with fewer, each topic's subscribers alternate.
  const held = target.nodes.map((_, j) =>
    Array.from({ length: n }, (_, i) => i)
      .filter((i) => (i + Math.floor(i / t)) % nodes === j)
      .map((i) => topicOf(i % t)),
  );
  // Node k takes the publishes of the k-th contiguous slice of the topics, so part of every
  // node's subscribers' events come in through the other.
  const slice = t / nodes;
  const sent = target.nodes.map((_, k) => Array.from({ length: slice }, (_, i) => topicOf(k * slice + i)));
  context.log(`opening ${n} streams on ${t} topics over ${nodes} nodes`);
  const fleets: SubscriberFleet[] = [];
  const publishers: Publisher[] = [];
  try {
    for (const [j, node] of target.nodes.entries()) {
      fleets.push(
        await SubscriberFleet.open(
          { ...target, subscribeTo: node },
          { topic: '', topics: held[j], connections: held[j]?.length ?? 0, workers: FLEET_WORKERS },
        ),
      );
    }
    const ready = fleets.reduce((total, fleet) => total + fleet.ready, 0);
    const failed = fleets.reduce((total, fleet) => total + fleet.failed, 0);
    if (failed > 0) {
      problems.push(
        `${failed} of ${n} streams failed to open: ${fleets.flatMap((f) => f.errors).join('; ')}`,
      );
    }
    if (ready === 0) throw new Error('no stream opened');
    context.log('waiting for the workers’ memory to settle with the streams open');
    const idle = await settledRss(workerPids, SETTLE_MAX_MS);
    if (!before.settled || !idle.settled)
      warnings.push('a worker’s memory had not settled: RSS per stream is rough');
    const streamsAtRest = await workerStats(target, procs);

    for (let k = 0; k < nodes; k++) publishers.push(new WorkerHandle(PUBLISHER, `publisher ${k + 1}`));
    const phase = (k: number, topics: readonly string[], firstSeq: number, events: number, rate: number) => {
      const node = target.nodes[k] as Endpoint;
      const run: PublishPhase = {
        type: 'run',
        host: node.host,
        port: node.port,
        protocol: target.protocol,
        topic: '',
        topics,
        firstSeq,
        rate,
        durationMs: (events / rate) * 1000 + PHASE_SLACK_MS,
        maxEvents: events,
        batch: 1,
        window: 0,
        payloadBytes: PAYLOAD_BYTES,
        parallel: Math.min(PARALLEL, topics.length),
        single: true,
      };
      return run;
    };
    // Rounds of every publisher: each of its topics gets one event per round, numbered by round.
    const perRound = slice;
    const publishRounds = async (firstSeq: number, rounds: number, name: string): Promise<PhaseDone[]> => {
      const each = publishers.map((pub, k) => {
        const run = phase(k, sent[k] ?? [], firstSeq, rounds * perRound, params.rate / nodes);
        pub.send(run);
        return pub.next('done', run.durationMs + 30_000);
      });
      const done = await Promise.all(each);
      for (const d of done)
        if (d.error !== undefined) problems.push(`${name}: publishing failed: ${d.error}`);
      const round = Math.min(...done.map((d) => Math.floor(d.lastSeq / perRound)));
      const drained = await Promise.all(fleets.map((fleet) => fleet.waitFor(round, DRAIN_TIMEOUT_MS)));
      if (drained.includes(false)) {
        problems.push(
          `${name}: not every stream had its round ${round} event ${DRAIN_TIMEOUT_MS / 1000} s after`,
        );
      }
      return done;
    };
    const roundS = t / params.rate;
    const warmupRounds = Math.max(1, Math.round(params.warmupS / roundS));
    const rounds = Math.max(1, Math.round(params.durationS / roundS));
    context.log(`warmup, ${warmupRounds} rounds`);
    const warmup = await publishRounds(1, warmupRounds, 'warmup');
    if (warmup.some((d) => d.lastSeq !== warmupRounds * perRound)) {
      problems.push('the warmup did not publish every event in its time: the hub fell behind from the start');
    }
    const fromSeq = warmupRounds * perRound + 1;
    await Promise.all(fleets.map((fleet) => fleet.measure(warmupRounds + 1)));

    context.log(`measuring, ${rounds} rounds at ${params.rate} events/s, one event per request`);
    const openAtStart = fleets.reduce((total, fleet) => total + fleet.open(), 0);
    const statsStart = await workerStats(target, procs);
    const cpuStart = procs.map((proc) => cpuSeconds([proc.pid]));
    const allStart = cpuSeconds(target.pids);
    const brokerStart = cpuSeconds(target.brokerPids);
    const machineStart = machineBusySeconds();
    const start = nowMs();
    const measured = await publishRounds(fromSeq, rounds, 'measured window');
    const end = nowMs();
    const cpuEnd = procs.map((proc) => cpuSeconds([proc.pid]));
    const allEnd = cpuSeconds(target.pids);
    const brokerEnd = cpuSeconds(target.brokerPids);
    const machineEnd = machineBusySeconds();
    const statsEnd = await workerStats(target, procs);
    const reports = await Promise.all(fleets.map((fleet) => fleet.report()));

    const events = measured.reduce((total, d) => total + d.lastSeq - d.firstSeq + 1, 0);
    const delivered = reports.reduce((total, r) => total + r.delivered, 0);
    const wallS = (end - start) / 1000;
    const publishElapsedS = Math.max(...measured.map((d) => d.elapsedMs)) / 1000;
    const publishRate = events / publishElapsedS;
    const brokerCpuS = brokerEnd - brokerStart;
    const serverCpuS = allEnd - allStart;
    const clientCpuS = reports.reduce((total, r) => total + r.cpuMicros, 0) / 1e6;
    const publisherCpuS = measured.reduce((total, d) => total + d.cpuMicros, 0) / 1e6;
    const foreignCpuS = Math.max(
      0,
      machineEnd - machineStart - serverCpuS - brokerCpuS - clientCpuS - publisherCpuS,
    );
    if (foreignCpuS / wallS > 0.1) {
      warnings.push(
        `other processes used ${Math.round((100 * foreignCpuS) / wallS)} % of a core during the window: ` +
          'the machine was not quiet, so the figures are pessimistic',
      );
    }
    const expected = openAtStart === n ? events * (n / t) : null;
    if (expected !== null && delivered !== expected) {
      problems.push(`DELIVERED ${delivered} OF ${expected}`);
    }
    const missing = reports.reduce((total, r) => total + r.missing, 0);
    const duplicates = reports.reduce((total, r) => total + r.duplicates, 0);
    const closed = reports.reduce((total, r) => total + r.closed, 0);
    if (missing > 0) problems.push(`${missing} events skipped (gaps in seq) on some stream`);
    if (duplicates > 0) problems.push(`${duplicates} events duplicated or out of order`);
    if (closed > 0) problems.push(`${closed} streams closed during the run`);
    if (publishRate < params.rate * 0.95) {
      problems.push(`the publishers fell behind: ${Math.round(publishRate)} of ${params.rate} events/s`);
    }
    const histogram = mergeHistograms(
      reports.map((r) => {
        const encoded = encodeHistogram(r.histogram);
        r.histogram.destroy();
        return encoded;
      }),
    );
    const latency = summarizeLatency(histogram);
    histogram.destroy();
    const lastArrival = Math.max(...reports.map((r) => r.lastArrival));
    const windowMs = (lastArrival > 0 ? lastArrival : end) - start;

    const perWorker = procs.map((proc, i) => {
      const cpuS = (cpuEnd[i] ?? 0) - (cpuStart[i] ?? 0);
      const a = statsStart.get(proc.pid);
      const b = statsEnd.get(proc.pid);
      const rest = streamsAtRest.get(proc.pid);
      const streams = rest?.streams ?? null;
      const deliveredHere = a !== undefined && b !== undefined ? b.delivered - a.delivered : null;
      const rssGrowth = (idle.byPid[proc.pid] ?? 0) - (before.byPid[proc.pid] ?? 0);
      return {
        node: proc.node + 1,
        pid: proc.pid,
        streams,
        cpuSeconds: cpuS,
        cpuPct: cpuS / wallS,
        published: a !== undefined && b !== undefined ? b.published - a.published : null,
        delivered: deliveredHere,
        deliveriesPerCpuSec: deliveredHere !== null && cpuS > 0 ? deliveredHere / cpuS : null,
        /** Every event of the log this worker read in the window: all of them. */
        cpuMicrosPerLogEvent: (cpuS / events) * 1e6,
        rssBeforeBytes: before.byPid[proc.pid] ?? null,
        rssIdleBytes: idle.byPid[proc.pid] ?? null,
        kibPerStream: streams !== null && streams > 0 ? rssGrowth / 1024 / streams : null,
      };
    });
    if (perWorker.some((w) => w.streams === null || w.delivered === null)) {
      warnings.push('some worker never answered /v1/stats: its streams and deliveries are unknown');
    }

    // Fan-in alone: node 1 takes every publish, to topics nobody holds; the other nodes only read.
    const fanInEvents = Math.max(1, Math.round(params.rate * params.durationS));
    context.log(`fan-in window: ${fanInEvents} events to node 1, to topics nobody holds`);
    const nobody = Array.from({ length: n }, (_, i) => nobodyOf(i));
    const idleStart = procs.map((proc) => cpuSeconds([proc.pid]));
    const idleT0 = nowMs();
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    const idleCpuPerS = procs.map(
      (proc, i) => (cpuSeconds([proc.pid]) - (idleStart[i] ?? 0)) / ((nowMs() - idleT0) / 1000),
    );
    const fanStart = procs.map((proc) => cpuSeconds([proc.pid]));
    const fanBroker0 = cpuSeconds(target.brokerPids);
    const fanT0 = nowMs();
    const fanRun = phase(0, nobody, 1, fanInEvents, params.rate);
    const fanPub = publishers[0] as Publisher;
    fanPub.send(fanRun);
    const fanDone = await fanPub.next('done', fanRun.durationMs + 30_000);
    if (fanDone.error !== undefined) problems.push(`fan-in window: publishing failed: ${fanDone.error}`);
    await new Promise((resolve) => setTimeout(resolve, FAN_IN_TAIL_MS));
    const fanWallS = (nowMs() - fanT0) / 1000;
    const fanBrokerS = cpuSeconds(target.brokerPids) - fanBroker0;
    const fanEvents = fanDone.lastSeq - fanDone.firstSeq + 1;
    const fanIn = procs.map((proc, i) => {
      const cpuS = cpuSeconds([proc.pid]) - (fanStart[i] ?? 0);
      return {
        node: proc.node + 1,
        pid: proc.pid,
        cpuSeconds: cpuS,
        idleCpuPct: idleCpuPerS[i] ?? null,
        /** Raw: everything the worker did in the window, per event of the log. */
        microsPerEvent: (cpuS / fanEvents) * 1e6,
        /** Less what it uses idle (timers, heartbeats), scaled to the window. */
        netMicrosPerEvent: ((cpuS - (idleCpuPerS[i] ?? 0) * fanWallS) / fanEvents) * 1e6,
      };
    });
    const readers = fanIn.filter((w) => w.node !== 1);
    const mean = (values: readonly number[]) =>
      values.length === 0 ? null : values.reduce((t, v) => t + v, 0) / values.length;
    const fanInMicros = mean(readers.map((w) => w.netMicrosPerEvent));

    const exit = target.exitReason();
    if (exit !== undefined) problems.push(`${exit}; its output:\n${target.output()}`);
    const rss = rssBytes(target.pids);
    const streamsKnown = perWorker.filter((w) => w.kibPerStream !== null);
    return {
      metrics: {
        broker: target.broker,
        nodes,
        workers: params.workers,
        subscribers: openAtStart,
        topics: t,
        events,
        publishRate,
        expected,
        delivered,
        deliveredPct: expected === null || expected === 0 ? null : delivered / expected,
        deliveriesPerSec: windowMs > 0 ? delivered / (windowMs / 1000) : null,
        p50Ms: latency.p50Ms,
        p90Ms: latency.p90Ms,
        p99Ms: latency.p99Ms,
        maxMs: latency.maxMs,
        serverCpuSeconds: serverCpuS,
        serverCpuPct: serverCpuS / wallS,
        deliveriesPerCpuSec: serverCpuS > 0 ? delivered / serverCpuS : null,
        workerCpuMicrosPerEvent: mean(perWorker.map((w) => w.cpuMicrosPerLogEvent)),
        fanInMicros,
        kibPerStream: mean(streamsKnown.map((w) => w.kibPerStream as number)),
        brokerCpuSeconds: target.brokerPids.length > 0 ? brokerCpuS : null,
        brokerCpuPct: target.brokerPids.length > 0 ? brokerCpuS / wallS : null,
        brokerMicrosPerEvent: target.brokerPids.length > 0 ? (brokerCpuS / events) * 1e6 : null,
        fanInBrokerMicrosPerEvent: target.brokerPids.length > 0 ? (fanBrokerS / fanEvents) * 1e6 : null,
        serverRssBytes: rss,
        clientCpuPct: clientCpuS / wallS,
        publisherCpuPct: publisherCpuS / wallS,
        foreignCpuPct: foreignCpuS / wallS,
        windowMs,
      },
      problems,
      warnings,
      details: {
        perWorker,
        fanIn: { events: fanEvents, wallS: fanWallS, brokerCpuSeconds: fanBrokerS, workers: fanIn },
        rss: { before, idle },
        measured,
        latency,
      },
    };
  } finally {
    await Promise.all([
      ...publishers.map((pub) => pub.stop({ type: 'quit' })),
      ...fleets.map((fleet) => fleet.stop()),
    ]);
  }
}
