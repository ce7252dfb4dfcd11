/**
 * Load generator: holds many SSE streams on raw sockets, checks every event's sequence number and
 * records its publish-to-receive latency. Forked by the orchestrator; speaks `messages.ts` over IPC.
 *
 * Raw `net` sockets and a hand-written reader keep the client cheap, so that with a few of these
 * processes the server, not the load generator, is what runs out of CPU.
 */
import net from 'node:net';
import { encodeHistogram, latencyHistogram } from './histogram.ts';
import type { Opened, OpenStreams, SubscriberIn, SubscriberOut } from './messages.ts';
import { nowMs, payloadSentAt, payloadSeq } from './payload.ts';
import { protocolNamed } from './protocols.ts';
import { type SseHandler, SseReader } from './sse-reader.ts';

const PROGRESS_EVERY_MS = 10;
/** A progress message goes out at least this often, changed or not. */
const PROGRESS_KEEPALIVE_MS = 500;
const MAX_ERRORS = 5;
/** Every socket reads into this one: each read is parsed before the next can happen. */
const READ_BUFFER = Buffer.allocUnsafe(256 * 1024);

const histogram = latencyHistogram();
const streams: Stream[] = [];
const errors = new Set<string>();
let measureFrom = Number.POSITIVE_INFINITY;
let cpuAtMeasure = process.cpuUsage();
let quitting = false;
const totals = { delivered: 0, missing: 0, duplicates: 0, other: 0, negative: 0, closed: 0, lastArrival: 0 };

function send(message: SubscriberOut): void {
  if (process.connected) process.send?.(message);
}

function noteError(message: string): void {
  if (errors.size < MAX_ERRORS) errors.add(message);
}

/** One SSE stream: its socket, its reader, and how far it got. */
class Stream implements SseHandler {
  /** With one lane, the last seq received; with several, see `lanes`. */
  lastSeq = 0;
  /**
   * With several lanes (publishers whose events interleave): each lane's last seq; seq g is lane
   * `(g - 1) % n`'s, and a lane's events are `n` apart. Undefined with one.
   */
  private readonly lanes: number[] | undefined;
  ready = false;
  open = true;
  private settled = false;
  private readonly socket: net.Socket;
  private readonly reader: SseReader;
  private readonly readyOnHead: boolean;
  private readonly onSettled: (ok: boolean) => void;

  constructor(
    host: string,
    port: number,
    request: string,
    readyOnHead: boolean,
    onSettled: (ok: boolean) => void,
    localAddress: string | undefined,
    afterSeq: number,
    lanes: number,
  ) {
    this.lastSeq = afterSeq;
    // Lane k's seqs are k + 1, k + 1 + n, …: it has "received" its last one up to `afterSeq`
    // (k + 1 - n when that is 0).
    if (lanes > 1) {
      this.lanes = Array.from(
        { length: lanes },
        (_, k) => afterSeq - ((((afterSeq - 1 - k) % lanes) + lanes) % lanes),
      );
    }
    this.readyOnHead = readyOnHead;
    this.onSettled = onSettled;
    this.reader = new SseReader(this);
    // `onread` reads into one shared buffer, without a Buffer and a stream 'data' event per read.
    const socket = net.connect({
      host,
      port,
      noDelay: true,
      onread: { buffer: READ_BUFFER, callback: this.read },
      ...(localAddress !== undefined && { localAddress }),
    });
    this.socket = socket;
    socket.once('connect', () => socket.write(request));
    socket.on('error', (error) => this.fail(error.message));
    socket.once('close', () => {
      if (!quitting && this.ready && this.open) {
        totals.closed++;
        noteError(this.reader.ended ? 'the server ended a stream' : 'a stream was closed');
      }
      this.open = false;
      this.settle(false);
    });
  }

  /** `onread` callback; returning false would pause the socket. */
  private readonly read = (bytes: number, buffer: Uint8Array): boolean => {
    const arrivedAt = nowMs();
    try {
      this.reader.feed((buffer as Buffer).toString('latin1', 0, bytes), arrivedAt);
    } catch (error) {
      this.fail(`bad response: ${error instanceof Error ? error.message : String(error)}`);
    }
    return true;
  };

  onHead(status: number, head: string): void {
    if (status !== 200) this.fail(`HTTP ${status}: ${head.split('\r\n', 1)[0]}`);
    else if (this.readyOnHead) this.settle(true);
  }

  onBlock(data: string | undefined, arrivedAt: number): void {
    if (!this.settled) this.settle(true);
    if (data === undefined || !this.ready) return;
    const seq = payloadSeq(data);
    if (Number.isNaN(seq)) {
      totals.other++;
      return;
    }
    if (this.lanes === undefined) {
      const last = this.lastSeq;
      if (seq <= last) {
        totals.duplicates++;
        return;
      }
      if (seq > last + 1) totals.missing += seq - last - 1;
      this.lastSeq = seq;
    } else if (!this.laneSeq(seq, this.lanes)) return;
    if (seq < measureFrom) return;
    totals.delivered++;
    let micros = Math.round((arrivedAt - payloadSentAt(data)) * 1000);
    if (micros < 0) {
      totals.negative++;
      micros = 0;
    }
    histogram.recordValue(micros);
    if (arrivedAt > totals.lastArrival) totals.lastArrival = arrivedAt;
  }

  /** Checks `seq` against its lane; false for a duplicate. Keeps `lastSeq` the highest seq below which nothing is missing. */
  private laneSeq(seq: number, lanes: number[]): boolean {
    const n = lanes.length;
    const lane = (seq - 1) % n;
    const last = lanes[lane] as number;
    if (seq <= last) {
      totals.duplicates++;
      return false;
    }
    if (seq > last + n) totals.missing += (seq - last - n) / n;
    lanes[lane] = seq;
    // Lane k has everything up to its last; the next it lacks is last + n.
    let reached = Number.POSITIVE_INFINITY;
    for (const laneLast of lanes) if (laneLast + n - 1 < reached) reached = laneLast + n - 1;
    this.lastSeq = reached;
    return true;
  }

  fail(reason: string): void {
    if (!quitting) noteError(reason);
    // Settled now, not on 'close': the rest of the read being parsed must not make it ready.
    this.settle(false);
    this.socket.destroy();
  }

  destroy(): void {
    this.socket.destroy();
  }

  private settle(ok: boolean): void {
    if (this.settled) return;
    this.settled = true;
    this.ready = ok;
    this.onSettled(ok);
  }
}

/** Opens `connections` streams, `concurrency` at a time; resolves when each is ready or failed. */
function openAll(options: OpenStreams): Promise<Opened> {
  const protocol = protocolNamed(options.protocol);
  const resume = options.lastEventId === undefined ? '' : `Last-Event-ID: ${options.lastEventId}\r\n`;
  const requestFor = (topic: string) =>
    `GET ${protocol.subscribePath(topic)} HTTP/1.1\r\n` +
    `Host: ${options.host}:${options.port}\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n${resume}\r\n`;
  const request = requestFor(options.topic);
  if (options.measureFrom !== undefined) startMeasuring(options.measureFrom);
  const startedAt = nowMs();
  return new Promise((resolve) => {
    let started = 0;
    let active = 0;
    let ready = 0;
    let failed = 0;
    let stopped = false;
    const finish = () => {
      clearTimeout(timer);
      resolve({ type: 'opened', startedAt, ready, failed, errors: [...errors] });
    };
    const settled = (ok: boolean) => {
      active--;
      if (ok) ready++;
      else failed++;
      if (ready + failed === options.connections) finish();
      else launch();
    };
    const launch = () => {
      while (!stopped && active < options.concurrency && started < options.connections) {
        started++;
        active++;
        const topic = options.topics?.[started - 1];
        streams.push(
          new Stream(
            options.host,
            options.port,
            topic === undefined ? request : requestFor(topic),
            protocol.readyAfter === 'headers',
            settled,
            options.localAddress,
            options.afterSeq ?? 0,
            options.lanes ?? 1,
          ),
        );
      }
    };
    const timer = setTimeout(() => {
      stopped = true;
      noteError(`streams not ready within ${options.timeoutMs / 1000} s`);
      failed += options.connections - started;
      started = options.connections;
      for (const stream of streams) if (!stream.ready) stream.destroy();
      if (ready + failed === options.connections) finish();
    }, options.timeoutMs);
    if (options.connections === 0) finish();
    else launch();
  });
}

let lastProgress: { minSeq: number | null; open: number; at: number } | undefined;

function reportProgress(): void {
  let minSeq = Number.POSITIVE_INFINITY;
  let open = 0;
  for (const stream of streams) {
    if (!stream.ready || !stream.open) continue;
    open++;
    if (stream.lastSeq < minSeq) minSeq = stream.lastSeq;
  }
  const progress = { minSeq: open === 0 ? null : minSeq, open, at: Date.now() };
  const previous = lastProgress;
  if (
    previous !== undefined &&
    previous.minSeq === progress.minSeq &&
    previous.open === progress.open &&
    progress.at - previous.at < PROGRESS_KEEPALIVE_MS
  ) {
    return;
  }
  lastProgress = progress;
  send({ type: 'progress', minSeq: progress.minSeq, open });
}

let progressTimer: NodeJS.Timeout | undefined;

function startMeasuring(fromSeq: number): void {
  measureFrom = fromSeq;
  histogram.reset();
  totals.delivered = 0;
  totals.lastArrival = 0;
  totals.negative = 0;
  cpuAtMeasure = process.cpuUsage();
}

process.on('message', (message: SubscriberIn) => {
  switch (message.type) {
    case 'open':
      openAll(message).then((opened) => {
        send(opened);
        progressTimer ??= setInterval(reportProgress, PROGRESS_EVERY_MS);
      });
      break;
    case 'measure':
      startMeasuring(message.fromSeq);
      send({ type: 'measuring' });
      break;
    case 'report': {
      const cpu = process.cpuUsage(cpuAtMeasure);
      send({
        type: 'report',
        streams: streams.length,
        ...totals,
        histogram: encodeHistogram(histogram),
        cpuMicros: cpu.user + cpu.system,
        errors: [...errors],
      });
      break;
    }
    case 'quit':
      quitting = true;
      clearInterval(progressTimer);
      for (const stream of streams) stream.destroy();
      process.exit(0);
  }
});

// The orchestrator is gone (killed, crashed): do not linger holding sockets.
process.on('disconnect', () => process.exit(0));
