import { type AppEndpoint, appEndpoint, HOOKS_TOPIC, WEBHOOK_SECRET } from '../app-endpoint.ts';
import type { ChurnIn, ChurnOut, CookieMode } from '../churn-worker.ts';
import { type FanoutParams, fanoutParams, measureFanout, rateLabel } from '../fanout-measure.ts';
import { mergeHistograms, summarizeLatency } from '../histogram.ts';
import { cpuSeconds, machineBusySeconds } from '../proc-stats.ts';
import { protocolNamed } from '../protocols.ts';
import type { CaseResult, PlanOptions, RunContext, Scenario, ScenarioCase } from '../scenario.ts';
import type { RunningTarget, TargetOptions } from '../targets.ts';
import { WorkerHandle } from '../worker-handle.ts';
import { DEFAULT_RATE } from './fanout.ts';

/**
 * S10, hooks and presence: what `--webhook-url`, `--auth-url` and `presence=1` cost where they do
 * their work (a stream's open and close), and that the delivery path does not pay for them.
 *
 * - **Churn**: `LOOPS` clients each open a stream, read `herald.connected`, close it and open the
 *   next, for the window: streams opened and closed per second and per server CPU-second, and the
 *   time to `herald.connected`. Variants: plain (open mode); with a webhook (every open and close a
 *   notice, signed, batched, POSTed to the app); with an auth endpoint asked once per client
 *   (answers cached per session cookie) or at every open (a new session each time); and the cached
 *   auth with `presence=1` on every stream: each client its own subject, so every open and close
 *   is a join or leave told to every presence stream on the topic, which is presence's real work.
 * - **Delivery**: S1's 100/s and saturated cases (1 000 subscribers on one topic), as they are and
 *   with the webhook on and every stream opened with `presence=1`: deliveries per server
 *   CPU-second, which must not move.
 *
 * The app (the auth answers and the webhook sink, bench/app-endpoint.ts) runs in this process:
 * its CPU is the "App CPU" column. The churn is a closed loop (each client opens its next stream
 * once its last is connected), so the time to `herald.connected` is mostly the queue of `LOOPS`
 * opens the server works through at its rate, not one open's own cost: compare it between rows.
 */

const CHURN_WORKER = new URL('../churn-worker.ts', import.meta.url);
/** Clients opening streams at once. */
const LOOPS = 200;
const QUICK_LOOPS = 50;
/** One open may take this long before it counts as failed. */
const OPEN_TIMEOUT_MS = 10_000;
/** How long the webhook notices of the last streams may take to reach the app. */
const NOTICE_DRAIN_MS = 10_000;
/** Source addresses per churn case (each ~28 000 ports, which TIME_WAIT holds a minute). */
const ADDRESSES_PER_CASE = 4;
/** CPU that other processes used during the window, as a share of one core, above which the figures are suspect. */
const FOREIGN_CPU_WARNING = 0.1;

interface ChurnVariant {
  readonly label: string;
  readonly webhook: boolean;
  readonly auth: boolean;
  readonly cookies: CookieMode;
  readonly presence: boolean;
}

const CHURN_VARIANTS: readonly ChurnVariant[] = [
  { label: 'churn, plain', webhook: false, auth: false, cookies: 'none', presence: false },
  { label: 'churn, webhook', webhook: true, auth: false, cookies: 'none', presence: false },
  { label: 'churn, auth-url cached', webhook: false, auth: true, cookies: 'per-client', presence: false },
  { label: 'churn, auth-url every open', webhook: false, auth: true, cookies: 'per-open', presence: false },
  {
    label: 'churn, auth-url cached + presence=1',
    webhook: false,
    auth: true,
    cookies: 'per-client',
    presence: true,
  },
];

interface ChurnParams {
  readonly loops: number;
  readonly durationS: number;
  readonly warmupS: number;
}

/**
 * Each churn case's sockets come from addresses no earlier case used (127.0.3.x, apart from S3's
 * 127.0.0.x): a closed client socket keeps its port in TIME_WAIT for a minute.
 */
let nextAddress = 1;
function freshAddresses(): string[] {
  const addresses: string[] = [];
  for (let i = 0; i < ADDRESSES_PER_CASE; i++) {
    if (nextAddress > 254) nextAddress = 1;
    addresses.push(`127.0.3.${nextAddress++}`);
  }
  return addresses;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** What the hub needs to call the app: its URLs on the endpoint this process serves. */
async function hookSettings(webhook: boolean, auth: boolean): Promise<TargetOptions> {
  if (!webhook && !auth) return {};
  const app = await appEndpoint();
  return {
    ...(auth && { authUrl: app.authUrl }),
    ...(webhook && { webhook: { url: app.webhookUrl, secret: WEBHOOK_SECRET } }),
  };
}

/** The admin view of `/v1/stats`'s `webhooks` (open mode on loopback is admin). */
async function webhookStats(target: RunningTarget): Promise<Record<string, number> | undefined> {
  const { host, port } = target.subscribeTo;
  try {
    const response = await fetch(`http://${host}:${port}/v1/stats`, { signal: AbortSignal.timeout(5_000) });
    const stats = (await response.json()) as { webhooks?: Record<string, number> };
    return stats.webhooks;
  } catch {
    return undefined;
  }
}

/** Waits until the app has both notices of `streams` streams, or `NOTICE_DRAIN_MS` passed. */
async function noticesDrained(app: AppEndpoint, streams: number): Promise<boolean> {
  const deadline = performance.now() + NOTICE_DRAIN_MS;
  while (app.counts.opened < streams || app.counts.closed < streams) {
    if (performance.now() > deadline) return false;
    await sleep(50);
  }
  return true;
}

async function measureChurn(
  target: RunningTarget,
  variant: ChurnVariant,
  params: ChurnParams,
  context: RunContext,
): Promise<CaseResult> {
  const problems: string[] = [];
  const warnings: string[] = [];
  const app = variant.webhook || variant.auth ? await appEndpoint() : undefined;
  app?.reset();
  const { host, port } = target.subscribeTo;
  const path = `${protocolNamed('herald').subscribePath(HOOKS_TOPIC)}${variant.presence ? '&presence=1' : ''}`;
  const worker = new WorkerHandle<ChurnIn, ChurnOut>(CHURN_WORKER, 'churn worker');
  try {
    const localAddresses = freshAddresses();
    context.log(`${params.loops} clients churning streams from ${localAddresses.join(', ')}`);
    worker.send({
      type: 'start',
      host,
      port,
      path,
      loops: params.loops,
      cookies: variant.cookies,
      localAddresses,
      timeoutMs: OPEN_TIMEOUT_MS,
    });
    context.log(`warmup, ${params.warmupS} s`);
    // And until every client has opened once: with an answer cached per client, its one call to
    // the app is warmup, not the window's.
    await Promise.all([sleep(params.warmupS * 1000), worker.next('warm', OPEN_TIMEOUT_MS + 10_000)]);

    worker.send({ type: 'measure' });
    await worker.next('measuring', 10_000);
    context.log(`measuring, ${params.durationS} s`);
    const countsStart = app === undefined ? undefined : { ...app.counts };
    const serverStart = cpuSeconds(target.pids);
    const machineStart = machineBusySeconds();
    const appStart = process.cpuUsage();
    const wallStart = performance.now();
    await sleep(params.durationS * 1000);
    const serverCpuS = cpuSeconds(target.pids) - serverStart;
    const machineS = machineBusySeconds() - machineStart;
    const appUsage = process.cpuUsage(appStart);
    const wallS = (performance.now() - wallStart) / 1000;
    const countsEnd = app === undefined ? undefined : { ...app.counts };
    worker.send({ type: 'report' });
    const report = await worker.next('report', 10_000);

    worker.send({ type: 'stop' });
    const { totalStreams } = await worker.next('stopped', OPEN_TIMEOUT_MS + 5_000);

    const histogram = mergeHistograms([report.histogram]);
    const latency = summarizeLatency(histogram);
    histogram.destroy();
    const appCpuS = (appUsage.user + appUsage.system) / 1e6;
    const clientCpuS = report.cpuMicros / 1e6;
    const foreignCpuS = Math.max(0, machineS - serverCpuS - appCpuS - clientCpuS);
    if (foreignCpuS / wallS > FOREIGN_CPU_WARNING) {
      warnings.push(
        `other processes used ${Math.round((100 * foreignCpuS) / wallS)} % of a core during the window: ` +
          'the machine was not quiet, so the figures are pessimistic',
      );
    }
    if (report.streams === 0) problems.push('no stream reached herald.connected in the window');
    if (report.failed > 0) {
      problems.push(`${report.failed} opens failed in the window: ${report.errors.join('; ')}`);
    }

    // What the app saw, per stream of the window.
    const during = (key: 'authCalls' | 'notices') =>
      countsStart === undefined || countsEnd === undefined ? 0 : countsEnd[key] - countsStart[key];
    let appSaw: string | null = null;
    const details: Record<string, unknown> = { latency, totalStreams, serverCpuS, wallS };
    if (app !== undefined && variant.auth) {
      const perStream = report.streams > 0 ? during('authCalls') / report.streams : 0;
      appSaw = `${perStream.toFixed(2)} auth calls/stream`;
      details.authCalls = during('authCalls');
    }
    if (app !== undefined && variant.webhook) {
      const perStream = report.streams > 0 ? during('notices') / report.streams : 0;
      appSaw = `${perStream.toFixed(2)} notices/stream`;
      details.notices = during('notices');
      // Every stream the server opened is told twice, opened and closed, once the last ones drain.
      if (!(await noticesDrained(app, totalStreams))) {
        problems.push(
          `the app got ${app.counts.opened} opened and ${app.counts.closed} closed notices of ${totalStreams} streams, ` +
            `${NOTICE_DRAIN_MS / 1000} s after the last closed`,
        );
      }
      const stats = await webhookStats(target);
      details.webhookStats = stats;
      if (stats !== undefined && (stats.dropped ?? 0) + (stats.failed ?? 0) > 0) {
        problems.push(`the hub dropped ${stats.dropped} and gave up ${stats.failed} webhook notices`);
      }
    }
    if (app !== undefined) {
      details.app = { ...app.counts };
      if (app.counts.badSignatures > 0) {
        problems.push(`${app.counts.badSignatures} webhook deliveries had a signature that did not verify`);
      }
      if (app.counts.malformed > 0)
        problems.push(`${app.counts.malformed} requests to the app were unreadable`);
    }
    const exit = target.exitReason();
    if (exit !== undefined) problems.push(`${exit}; its output:\n${target.output()}`);
    return {
      metrics: {
        clients: params.loops,
        streams: report.streams,
        streamsPerSec: report.streams / wallS,
        streamsPerCpuSec: serverCpuS > 0 ? report.streams / serverCpuS : null,
        connectedP50Ms: latency.p50Ms,
        connectedP99Ms: latency.p99Ms,
        appSaw,
        serverCpuPct: serverCpuS / wallS,
        appCpuPct: appCpuS / wallS,
        clientCpuPct: clientCpuS / wallS,
        foreignCpuPct: foreignCpuS / wallS,
      },
      problems,
      warnings,
      details,
    };
  } finally {
    await worker.stop({ type: 'quit' });
  }
}

/**
 * S1's measurement, with the webhook on and every stream asking for presence (`hooks`), or as S1
 * runs it. The app's notices of the subscribers' opens are what it saw.
 */
async function measureDelivery(
  target: RunningTarget,
  params: FanoutParams,
  hooks: boolean,
  context: RunContext,
): Promise<CaseResult> {
  const app = hooks ? await appEndpoint() : undefined;
  app?.reset();
  // The same target, its streams opened with presence=1; getters (pids) stay the target's.
  const measured: RunningTarget = hooks
    ? Object.create(target, { protocol: { value: 'herald-presence', enumerable: true } })
    : target;
  const result = await measureFanout(measured, params, context);
  if (app === undefined) return { ...result, metrics: { ...result.metrics, clients: params.subscribers } };
  const problems = [...result.problems];
  // Told of every subscriber's open before the window; nothing per event.
  if (app.counts.opened < params.subscribers) {
    problems.push(`the app was told of ${app.counts.opened} of ${params.subscribers} streams opened`);
  }
  return {
    ...result,
    problems,
    metrics: {
      ...result.metrics,
      clients: params.subscribers,
      appSaw: `${app.counts.opened} opened notices`,
    },
    details: { ...result.details, app: { ...app.counts } },
  };
}

export const hooks: Scenario = {
  name: 'hooks',
  title: 'S10 hooks and presence: stream churn with each, and delivery with them on and off',
  description:
    `Churn: ${LOOPS} clients each open a stream of one topic, read herald.connected, close it and open the next; ` +
    'streams opened and closed per second and per server CPU-second, and the time from the connection attempt to ' +
    'herald.connected (a closed loop: mostly the queue of opens). Plain (open mode); with --webhook-url (every open ' +
    'and close a signed notice, which the app checks and counts); with --auth-url asked once per client (its answer ' +
    'cached per session cookie) or at every open (a new session each time); and the cached auth with presence=1, each ' +
    'client its own subject, so every open and close is a join or leave told to every presence stream on the topic. ' +
    'Delivery: S1 at 100/s and saturated, 1 000 subscribers on one topic, as S1 runs it and with the webhook on and ' +
    'every stream opened with presence=1. The app (auth answers, webhook sink) is a node:http server in the ' +
    'benchmark process: App CPU.',
  targets: ['herald'],
  columns: [
    { key: 'clients', label: 'Clients', format: 'int' },
    { key: 'streamsPerSec', label: 'Streams/s', format: 'int' },
    { key: 'streamsPerCpuSec', label: 'Streams/CPU-s', format: 'int' },
    { key: 'connectedP50Ms', label: 'Open p50 ms', format: 'ms' },
    { key: 'connectedP99Ms', label: 'Open p99 ms', format: 'ms' },
    { key: 'appSaw', label: 'App saw', format: 'text' },
    { key: 'deliveredPct', label: 'Delivered', format: 'percent' },
    { key: 'deliveriesPerSec', label: 'Deliveries/s', format: 'int' },
    { key: 'deliveriesPerCpuSec', label: 'Deliveries/CPU-s', format: 'int' },
    { key: 'p99Ms', label: 'Delivery p99 ms', format: 'ms' },
    { key: 'serverCpuPct', label: 'Server CPU', format: 'percent' },
    { key: 'appCpuPct', label: 'App CPU', format: 'percent' },
    { key: 'clientCpuPct', label: 'Load-gen CPU', format: 'percent' },
    { key: 'foreignCpuPct', label: 'Other CPU', format: 'percent' },
  ],
  plan(options: PlanOptions): readonly ScenarioCase[] {
    // Short windows: ten cases in about two minutes.
    const durationS = options.durationS ?? (options.quick ? 1.5 : 5);
    const warmupS = options.warmupS ?? (options.quick ? 0.5 : 1);
    const churn: ChurnParams = { loops: options.quick ? QUICK_LOOPS : LOOPS, durationS, warmupS };
    const cases: ScenarioCase[] = CHURN_VARIANTS.map((variant) => ({
      label: variant.label,
      params: {
        ...churn,
        hooks:
          [
            variant.webhook && 'webhook',
            variant.auth && `auth-url (${variant.cookies})`,
            variant.presence && 'presence=1',
          ]
            .filter(Boolean)
            .join(', ') || 'none',
      },
      server: {},
      prepare: () => hookSettings(variant.webhook, variant.auth),
      run: (target, context) => measureChurn(target, variant, churn, context),
    }));
    const rates = options.rate !== undefined ? [options.rate] : [DEFAULT_RATE, 0];
    for (const rate of rates) {
      const params = fanoutParams({ ...options, durationS, warmupS }, rate);
      for (const on of [false, true]) {
        cases.push({
          label: `${rateLabel(rate)}, ${on ? 'webhook + presence=1' : 'hooks off'}`,
          params: { ...params, hooks: on ? 'webhook, presence=1' : 'none' },
          server: {},
          prepare: () => hookSettings(on, false),
          run: (target, context) => measureDelivery(target, params, on, context),
        });
      }
    }
    return cases;
  },
};
