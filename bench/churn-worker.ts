/**
 * Load generator of stream churn (S10): `loops` clients, each opening a stream on a raw socket,
 * reading until `herald.connected` (the server has registered it), closing it, and opening the
 * next at once. Records the time from the connection attempt to `herald.connected`. Forked by the
 * orchestrator; speaks the messages below over IPC.
 *
 * Raw `net` sockets, as in subscriber-worker.ts: node:http's client would cost more CPU per
 * connection than the server it measures. Each connection binds the next of a few 127.0.0.x
 * addresses: a closed connection holds its port in TIME_WAIT for a minute, and one address has
 * ~28 000 of them.
 */
import net from 'node:net';
import { encodeHistogram, latencyHistogram } from './histogram.ts';
import { nowMs } from './payload.ts';

/** How each open carries a session cookie, for `--auth-url` (bench/app-endpoint.ts). */
export type CookieMode = 'none' | 'per-client' | 'per-open';

export interface StartChurn {
  readonly type: 'start';
  readonly host: string;
  readonly port: number;
  /** Path and query of the stream. */
  readonly path: string;
  readonly loops: number;
  /**
   * `per-client`: each loop keeps one session for all its opens (an answer cached per cookie);
   * `per-open`: every open a new session, so every open asks the app.
   */
  readonly cookies: CookieMode;
  readonly localAddresses: readonly string[];
  /** One open may take this long before it counts as failed. */
  readonly timeoutMs: number;
}

/** Counts and times from now on. */
export interface MeasureChurn {
  readonly type: 'measure';
}
export interface RequestChurnReport {
  readonly type: 'report';
}
/** Opens nothing more; answered `stopped` once every open in flight has ended. */
export interface StopChurn {
  readonly type: 'stop';
}
export interface QuitChurn {
  readonly type: 'quit';
}
export type ChurnIn = StartChurn | MeasureChurn | RequestChurnReport | StopChurn | QuitChurn;

/** Every loop has finished one open: each client's first call to the app is behind. */
export interface ChurnWarm {
  readonly type: 'warm';
}
export interface ChurnMeasuring {
  readonly type: 'measuring';
}
export interface ChurnReport {
  readonly type: 'report';
  /** Streams that reached `herald.connected`, then closed, since `measure`. */
  readonly streams: number;
  readonly failed: number;
  /** Time from the connection attempt to `herald.connected`, µs: `histogram.ts`. */
  readonly histogram: string;
  readonly cpuMicros: number;
  readonly errors: readonly string[];
}
export interface ChurnStopped {
  readonly type: 'stopped';
  /** Streams that reached `herald.connected` since `start`: every one the server opened. */
  readonly totalStreams: number;
}
export type ChurnOut = ChurnWarm | ChurnMeasuring | ChurnReport | ChurnStopped;

const MAX_ERRORS = 5;
const CONNECTED = 'event: herald.connected';

const histogram = latencyHistogram();
const errors = new Set<string>();
const window = { streams: 0, failed: 0, cpu: process.cpuUsage() };
let measuring = false;
let totalStreams = 0;
let inFlight = 0;
let stopping = false;
let opens = 0;
const sockets = new Set<net.Socket>();
let onIdle: (() => void) | undefined;

function send(message: ChurnOut): void {
  if (process.connected) process.send?.(message);
}

function noteError(message: string): void {
  if (errors.size < MAX_ERRORS) errors.add(message);
}

function requestText(options: StartChurn, cookie: string | undefined): string {
  return (
    `GET ${options.path} HTTP/1.1\r\nHost: ${options.host}:${options.port}\r\n` +
    `Accept: text/event-stream\r\n${cookie === undefined ? '' : `Cookie: session=${cookie}\r\n`}\r\n`
  );
}

/** One open: connect, ask, read until `herald.connected`, close; then `next`. */
function openOne(options: StartChurn, cookie: string | undefined, next: () => void): void {
  const started = nowMs();
  const localAddress = options.localAddresses[opens++ % options.localAddresses.length];
  const socket = net.connect({ host: options.host, port: options.port, localAddress });
  sockets.add(socket);
  inFlight++;
  let text = '';
  let done = false;
  const finish = (error: string | undefined) => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    socket.destroy();
    sockets.delete(socket);
    inFlight--;
    if (error === undefined) {
      totalStreams++;
      if (measuring) {
        window.streams++;
        histogram.recordValue(Math.max(1, Math.round((nowMs() - started) * 1000)));
      }
    } else {
      if (measuring) window.failed++;
      noteError(error);
    }
    if (stopping) {
      if (inFlight === 0) onIdle?.();
      return;
    }
    next();
  };
  const timer = setTimeout(
    () => finish(`no herald.connected within ${options.timeoutMs / 1000} s`),
    options.timeoutMs,
  );
  socket.setNoDelay(true);
  socket.on('connect', () => socket.write(requestText(options, cookie)));
  socket.on('data', (chunk: Buffer) => {
    text += chunk.toString('latin1');
    if (!text.startsWith('HTTP/1.1 200 ')) {
      const line = text.indexOf('\r\n');
      if (line === -1) return;
      // A refusal is a problem+json: its code says which (auth-unavailable, too-many-streams…).
      const code = /"code"\s*:\s*"([^"]+)"/.exec(text)?.[1];
      finish(`answered ${text.slice(9, line)}${code === undefined ? '' : ` (${code})`}`);
      return;
    }
    // The frame arrives in one chunk of the chunked body: the server writes it at once.
    if (text.includes(CONNECTED)) finish(undefined);
  });
  socket.on('error', (error) => finish(error.message));
  socket.on('close', () => finish('closed before herald.connected'));
}

function start(options: StartChurn): void {
  let warm = 0;
  for (let loop = 0; loop < options.loops; loop++) {
    let round = 0;
    const next = () => {
      round++;
      if (round === 2 && ++warm === options.loops) send({ type: 'warm' });
      const cookie =
        options.cookies === 'none'
          ? undefined
          : options.cookies === 'per-client'
            ? `c${loop}`
            : `o${process.pid}-${loop}-${round}`;
      openOne(options, cookie, next);
    };
    next();
  }
}

process.on('message', (message: ChurnIn) => {
  switch (message.type) {
    case 'start':
      start(message);
      break;
    case 'measure':
      histogram.reset();
      window.streams = 0;
      window.failed = 0;
      window.cpu = process.cpuUsage();
      measuring = true;
      send({ type: 'measuring' });
      break;
    case 'report': {
      measuring = false;
      const cpu = process.cpuUsage(window.cpu);
      send({
        type: 'report',
        streams: window.streams,
        failed: window.failed,
        histogram: encodeHistogram(histogram),
        cpuMicros: cpu.user + cpu.system,
        errors: [...errors],
      });
      break;
    }
    case 'stop': {
      stopping = true;
      const stopped = () => send({ type: 'stopped', totalStreams });
      if (inFlight === 0) stopped();
      else onIdle = stopped;
      break;
    }
    case 'quit':
      for (const socket of sockets) socket.destroy();
      process.exit(0);
  }
});

// The orchestrator is gone (killed, crashed): do not linger holding sockets.
process.on('disconnect', () => process.exit(0));
