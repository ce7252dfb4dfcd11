import { publishDirect } from '../publish-direct.ts';
import { settledRss } from '../rss-settle.ts';
import type { CaseResult, PlanOptions, RunContext, Scenario, ScenarioCase } from '../scenario.ts';
import { SubscriberFleet } from '../subscriber-fleet.ts';
import type { RunningTarget } from '../targets.ts';

/**
 * S3, memory: many idle streams held open, and what each costs the server, (RSS with them − RSS
 * before) ÷ N summed over every server process. A process here may hold at most 20 000 file
 * descriptors, so past ~19 000 streams the server needs several processes and the load generator
 * too, and one source address has only ~28 000 ephemeral ports, so the sockets come from several.
 */

const TOPIC = 'bench/idle';
/** Streams per load-generator process: well under its 20 000 descriptors. */
const STREAMS_PER_WORKER = 10_000;
/** How long to wait for the server's memory to stop moving, before and after. */
const SETTLE_MAX_MS = 20_000;
/** After the last stream opened, this long at least, so that the connections' churn is over. */
const AFTER_OPEN_MS = 1_000;
/** RSS samples this far apart (5 in a row must agree); quick runs only check that it works. */
const SAMPLE_EVERY_MS = 500;
const QUICK_SAMPLE_EVERY_MS = 100;
const OPEN_TIMEOUT_MS = 180_000;
/** The liveness check: the one event must reach every stream within this. */
const CHECK_TIMEOUT_MS = 30_000;

interface MemoryCase {
  readonly quick: boolean;
  readonly connections: number;
  /** Server processes (`TargetOptions.workers`); > 1 is "not run" on a one-process peer. */
  readonly workers: number;
}

/**
 * 10 000 fits one process of every peer; 20 000 does not (the process's own descriptors come on
 * top of the sockets), nor 50 000.
 */
const FULL: readonly MemoryCase[] = [
  { quick: false, connections: 10_000, workers: 1 },
  { quick: false, connections: 20_000, workers: 2 },
  { quick: false, connections: 50_000, workers: 4 },
];
const QUICK: readonly MemoryCase[] = [
  { quick: true, connections: 1_000, workers: 1 },
  { quick: true, connections: 3_000, workers: 2 },
];

/**
 * Each case's sockets come from source addresses no earlier case used: a closed client socket
 * keeps its port in TIME_WAIT for a minute, and a bound socket cannot reuse it even toward
 * another server port.
 */
let nextAddress = 10;
function freshAddresses(count: number): string[] {
  const addresses: string[] = [];
  for (let i = 0; i < count; i++) {
    if (nextAddress > 254) nextAddress = 10;
    addresses.push(`127.0.0.${nextAddress++}`);
  }
  return addresses;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

async function measureMemory(
  target: RunningTarget,
  spec: MemoryCase,
  context: RunContext,
): Promise<CaseResult> {
  const problems: string[] = [];
  const warnings: string[] = [];
  const pids = () => target.pids;
  context.log('waiting for the idle server’s memory to settle');
  const everyMs = spec.quick ? QUICK_SAMPLE_EVERY_MS : SAMPLE_EVERY_MS;
  const before = await settledRss(pids, SETTLE_MAX_MS, everyMs);
  const loadWorkers = Math.ceil(spec.connections / STREAMS_PER_WORKER);
  const sourceAddresses = freshAddresses(loadWorkers);
  context.log(
    `opening ${spec.connections} idle streams over ${loadWorkers} workers from ${sourceAddresses.join(', ')}`,
  );
  const opening = performance.now();
  const fleet = await SubscriberFleet.open(target, {
    topic: TOPIC,
    connections: spec.connections,
    workers: loadWorkers,
    concurrency: 100,
    openTimeoutMs: OPEN_TIMEOUT_MS,
    sourceAddresses,
    measureFrom: 1,
  });
  try {
    const openMs = performance.now() - opening;
    context.log(
      `${fleet.ready} streams ready in ${Math.round(openMs)} ms${fleet.failed ? `, ${fleet.failed} FAILED` : ''}`,
    );
    if (fleet.failed > 0) {
      problems.push(
        `${fleet.failed} of ${spec.connections} streams failed to open: ${fleet.errors.join('; ')}`,
      );
    }
    if (fleet.ready === 0) throw new Error(`no stream opened: ${fleet.errors.join('; ')}`);
    await sleep(spec.quick ? everyMs : AFTER_OPEN_MS);
    context.log('waiting for the server’s memory to settle');
    const after = await settledRss(pids, SETTLE_MAX_MS, everyMs);
    if (!before.settled || !after.settled) {
      warnings.push(
        `the server's memory had not settled after ${SETTLE_MAX_MS / 1000} s ` +
          `(${before.settled ? 'with' : 'before'} the streams): the figure is one sample of a moving value`,
      );
    }
    const held = fleet.open();

    // Held is not enough: every stream must still be subscribed, so one event must reach each.
    await publishDirect(target, TOPIC, 1, 1);
    const reached = await fleet.waitFor(1, CHECK_TIMEOUT_MS);
    const report = await fleet.report();
    report.histogram.destroy();
    if (!reached)
      problems.push(
        `the check event had not reached every stream ${CHECK_TIMEOUT_MS / 1000} s after it was sent`,
      );
    if (report.delivered !== fleet.ready) {
      problems.push(`DELIVERED THE CHECK EVENT TO ${report.delivered} OF ${fleet.ready} streams`);
    }
    if (report.duplicates > 0 || report.missing > 0) {
      problems.push(`${report.duplicates} duplicated and ${report.missing} skipped events`);
    }
    if (report.closed > 0)
      problems.push(`${report.closed} streams closed while idle: ${report.errors.join('; ')}`);
    const exit = target.exitReason();
    if (exit !== undefined) problems.push(`${exit}; its output:\n${target.output()}`);

    const grown = after.bytes - before.bytes;
    return {
      metrics: {
        connections: fleet.ready,
        held,
        deliveredPct: fleet.ready === 0 ? null : report.delivered / fleet.ready,
        processes: Object.keys(after.byPid).length,
        rssBeforeBytes: before.bytes,
        // The baseline of each process with no stream (a primary and its workers, nginx's master
        // and workers), for `--workers N` in docs/performance.md.
        rssBeforePerProcessBytes: before.bytes / Math.max(1, Object.keys(before.byPid).length),
        rssBytes: after.bytes,
        bytesPerConnection: fleet.ready === 0 ? null : grown / fleet.ready,
        openMs,
        connectionsPerSec: openMs > 0 ? fleet.ready / (openMs / 1000) : null,
      },
      problems,
      warnings,
      details: {
        before,
        after,
        sourceAddresses,
        loadWorkers,
        subscribers: { ...report, histogram: undefined },
      },
    };
  } finally {
    await fleet.stop();
  }
}

export const memory: Scenario = {
  name: 'memory',
  title: 'S3 memory: idle connections',
  description:
    'N idle streams of one topic, opened from several load-generator processes (at most 10 000 sockets ' +
    'each) and several 127.0.0.x source addresses, each on a freshly started server. Memory per ' +
    'connection is (server RSS with the N streams − RSS before any) ÷ N, both read once RSS has stopped ' +
    'moving (5 samples 0.5 s apart within 0.5 %), summed over every server process. A process here may ' +
    'hold at most 20 000 file descriptors, so 20 000 and 50 000 need a server of several processes ' +
    '(Herald `--workers`, nginx workers); a one-process peer is not run there. Afterwards one event ' +
    'must reach every stream: a stream the server dropped or forgot does not count as held. “Before per ' +
    'proc” is the RSS before any stream ÷ the server’s processes: the baseline of each (Herald runs from ' +
    'source here, so its TypeScript loader counts too).',
  columns: [
    { key: 'connections', label: 'Streams', format: 'int' },
    { key: 'processes', label: 'Server procs', format: 'int' },
    { key: 'deliveredPct', label: 'Check delivered', format: 'percent' },
    { key: 'bytesPerConnection', label: 'KiB per stream', format: 'kib' },
    { key: 'rssBeforeBytes', label: 'RSS before MiB', format: 'mib' },
    { key: 'rssBeforePerProcessBytes', label: 'Before per proc MiB', format: 'mib' },
    { key: 'rssBytes', label: 'RSS MiB', format: 'mib' },
    { key: 'connectionsPerSec', label: 'Opened/s', format: 'int' },
  ],
  charts: [
    {
      title: 'S3 server memory per idle stream, KiB',
      key: 'bytesPerConnection',
      format: 'kib',
      better: 'lower',
    },
  ],
  plan(options: PlanOptions): readonly ScenarioCase[] {
    return (options.quick ? QUICK : FULL).map((spec) => ({
      label:
        spec.workers === 1
          ? spec.connections.toLocaleString('en-US')
          : `${spec.connections.toLocaleString('en-US')}, ${spec.workers} procs`,
      params: { connections: spec.connections, workers: spec.workers },
      server: spec.workers === 1 ? {} : { workers: spec.workers },
      run: (target, context) => measureMemory(target, spec, context),
    }));
  },
};
