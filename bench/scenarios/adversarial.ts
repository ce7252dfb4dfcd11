import { readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { latencyHistogram, summarizeLatency } from '../histogram.ts';
import { nowMs } from '../payload.ts';
import { cpuSeconds, machineBusySeconds } from '../proc-stats.ts';
import type {
  CaseResult,
  Column,
  MetricValue,
  PlanOptions,
  RunContext,
  Scenario,
  ScenarioCase,
} from '../scenario.ts';
import type { Endpoint, RunningTarget } from '../targets.ts';

/**
 * S7, adversarial: what a few anonymous clients can make one Herald do (issue 12, "matching cost
 * is unbounded"). Anonymous streams hold as many URI templates as a stream may, each with as many
 * variables as a template may, of the shape that costs the matcher most (`{?a:99,b:99,…}`, all
 * distinct, so none is shared and none has a literal the index could file it under); then one
 * publisher sends events with as many topics as an event may, each as long as a topic may be,
 * chosen so that every template runs its matcher to the last character before it fails. Meanwhile
 * a control stream receives a control publisher's events (20/s) and a probe asks `/healthz` every
 * 10 ms, open loop (each probe from its own scheduled time, so a stall counts once per probe it
 * delays, not once). The `deep-json` and `wide-json` cases send one 4 MB JSON body each: nested as
 * deep as its size allows, and holding as many items.
 *
 * The event loop is measured inside the server (`loop-monitor.ts`: how late a 5 ms timer fires).
 * Targets: no stall over 50 ms, `/healthz` p99 under 100 ms, the control stream loses nothing.
 */

export const ADVERSARIAL_TARGETS = { stallMs: 50, healthP99Ms: 100 } as const;
const CONTROL_TOPIC = 'bench/control';
const CONTROL_INTERVAL_MS = 50;
const PROBE_INTERVAL_MS = 10;
const SETTLE_MS = 1_000;
/** Above this share of a core used by other processes, the figures are flagged as pessimistic. */
const FOREIGN_CPU_WARNING = 0.1;
const DRAIN_TIMEOUT_MS = 120_000;
const REQUEST_TIMEOUT_MS = 180_000;
/** `Herald`'s limits on an event: topics, and characters per topic. */
const TOPICS_PER_EVENT = 32;
const TOPIC_LENGTH = 1024;
const LETTERS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';
/** The JSON bodies' size: within Herald's default limit of 4 MiB. */
const JSON_BODY_BYTES = 4_000_000;

interface AttackParams {
  /** Anonymous attacking streams. */
  readonly streams: number;
  readonly templatesPerStream: number;
  readonly variablesPerTemplate: number;
  /** Prefix modifiers (`a:99`): the costliest shape, when the request line has room for it. */
  readonly prefixModifiers: boolean;
  /** Publishes of TOPICS_PER_EVENT topics of TOPIC_LENGTH characters, one after the other. */
  readonly publishes: number;
  /**
   * One publish body of about 4 MB (within the default 4 MiB limit) sent after the events:
   * `deep` nests arrays two million levels (`[[[…]]]`), `wide` holds 1.4 million empty arrays
   * (`[[],[],…]`); `none` sends none.
   */
  readonly jsonBody: 'none' | 'deep' | 'wide';
}

/**
 * Template `k` of a run: `{?a:P,b:Q,c:99,…}`, distinct through the first two prefix lengths
 * (or, without modifiers, through which letter comes first). Sent unencoded in the query but for
 * what must be (`URLSearchParams` reads `{`, `}`, `?`, `,` and `:` as they are), as a browser's
 * address bar would, so 100 of them of 32 variables fit Node's 16 KiB request head.
 */
function template(params: AttackParams, k: number): string {
  const names = LETTERS.slice(0, params.variablesPerTemplate).split('');
  if (!params.prefixModifiers) {
    // A rotation and a swap make distinct orders: 52 × 51 of them.
    const shift = k % names.length;
    const rotated = [...names.slice(shift), ...names.slice(0, shift)];
    const swap = 1 + (Math.floor(k / names.length) % (names.length - 1));
    [rotated[0], rotated[swap]] = [rotated[swap] as string, rotated[0] as string];
    return `{?${rotated.join(',')}}`;
  }
  return `{?${names
    .map((name, i) => `${name}:${i === 0 ? 1 + (k % 99) : i === 1 ? 1 + (Math.floor(k / 99) % 99) : 99}`)
    .join(',')}}`;
}

/**
 * The attack's topics: `?` then a unit repeated to TOPIC_LENGTH, a serial number and a `!` that
 * only the last step of every template rejects. Each publish has its own, so nothing is cached.
 */
function attackTopic(serial: number): string {
  const end = `${String(serial).padStart(4, '0')}!`;
  return `?${'==a'.repeat(TOPIC_LENGTH)}`.slice(0, TOPIC_LENGTH - end.length) + end;
}

const streamQuery = (selectors: readonly string[]) =>
  selectors.map((selector) => `topic=${selector.replace(/[%&#+ ]/g, encodeURIComponent)}`).join('&');

interface OpenStream {
  readonly status: number;
  /** The problem document's `code` and `detail` when it was refused. */
  readonly refusal?: string;
  close(): void;
}

/**
 * Opens `/v1/events?<query>`; resolves once the first event (`herald.connected`: the stream is
 * registered) or a refusal arrives. `onData` gets each later event's data line.
 */
function openStream(
  to: Endpoint,
  query: string,
  onData?: (data: string, arrivedAt: number) => void,
): Promise<OpenStream> {
  return new Promise((resolve, reject) => {
    const request = http.get(
      { host: to.host, port: to.port, path: `/v1/events?${query}`, agent: false },
      (response) => {
        const status = response.statusCode ?? 0;
        let text = '';
        response.setEncoding('utf8');
        if (status !== 200) {
          response.on('data', (chunk: string) => {
            text += chunk;
          });
          response.on('end', () => {
            let refusal = text.slice(0, 200);
            try {
              const problem = JSON.parse(text) as { code?: string; detail?: string };
              refusal = `${problem.code}: ${problem.detail}`;
            } catch {}
            resolve({ status, refusal, close: () => request.destroy() });
          });
          return;
        }
        let ready = false;
        response.on('data', (chunk: string) => {
          text += chunk;
          for (let end = text.indexOf('\n\n'); end !== -1; end = text.indexOf('\n\n')) {
            const block = text.slice(0, end);
            text = text.slice(end + 2);
            if (!ready) {
              if (block.includes('event: herald.connected')) {
                ready = true;
                resolve({ status, close: () => request.destroy() });
              }
              continue;
            }
            if (block.includes('\nevent:') || block.startsWith('event:')) continue;
            const data = /(?:^|\n)data: ?([^\n]*)/.exec(block)?.[1];
            if (data !== undefined) onData?.(data, nowMs());
          }
        });
        response.on('error', () => {});
      },
    );
    request.on('error', (error) => reject(error));
  });
}

interface Answer {
  readonly status: number;
  readonly body: string;
  readonly ms: number;
}

function post(to: Endpoint, agent: http.Agent | false, path: string, body: string): Promise<Answer> {
  const started = nowMs();
  return new Promise((resolve, reject) => {
    const request = http.request(
      {
        host: to.host,
        port: to.port,
        path,
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        timeout: REQUEST_TIMEOUT_MS,
      },
      (response) => {
        let text = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => {
          text += chunk;
        });
        response.on('end', () =>
          resolve({ status: response.statusCode ?? 0, body: text, ms: nowMs() - started }),
        );
        response.on('error', reject);
      },
    );
    request.on('timeout', () =>
      request.destroy(new Error(`no answer within ${REQUEST_TIMEOUT_MS / 1000} s`)),
    );
    request.on('error', reject);
    request.end(body);
  });
}

/** `/healthz` every PROBE_INTERVAL_MS, open loop: latency from each probe's scheduled time. */
class HealthProbe {
  private readonly histogram = latencyHistogram();
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  private timer: NodeJS.Timeout | undefined;
  private outstanding = 0;
  failures = 0;
  private failure: string | undefined;
  private readonly to: Endpoint;

  constructor(to: Endpoint) {
    this.to = to;
  }

  start(): void {
    let next = nowMs();
    this.timer = setInterval(() => {
      // Every probe that was due by now, each from its own due time.
      for (const now = nowMs(); next <= now; next += PROBE_INTERVAL_MS) this.probe(next);
    }, PROBE_INTERVAL_MS / 2);
  }

  private probe(due: number): void {
    this.outstanding++;
    const request = http.get(
      { host: this.to.host, port: this.to.port, path: '/healthz', agent: this.agent },
      (response) => {
        response.resume();
        response.on('end', () => {
          this.outstanding--;
          if (response.statusCode !== 200) this.fail(`HTTP ${response.statusCode}`);
          this.histogram.recordValue(Math.max(1, Math.round((nowMs() - due) * 1000)));
        });
      },
    );
    request.on('error', (error) => {
      this.outstanding--;
      this.fail(error.message);
    });
  }

  private fail(reason: string): void {
    this.failures++;
    this.failure ??= reason;
  }

  /** Stops probing, waits for the probes under way (at most 10 s), and sums them up. */
  async stop(): Promise<ReturnType<typeof summarizeLatency> & { failure: string | undefined }> {
    clearInterval(this.timer);
    for (let waited = 0; this.outstanding > 0 && waited < 10_000; waited += 50) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    this.agent.destroy();
    const summary = summarizeLatency(this.histogram);
    this.histogram.destroy();
    return { ...summary, failure: this.failure };
  }
}

/**
 * Events to CONTROL_TOPIC every CONTROL_INTERVAL_MS, numbered from 1, open loop (a publish does
 * not wait for the one before, as independent publishers would not); and what came back. Those
 * publishes overlap, so the hub may accept them in any order: what is checked is that every
 * accepted event arrived, once.
 */
class Control {
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
  private timer: NodeJS.Timeout | undefined;
  published = 0;
  private readonly pending = new Set<Promise<void>>();
  readonly errors: string[] = [];
  /** Events answered 202. */
  readonly accepted = new Set<number>();
  readonly received = new Set<number>();
  duplicates = 0;
  maxLatencyMs = 0;
  private stream: OpenStream | undefined;
  private readonly to: Endpoint;

  constructor(to: Endpoint) {
    this.to = to;
  }

  async open(): Promise<void> {
    this.stream = await openStream(this.to, streamQuery([CONTROL_TOPIC]), (data, arrivedAt) => {
      const [seq = 0, sentAt = arrivedAt] = data.split(' ').map(Number);
      if (this.received.has(seq)) this.duplicates++;
      this.received.add(seq);
      this.maxLatencyMs = Math.max(this.maxLatencyMs, arrivedAt - sentAt);
    });
    if (this.stream.status !== 200) throw new Error(`the control stream was refused: ${this.stream.refusal}`);
  }

  start(): void {
    this.timer = setInterval(() => {
      const seq = ++this.published;
      const body = JSON.stringify({ topic: CONTROL_TOPIC, data: `${seq} ${nowMs()}` });
      const sent = post(this.to, this.agent, '/v1/publish', body).then(
        (answer) => {
          if (answer.status === 202) this.accepted.add(seq);
          else this.errors.push(`event ${seq}: HTTP ${answer.status} ${answer.body.slice(0, 120)}`);
        },
        (error: unknown) => {
          this.errors.push(`event ${seq}: ${error instanceof Error ? error.message : String(error)}`);
        },
      );
      this.pending.add(sent);
      void sent.finally(() => this.pending.delete(sent));
    }, CONTROL_INTERVAL_MS);
  }

  /** Accepted events that have not arrived. */
  missing(): number {
    let missing = 0;
    for (const seq of this.accepted) if (!this.received.has(seq)) missing++;
    return missing;
  }

  /** Stops publishing; resolves once every accepted event arrived, or false after the timeout. */
  async stop(): Promise<boolean> {
    clearInterval(this.timer);
    await Promise.all(this.pending);
    const deadline = nowMs() + DRAIN_TIMEOUT_MS;
    while (this.missing() > 0 && nowMs() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    return this.missing() === 0;
  }

  close(): void {
    this.stream?.close();
    this.agent.destroy();
  }
}

/** The longest event-loop delay the server reported between `from` and `to` (ms since the epoch). */
function longestStall(file: string, from: number, to: number): number | null {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return null;
  }
  let longest: number | null = null;
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const { t, maxMs } = JSON.parse(line) as { t: number; maxMs: number };
    // A line is written when its 100 ms are over, late by as long as the loop stalled: a line
    // written in the window counts, and so does one written after it for a stall that began in it.
    if (t >= from && t - maxMs <= to) longest = Math.max(longest ?? 0, maxMs);
  }
  return longest;
}

async function measure(
  target: RunningTarget,
  params: AttackParams,
  loopFile: string,
  context: RunContext,
): Promise<CaseResult> {
  const problems: string[] = [];
  const to = target.subscribeTo;
  const attackers: OpenStream[] = [];
  const control = new Control(to);
  const probe = new HealthProbe(to);
  const metrics: Record<string, MetricValue> = {};
  try {
    const setupStart = Date.now();
    let refused: string | undefined;
    for (let s = 0; s < params.streams; s++) {
      const selectors = Array.from({ length: params.templatesPerStream }, (_, i) =>
        template(params, s * params.templatesPerStream + i),
      );
      const stream = await openStream(to, streamQuery(selectors));
      if (stream.status === 200) attackers.push(stream);
      else refused ??= `HTTP ${stream.status} ${stream.refusal}`;
    }
    metrics.attackers = `${attackers.length}/${params.streams}`;
    metrics.refusal = refused ?? null;
    context.log(
      `${attackers.length} of ${params.streams} attacking streams open` +
        (refused === undefined ? '' : `; refused with ${refused}`),
    );
    metrics.setupStallMs = longestStall(loopFile, setupStart, Date.now());

    await control.open();
    // Built before the window: 1.4 million `[]` joined take this process over 100 ms, which the
    // /healthz probe, running here too, would count against the server.
    const jsonBody =
      params.jsonBody === 'none'
        ? undefined
        : params.jsonBody === 'deep'
          ? '['.repeat(JSON_BODY_BYTES / 2) + ']'.repeat(JSON_BODY_BYTES / 2)
          : `[${Array(Math.floor(JSON_BODY_BYTES / 3))
              .fill('[]')
              .join(',')}]`;
    const windowStart = Date.now();
    const cpuStart = cpuSeconds(target.pids);
    const machineStart = machineBusySeconds();
    const ownStart = process.cpuUsage();
    probe.start();
    control.start();
    await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));

    let slowestPublish = 0;
    for (let p = 0; p < params.publishes; p++) {
      const topics = Array.from({ length: TOPICS_PER_EVENT }, (_, i) =>
        attackTopic(p * TOPICS_PER_EVENT + i),
      );
      const answer = await post(to, false, '/v1/publish', JSON.stringify({ topic: topics, data: 'x' }));
      if (answer.status !== 202)
        problems.push(`attack publish ${p + 1} answered HTTP ${answer.status}: ${answer.body.slice(0, 200)}`);
      slowestPublish = Math.max(slowestPublish, answer.ms);
      context.log(
        `attack publish ${p + 1}/${params.publishes}: HTTP ${answer.status} in ${answer.ms.toFixed(0)} ms`,
      );
    }
    metrics.publishMs = params.publishes > 0 ? slowestPublish : null;

    if (jsonBody !== undefined) {
      const answer = await post(to, false, '/v1/publish', jsonBody);
      let code = '';
      try {
        code = ` ${(JSON.parse(answer.body) as { code?: string }).code ?? ''}`;
      } catch {}
      metrics.jsonBody = `HTTP ${answer.status}${code} in ${answer.ms.toFixed(0)} ms`;
      context.log(`${params.jsonBody} JSON body: HTTP ${answer.status}${code} in ${answer.ms.toFixed(0)} ms`);
      if (answer.status < 400 || answer.status >= 500)
        problems.push(`the ${params.jsonBody} JSON body answered HTTP ${answer.status}`);
    }
    // The control stream goes on for a moment after the attack: what it queued must come out.
    await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
    const drained = await control.stop();
    const health = await probe.stop();
    const windowEnd = Date.now();
    const cpu = cpuSeconds(target.pids) - cpuStart;
    const own = process.cpuUsage(ownStart);
    const wallS = (windowEnd - windowStart) / 1000;
    // Whatever else ran meanwhile: the machine's busy time minus the server's and this process's.
    const foreignCpuS = Math.max(
      0,
      machineBusySeconds() - machineStart - cpu - (own.user + own.system) / 1e6,
    );
    const warnings: string[] = [];
    if (foreignCpuS / wallS > FOREIGN_CPU_WARNING) {
      warnings.push(
        `other processes used ${Math.round((100 * foreignCpuS) / wallS)} % of a core during the window: ` +
          'the machine was not quiet, so the stalls and /healthz times are pessimistic',
      );
    }

    const stall = longestStall(loopFile, windowStart, windowEnd);
    const accepted = control.accepted.size;
    const missing = control.missing();
    Object.assign(metrics, {
      stallMs: stall,
      healthP50Ms: health.p50Ms,
      healthP99Ms: health.p99Ms,
      healthMaxMs: health.maxMs,
      controlPublished: control.published,
      controlDeliveredPct: accepted === 0 ? null : (accepted - missing) / accepted,
      controlErrors: control.errors.length,
      controlMaxMs: control.maxLatencyMs,
      serverCpuSec: cpu,
      foreignCpuPct: foreignCpuS / wallS,
    });
    if (stall === null)
      problems.push('the server reported no event-loop delays (loop-monitor.ts not loaded?)');
    else if (stall > ADVERSARIAL_TARGETS.stallMs)
      problems.push(
        `the event loop stalled ${stall.toFixed(0)} ms (target: under ${ADVERSARIAL_TARGETS.stallMs} ms)`,
      );
    if ((health.p99Ms ?? 0) >= ADVERSARIAL_TARGETS.healthP99Ms)
      problems.push(
        `/healthz p99 was ${health.p99Ms?.toFixed(0)} ms (target: under ${ADVERSARIAL_TARGETS.healthP99Ms} ms)`,
      );
    if (probe.failures > 0) problems.push(`${probe.failures} /healthz probes failed: ${health.failure}`);
    if (control.errors.length > 0)
      problems.push(`${control.errors.length} control publishes failed, e.g. ${control.errors[0]}`);
    if (!drained || control.duplicates > 0)
      problems.push(
        `the control stream lost ${missing} of ${accepted} accepted events` +
          (control.duplicates > 0 ? ` and got ${control.duplicates} twice` : ''),
      );
    return { metrics, problems, warnings, details: { health } };
  } finally {
    for (const stream of attackers) stream.close();
    control.close();
  }
}

const COLUMNS: readonly Column[] = [
  { key: 'attackers', label: 'Attacking streams', format: 'text' },
  { key: 'publishMs', label: 'Attack publish ms', format: 'ms' },
  { key: 'jsonBody', label: 'JSON body', format: 'text' },
  { key: 'stallMs', label: 'Max loop stall ms', format: 'ms' },
  { key: 'healthP99Ms', label: '/healthz p99 ms', format: 'ms' },
  { key: 'healthMaxMs', label: '/healthz max ms', format: 'ms' },
  { key: 'controlDeliveredPct', label: 'Control delivered', format: 'percent' },
  { key: 'controlMaxMs', label: 'Control max ms', format: 'ms' },
  { key: 'controlErrors', label: 'Control publish errors', format: 'int' },
  { key: 'serverCpuSec', label: 'Server CPU s', format: 'fixed1' },
  { key: 'foreignCpuPct', label: 'Other CPU', format: 'percent' },
];

export const adversarial: Scenario = {
  name: 'adversarial',
  title: 'S7 adversarial: the costliest templates and topics the limits allow',
  description:
    'Anonymous streams hold the most URI templates a stream may, each of the most variables a template ' +
    'may, all distinct and of the shape that costs the matcher most; one publisher then sends events of ' +
    'the most topics an event may, each of the longest a topic may be, that every template tests to its ' +
    'last character. A control stream takes 20 events/s from a control publisher and a probe asks ' +
    '/healthz every 10 ms (open loop) all along. The case `issue` is the attack of issue 12 as reported ' +
    '(10 streams × 100 templates × 32 variables), which the limits now refuse; `limits` is the same at ' +
    'the limits (10 × 32 × 16); `deep-json` sends one 4 MB publish body of arrays nested two million ' +
    'deep, `wide-json` one of 1.4 million empty arrays. The event loop is measured inside the server (how late a 5 ms timer fires). Targets: no stall over ' +
    '50 ms, /healthz p99 under 100 ms, the control stream loses nothing.',
  columns: COLUMNS,
  targets: ['herald'],
  plan(options: PlanOptions): readonly ScenarioCase[] {
    const streams = options.subscribers ?? 10;
    const cases: [string, AttackParams][] = [
      [
        'issue',
        {
          streams,
          templatesPerStream: 100,
          variablesPerTemplate: 32,
          prefixModifiers: false,
          publishes: 1,
          jsonBody: 'none',
        },
      ],
      [
        'limits',
        {
          streams,
          templatesPerStream: 32,
          variablesPerTemplate: 16,
          prefixModifiers: true,
          publishes: options.quick ? 1 : 3,
          jsonBody: 'none',
        },
      ],
      ...(['deep', 'wide'] as const).map((jsonBody): [string, AttackParams] => [
        `${jsonBody}-json`,
        {
          streams: 0,
          templatesPerStream: 0,
          variablesPerTemplate: 0,
          prefixModifiers: false,
          publishes: 0,
          jsonBody,
        },
      ]),
    ];
    return cases.map(([label, params]) => {
      // Written by the server, so only once the case runs.
      const loopFile = join(tmpdir(), `bench-s7-${process.pid}-${label}.jsonl`);
      return {
        label,
        params: { ...params, prefixModifiers: params.prefixModifiers ? 'yes' : 'no' },
        server: { loopMonitorFile: loopFile },
        run: async (target, context) => {
          try {
            return await measure(target, params, loopFile, context);
          } finally {
            rmSync(loopFile, { force: true });
          }
        },
      };
    });
  },
};
