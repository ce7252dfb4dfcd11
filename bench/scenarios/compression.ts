import { type ClientRequest, request } from 'node:http';
import type { Transform } from 'node:stream';
import zlib from 'node:zlib';
import { cpuSeconds, machineBusySeconds, rssBytes } from '../proc-stats.ts';
import type { CaseResult, PlanOptions, RunContext, Scenario, ScenarioCase } from '../scenario.ts';
import type { RunningTarget } from '../targets.ts';

/**
 * S9, compression: what per-stream compression (`--compression on`) costs and saves. N streams
 * on one topic, each asking for one coding (or none), take one event per publish request at a
 * steady rate, so every flush of every stream compresses one event and flushes it (the case
 * compression does worst in: no batch to share a flush). Figures: bytes on the wire per delivery
 * (the HTTP body as it arrives, chunk framing aside), the server's CPU per delivery, and its
 * memory per stream (RSS with the streams open and events flowing, minus RSS before, ÷ N).
 *
 * Events are JSON like an app's: ~100 bytes (an order's status) or ~2 KB (an order with its
 * lines), varied per event from a fixed seed so a compressor sees what repeats in real traffic
 * (field names, the topic, common values) and not one string sent again. Every stream counts its
 * wire bytes; `SAMPLED` of them also decompress (node:zlib, streaming) and check that every event
 * arrived once, in order; decompressing all of them would make the load generator the bottleneck.
 */

const TOPIC = 'bench/compression';
const SUBSCRIBERS = 500;
const QUICK_SUBSCRIBERS = 100;
/** Events per second: one per publish request, so one per flush. */
const RATE = 40;
const SAMPLED = 10;
const OPEN_TIMEOUT_MS = 60_000;
const DRAIN_MS = 2_000;
/** After the streams open, before memory is read: their opening churn is over. */
const SETTLE_MS = 1_000;

type Coding = 'identity' | 'gzip' | 'deflate' | 'br';
const CODINGS: readonly Coding[] = ['identity', 'gzip', 'deflate', 'br'];

interface CompressionParams {
  readonly coding: Coding;
  readonly payload: 'small' | '2 KB';
  readonly subscribers: number;
  readonly durationS: number;
  readonly warmupS: number;
}

/** A small deterministic PRNG: the same events in every run and every case. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state * 1_664_525 + 1_013_904_223) >>> 0;
    return state / 2 ** 32;
  };
}

const STATUSES = ['created', 'paid', 'packed', 'shipped', 'delivered', 'refunded'];
const PRODUCTS = [
  'Desk lamp',
  'Office chair',
  'Monitor arm',
  'USB-C dock',
  'Keyboard',
  'Mouse pad',
  'Webcam',
];

/** The data of event `seq`: ~100 bytes of JSON, or ~2 KB with the order's lines. */
export function eventData(seq: number, payload: CompressionParams['payload']): Record<string, unknown> {
  const next = random(seq * 7919 + 17);
  const small = {
    seq,
    orderId: `ord_${Math.floor(next() * 1e8)}`,
    status: STATUSES[Math.floor(next() * STATUSES.length)],
    total: Math.round(next() * 100_000) / 100,
    currency: 'EUR',
  };
  if (payload === 'small') return small;
  const lines = [];
  for (let i = 0; i < 13; i++) {
    lines.push({
      sku: `SKU-${Math.floor(next() * 1e6)
        .toString(36)
        .toUpperCase()}`,
      name: PRODUCTS[Math.floor(next() * PRODUCTS.length)],
      quantity: 1 + Math.floor(next() * 5),
      unitPrice: Math.round(next() * 50_000) / 100,
      warehouse: `WH-${Math.floor(next() * 20)}`,
      eta: new Date(1_800_000_000_000 + Math.floor(next() * 1e9)).toISOString(),
    });
  }
  return {
    ...small,
    customer: { id: `cus_${Math.floor(next() * 1e7)}`, tier: next() < 0.2 ? 'gold' : 'standard' },
    lines,
  };
}

/** The `seq` of a decompressed frame of ours, or undefined for any other frame. */
function seqOf(frame: string): number | undefined {
  const at = frame.indexOf('data: {"seq":');
  if (at === -1) return undefined;
  return Number.parseInt(frame.slice(at + 13), 10);
}

interface Stream {
  wire: number;
  plain: number;
  /** The next seq expected, on sampled streams; problems otherwise. */
  expected: number | undefined;
  received: number;
  errors: string[];
  req: ClientRequest;
  encoding: string | undefined;
}

function decoder(coding: string | undefined): Transform | undefined {
  if (coding === 'gzip') return zlib.createGunzip({ flush: zlib.constants.Z_SYNC_FLUSH });
  if (coding === 'deflate') return zlib.createInflate({ flush: zlib.constants.Z_SYNC_FLUSH });
  if (coding === 'br') return zlib.createBrotliDecompress({ flush: zlib.constants.BROTLI_OPERATION_FLUSH });
  return undefined;
}

function openStream(target: RunningTarget, coding: Coding, sampled: boolean): Promise<Stream> {
  const { host, port } = target.subscribeTo;
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { accept: 'text/event-stream' };
    if (coding !== 'identity') headers['accept-encoding'] = coding;
    const req = request({
      host,
      port,
      path: `/v1/events?topic=${encodeURIComponent(TOPIC)}`,
      headers,
      agent: false,
    });
    const stream: Stream = {
      wire: 0,
      plain: 0,
      expected: undefined,
      received: 0,
      errors: [],
      req,
      encoding: undefined,
    };
    req.on('response', (res) => {
      if (res.statusCode !== 200) {
        reject(new Error(`a stream was answered ${res.statusCode}`));
        res.resume();
        return;
      }
      stream.encoding = res.headers['content-encoding'];
      res.on('data', (chunk: Buffer) => {
        stream.wire += chunk.byteLength;
      });
      res.on('error', () => {});
      if (!sampled) {
        resolve(stream);
        return;
      }
      let text = '';
      const onText = (chunk: Buffer) => {
        stream.plain += chunk.byteLength;
        text += chunk.toString('utf8');
        let end = text.indexOf('\n\n');
        while (end !== -1) {
          const seq = seqOf(text.slice(0, end));
          text = text.slice(end + 2);
          end = text.indexOf('\n\n');
          if (seq === undefined) continue;
          if (stream.expected !== undefined && seq !== stream.expected) {
            stream.errors.push(`expected event ${stream.expected}, got ${seq}`);
          }
          stream.expected = seq + 1;
          stream.received++;
        }
      };
      const unzip = decoder(stream.encoding);
      if (unzip === undefined) res.on('data', onText);
      else {
        res.pipe(unzip).on('data', onText);
        unzip.on('error', (error) => stream.errors.push(`decompressing: ${error.message}`));
      }
      resolve(stream);
    });
    req.on('error', reject);
    req.end();
  });
}

async function publishOne(
  target: RunningTarget,
  seq: number,
  payload: CompressionParams['payload'],
): Promise<void> {
  const { host, port } = target.publishTo;
  const response = await fetch(`http://${host}:${port}/v1/publish`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ topic: TOPIC, type: 'order.updated', data: eventData(seq, payload) }),
  });
  if (response.status !== 202)
    throw new Error(`publish answered ${response.status}: ${await response.text()}`);
  await response.arrayBuffer();
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Publishes at `RATE` from `firstSeq` for `seconds`, paced from the start; returns the next seq. */
async function publishFor(
  target: RunningTarget,
  firstSeq: number,
  seconds: number,
  payload: CompressionParams['payload'],
): Promise<number> {
  const start = performance.now();
  const count = Math.round(seconds * RATE);
  for (let i = 0; i < count; i++) {
    const due = start + (i * 1000) / RATE;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    await publishOne(target, firstSeq + i, payload);
  }
  return firstSeq + count;
}

async function measureCompression(
  target: RunningTarget,
  params: CompressionParams,
  context: RunContext,
): Promise<CaseResult> {
  const problems: string[] = [];
  const warnings: string[] = [];
  const rssBefore = rssBytes(target.pids);
  context.log(`opening ${params.subscribers} streams (${params.coding})`);
  const streams: Stream[] = [];
  try {
    const opening = Promise.all(
      Array.from({ length: params.subscribers }, (_, i) => openStream(target, params.coding, i < SAMPLED)),
    );
    let timer: NodeJS.Timeout | undefined;
    const opened = await Promise.race([
      opening,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error('the streams did not all open in time')), OPEN_TIMEOUT_MS);
      }),
    ]).finally(() => clearTimeout(timer));
    streams.push(...opened);
    await sleep(SETTLE_MS);
    const rssOpen = rssBytes(target.pids);
    const expectedEncoding = params.coding === 'identity' ? undefined : params.coding;
    const wrong = streams.filter((stream) => stream.encoding !== expectedEncoding).length;
    if (wrong > 0)
      problems.push(`${wrong} streams came back with another Content-Encoding than ${params.coding}`);

    context.log(`warmup, ${params.warmupS} s`);
    let seq = await publishFor(target, 1, params.warmupS, params.payload);
    await sleep(500);
    const firstMeasured = seq;
    const wireStart = streams.reduce((sum, stream) => sum + stream.wire, 0);
    const plainStart = streams.slice(0, SAMPLED).reduce((sum, stream) => sum + stream.plain, 0);
    const cpuStart = cpuSeconds(target.pids);
    const machineStart = machineBusySeconds();
    const clientStart = process.cpuUsage();
    const wallStart = performance.now();
    context.log(`measuring, ${params.durationS} s`);
    seq = await publishFor(target, seq, params.durationS, params.payload);
    await sleep(DRAIN_MS);
    const serverCpuS = cpuSeconds(target.pids) - cpuStart;
    const wallS = (performance.now() - wallStart) / 1000;
    const machineS = machineBusySeconds() - machineStart;
    const clientUsage = process.cpuUsage(clientStart);
    const clientS = (clientUsage.user + clientUsage.system) / 1e6;
    const events = seq - firstMeasured;
    const deliveries = events * params.subscribers;
    const wire = streams.reduce((sum, stream) => sum + stream.wire, 0) - wireStart;
    const sampledPlain =
      streams.slice(0, SAMPLED).reduce((sum, stream) => sum + stream.plain, 0) - plainStart;
    const sampledWire = streams.slice(0, SAMPLED).reduce((sum, stream) => sum + stream.wire, 0);
    const rssWith = rssBytes(target.pids);
    for (const stream of streams.slice(0, SAMPLED)) {
      if (stream.received !== seq - 1)
        problems.push(`a sampled stream got ${stream.received} of ${seq - 1} events`);
      for (const error of stream.errors.slice(0, 3)) problems.push(error);
    }
    // The load generator's own work is part of the machine's busy time, not the server's.
    const foreignPct = Math.max(0, machineS - serverCpuS - clientS) / wallS;
    if (foreignPct > 0.1) {
      warnings.push(
        `other processes used ${Math.round(foreignPct * 100)} % of a core during the window: the machine was not quiet`,
      );
    }
    const exit = target.exitReason();
    if (exit !== undefined) problems.push(`${exit}; its output:\n${target.output()}`);
    return {
      metrics: {
        subscribers: params.subscribers,
        events,
        deliveries,
        wireBytesPerDelivery: deliveries > 0 ? wire / deliveries : null,
        plainBytesPerDelivery: events > 0 ? sampledPlain / (events * SAMPLED) : null,
        wirePct: sampledPlain > 0 ? wire / deliveries / (sampledPlain / (events * SAMPLED)) : null,
        cpuMicrosPerDelivery: deliveries > 0 ? (serverCpuS / deliveries) * 1e6 : null,
        deliveriesPerCpuSec: serverCpuS > 0 ? deliveries / serverCpuS : null,
        serverCpuPct: serverCpuS / wallS,
        kibPerStream: (rssWith - rssBefore) / params.subscribers / 1024,
        kibPerIdleStream: (rssOpen - rssBefore) / params.subscribers / 1024,
        clientCpuPct: clientS / wallS,
        foreignCpuPct: foreignPct,
      },
      problems,
      warnings,
      details: { wire, sampledPlain, sampledWire, rssBefore, rssOpen, rssWith, serverCpuS, wallS },
    };
  } finally {
    for (const stream of streams) stream.req.destroy();
  }
}

export const compression: Scenario = {
  name: 'compression',
  title: 'S9 compression: bytes on the wire and server CPU per delivery, per coding',
  description:
    `${SUBSCRIBERS} streams on one topic, each asking for one coding (identity: none), ${RATE} events/s published ` +
    'one per request, so each flush compresses and flushes one event per stream. Events are JSON of ~100 bytes or ' +
    '~2 KB, varied per event. Wire bytes: the response body as received (compressed), per delivery; plain: the ' +
    `SSE frames it decompresses to (measured on ${SAMPLED} streams, which also check that every event arrived once, ` +
    'in order). KiB/stream: server RSS with the streams open and events flowing, minus before, ÷ streams; ' +
    'before any event: the same once the streams are open (a gzip or deflate stream makes no compressor until busy). ' +
    'Herald runs with --compression on in every case; identity streams are the ones that did not ask.',
  targets: ['herald'],
  columns: [
    { key: 'subscribers', label: 'Streams', format: 'int' },
    { key: 'deliveries', label: 'Deliveries', format: 'int' },
    { key: 'plainBytesPerDelivery', label: 'SSE bytes/delivery', format: 'fixed1' },
    { key: 'wireBytesPerDelivery', label: 'Wire bytes/delivery', format: 'fixed1' },
    { key: 'wirePct', label: 'Wire ÷ SSE', format: 'percent' },
    { key: 'cpuMicrosPerDelivery', label: 'Server CPU µs/delivery', format: 'fixed1' },
    { key: 'deliveriesPerCpuSec', label: 'Deliveries/CPU-s', format: 'int' },
    { key: 'serverCpuPct', label: 'Server CPU', format: 'percent' },
    { key: 'kibPerStream', label: 'KiB/stream', format: 'fixed1' },
    { key: 'kibPerIdleStream', label: 'KiB/stream before any event', format: 'fixed1' },
    { key: 'clientCpuPct', label: 'Load-gen CPU', format: 'percent' },
    { key: 'foreignCpuPct', label: 'Other CPU', format: 'percent' },
  ],
  plan(options: PlanOptions): readonly ScenarioCase[] {
    const durationS = options.durationS ?? (options.quick ? 1.5 : 10);
    const warmupS = options.warmupS ?? (options.quick ? 0.5 : 2);
    const subscribers = options.subscribers ?? (options.quick ? QUICK_SUBSCRIBERS : SUBSCRIBERS);
    const cases: ScenarioCase[] = [];
    for (const payload of ['small', '2 KB'] as const) {
      for (const coding of CODINGS) {
        const params: CompressionParams = { coding, payload, subscribers, durationS, warmupS };
        cases.push({
          label: `${payload === 'small' ? '~100 B' : '~2 KB'} events, ${coding}`,
          params: { ...params },
          server: { compression: 'on' },
          run: (target, context) => measureCompression(target, params, context),
        });
      }
    }
    return cases;
  },
};
