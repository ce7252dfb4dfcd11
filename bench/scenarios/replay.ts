import { IdProbe } from '../id-probe.ts';
import { cpuSeconds } from '../proc-stats.ts';
import { protocolNamed } from '../protocols.ts';
import { publishDirect } from '../publish-direct.ts';
import {
  type CaseResult,
  NotRun,
  type PlanOptions,
  type RunContext,
  type Scenario,
  type ScenarioCase,
} from '../scenario.ts';
import { SubscriberFleet } from '../subscriber-fleet.ts';
import type { RunningTarget } from '../targets.ts';

/**
 * S5, replay: clients that all reconnect at once (a server restart, a network blip) with a
 * `Last-Event-ID` some events back, each to be sent exactly what it missed, then live events.
 */

const TOPIC = 'bench/replay';
/** Events published after the clients reconnect, while they are catching up: the hand-over to live. */
const LIVE_EVENTS = 10;
const CATCH_UP_TIMEOUT_MS = 60_000;
const WORKERS = 4;

interface ReplayParams {
  readonly clients: number;
  /** How far back the clients' Last-Event-ID is: events each must be replayed. */
  readonly back: number;
  /** Events in the history before that id, so the replay starts mid-history, not at its start. */
  readonly before: number;
}

async function measureReplay(
  target: RunningTarget,
  params: ReplayParams,
  context: RunContext,
): Promise<CaseResult> {
  if (protocolNamed(target.protocol).replay === 'none') {
    throw new NotRun('not supported (keeps no history to replay)');
  }
  const problems: string[] = [];
  const resumeAfter = params.before;
  const last = params.before + params.back;

  // The id a client that saw event `resumeAfter` would send, as this peer wrote it.
  context.log(`publishing ${last} events`);
  const probe = await IdProbe.open(target, TOPIC);
  let lastEventId: string | undefined;
  try {
    await publishDirect(target, TOPIC, 1, last);
    lastEventId = await probe.idOf(resumeAfter, 10_000);
    await probe.idOf(last, 10_000);
  } finally {
    probe.close();
  }
  if (lastEventId === undefined)
    throw new Error(`event ${resumeAfter} came without an id: nothing to resume from`);

  context.log(`${params.clients} clients reconnecting at once after event ${resumeAfter} (${lastEventId})`);
  const cpuStart = cpuSeconds(target.pids);
  const fleet = await SubscriberFleet.open(target, {
    topic: TOPIC,
    connections: params.clients,
    workers: WORKERS,
    // Every connection attempt at once: the burst is the point.
    concurrency: Math.ceil(params.clients / WORKERS),
    lastEventId,
    afterSeq: resumeAfter,
    measureFrom: resumeAfter + 1,
  });
  try {
    if (fleet.failed > 0) {
      problems.push(
        `${fleet.failed} of ${params.clients} streams failed to open: ${fleet.errors.join('; ')}`,
      );
    }
    if (fleet.ready === 0) throw new Error(`no stream opened: ${fleet.errors.join('; ')}`);
    await publishDirect(target, TOPIC, last + 1, last + LIVE_EVENTS);
    const caughtUp = await fleet.waitFor(last + LIVE_EVENTS, CATCH_UP_TIMEOUT_MS);
    const cpuS = cpuSeconds(target.pids) - cpuStart;
    const report = await fleet.report();
    report.histogram.destroy();
    const exit = target.exitReason();
    if (exit !== undefined) problems.push(`${exit}; its output:\n${target.output()}`);
    if (!caughtUp)
      problems.push(`not every client had caught up ${CATCH_UP_TIMEOUT_MS / 1000} s after reconnecting`);
    const expected = fleet.ready * (params.back + LIVE_EVENTS);
    if (report.delivered !== expected) {
      const lost = expected - report.delivered;
      problems.push(
        `DELIVERED ${report.delivered} OF ${expected}: ${lost > 0 ? `${lost} missing` : `${-lost} extra`}`,
      );
    }
    if (report.missing > 0) problems.push(`${report.missing} events skipped (gaps in seq) on some stream`);
    if (report.duplicates > 0) problems.push(`${report.duplicates} events duplicated or out of order`);
    if (report.closed > 0)
      problems.push(`${report.closed} streams closed during the catch-up: ${report.errors.join('; ')}`);
    const catchUpMs = report.lastArrival > 0 ? report.lastArrival - fleet.startedAt : null;
    return {
      metrics: {
        clients: fleet.ready,
        back: params.back,
        expected,
        delivered: report.delivered,
        deliveredPct: expected === 0 ? null : report.delivered / expected,
        duplicates: report.duplicates,
        catchUpMs,
        deliveriesPerSec: catchUpMs !== null && catchUpMs > 0 ? report.delivered / (catchUpMs / 1000) : null,
        serverCpuSeconds: cpuS,
        deliveriesPerCpuSec: cpuS > 0 ? report.delivered / cpuS : null,
      },
      problems,
      details: { lastEventId, subscribers: { ...report, histogram: undefined } },
    };
  } finally {
    await fleet.stop();
  }
}

export const replay: Scenario = {
  name: 'replay',
  title: 'S5 replay: clients reconnecting at once with a Last-Event-ID',
  description:
    'The history holds 2 × B events of one topic (B = 1 000 by default); N clients (1 000) then connect ' +
    'at once, each with the `Last-Event-ID` of event B, as the id a probe stream saw for it, so each must ' +
    `be sent the B events after it, then ${LIVE_EVENTS} live events published as soon as all are connected. ` +
    'Catch-up is from the first connection attempt to the last of those events arriving anywhere; ' +
    'every client must get every event once, in order. A peer that keeps no history is not run.',
  columns: [
    { key: 'clients', label: 'Clients', format: 'int' },
    { key: 'back', label: 'Events back', format: 'int' },
    { key: 'deliveredPct', label: 'Delivered', format: 'percent' },
    { key: 'duplicates', label: 'Duplicates', format: 'int' },
    { key: 'catchUpMs', label: 'Catch-up ms', format: 'ms' },
    { key: 'deliveriesPerSec', label: 'Deliveries/s', format: 'int' },
    { key: 'deliveriesPerCpuSec', label: 'Deliveries/CPU-s', format: 'int' },
  ],
  charts: [
    {
      title: 'S5 catch-up of clients reconnecting at once, ms',
      key: 'catchUpMs',
      format: 'ms',
      better: 'lower',
    },
  ],
  plan(options: PlanOptions): readonly ScenarioCase[] {
    const clients = options.subscribers ?? (options.quick ? 100 : 1_000);
    const back = options.quick ? 100 : 1_000;
    const params: ReplayParams = { clients, back, before: back };
    return [
      {
        label: `${clients} × ${back} back`,
        params: { ...params },
        // The history must reach back past the replayed events.
        server: { historySize: 4 * back },
        run: (target, context) => measureReplay(target, params, context),
      },
    ];
  },
};
