import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import type { Duplex } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { LogServer } from '../backends/ipc/broker.ts';
import { MemoryBroker } from '../backends/memory/broker.ts';
import { createLogger } from '../observability/logger.ts';
import { logDestination } from '../observability/pretty.ts';
import { listenError } from './messages.ts';
import type { ServeConfig } from './settings-schema.ts';
import { youngGenerationFlags } from './young-generation.ts';

/**
 * `herald serve --workers N`: the primary process starts N workers, each a whole hub
 * (`src/server/worker.ts`) listening on the same port with SO_REUSEPORT, and keeps them running.
 *
 * On Redis or NATS each worker is simply a node of the hub on that broker. On the memory broker
 * the primary holds the one log and the workers reach it over a pipe (`backends/ipc/`), so that
 * ids, replay and gaps are those of one process whichever worker a client lands on.
 */

/** Primary → worker, once, over the IPC channel. */
export interface StartMessage {
  readonly t: 'start';
  readonly config: ServeConfig;
  readonly index: number;
  readonly workers: number;
  /** The log is the primary's (the memory broker): reach it on fd 4. */
  readonly sharedLog: boolean;
  readonly degraded?: string;
}

/** Worker → primary. */
export type WorkerMessage =
  | { readonly t: 'listening'; readonly url: string; readonly broker: string; readonly open: boolean }
  | { readonly t: 'failed'; readonly message: string };

export interface WorkerPool {
  readonly url: string;
  /** The broker as the `listening on` line names it. */
  readonly broker: string;
  /** True in open development mode (no JWT key). */
  readonly open: boolean;
  /** Process ids of the running workers. */
  pids(): number[];
  /** Stops every worker (each ends its streams with a retry hint) and the shared log. */
  close(): Promise<void>;
}

const WORKER_ENTRY = fileURLToPath(
  new URL(import.meta.url.endsWith('.ts') ? './worker.ts' : './worker.js', import.meta.url),
);
// Node's own flags (--cpu-prof, --max-old-space-size) apply to the workers too, except the
// inspector's: N processes cannot all take the primary's debugging port.
// Each worker also bounds its young generation from its start (young-generation.ts): idle
// streams then cost what they hold, not the free pages of the burst that opened them.
const WORKER_EXEC_ARGV = [
  ...process.execArgv.filter((arg) => !arg.startsWith('--inspect')),
  ...youngGenerationFlags(),
];
/** A worker ends its streams within 4.5 s (as one process does); past this it is killed. */
const STOP_DEADLINE_MS = 6_000;
const START_TIMEOUT_MS = 30_000;
const RESTART_DELAY_MS = 100;
const MAX_RESTART_DELAY_MS = 10_000;

interface Slot {
  child: ChildProcess | undefined;
  /** Consecutive quick deaths, for the restart backoff. */
  failures: number;
  startedAt: number;
  restart: ReturnType<typeof setTimeout> | undefined;
}

export async function startWorkers(config: ServeConfig, log: (line: string) => void): Promise<WorkerPool> {
  const count = config.workers;
  // On Redis or NATS with --on-broker-down local each worker rides out an outage on its own
  // (backends/failover/), as any node does: none waits for the others to rejoin.
  const sharedLog = config.broker === 'memory';
  const logServer = sharedLog
    ? new LogServer(
        new MemoryBroker({
          maxEvents: config.historySize,
          maxAgeMs: config.historyMaxAge,
          latestMaxKeys: config.latestMaxKeys,
        }),
      )
    : undefined;
  const slots: Slot[] = Array.from({ length: count }, () => ({
    child: undefined,
    failures: 0,
    startedAt: 0,
    restart: undefined,
  }));
  let closing = false;
  let port = config.port;

  const launch = (index: number): Promise<Extract<WorkerMessage, { t: 'listening' }>> => {
    const slot = slots[index] as Slot;
    const child = spawn(process.execPath, [...WORKER_EXEC_ARGV, WORKER_ENTRY], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc', sharedLog ? 'pipe' : 'ignore'],
    });
    slot.child = child;
    slot.startedAt = Date.now();
    if (logServer !== undefined) logServer.attach(child.stdio[4] as Duplex);
    const started = new Promise<Extract<WorkerMessage, { t: 'listening' }>>((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`worker ${index + 1} did not start within ${START_TIMEOUT_MS / 1000} s`));
      }, START_TIMEOUT_MS);
      child.on('message', (message: WorkerMessage) => {
        clearTimeout(timer);
        if (message.t === 'listening') resolve(message);
        else reject(new Error(message.message));
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`worker ${index + 1} exited before listening (${signal ?? `code ${code}`})`));
      });
      child.once('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
    });
    const start: StartMessage = {
      t: 'start',
      config: { ...config, port },
      index,
      workers: count,
      sharedLog,
    };
    child.send(start);
    child.once('exit', (code, signal) => {
      if (closing || slot.child !== child) return;
      slot.child = undefined;
      // A worker that lived a while starts over from the shortest delay.
      if (Date.now() - slot.startedAt > 30_000) slot.failures = 0;
      const delay = Math.min(RESTART_DELAY_MS * 2 ** slot.failures, MAX_RESTART_DELAY_MS);
      slot.failures++;
      log(
        `herald: worker ${index + 1} (pid ${child.pid}) exited (${signal ?? `code ${code}`}); restarting it in ${delay} ms`,
      );
      slot.restart = setTimeout(() => {
        slot.restart = undefined;
        if (closing) return;
        launch(index).catch((error: Error) =>
          log(`herald: worker ${index + 1} failed to restart: ${error.message}`),
        );
      }, delay);
    });
    return started;
  };

  const stopAll = async () => {
    closing = true;
    for (const slot of slots) clearTimeout(slot.restart);
    await Promise.all(slots.map((slot) => stopChild(slot.child)));
    await logServer?.close();
  };

  if (config.port !== 0) await ensureFree(config.host, config.port);
  try {
    // The first worker binds the port (the one asked for, or any free one for port 0); the others
    // then share the port it got, which it holds for as long as any of them runs.
    const first = await launch(0);
    port = Number(new URL(first.url).port);
    await Promise.all(slots.slice(1).map((_, i) => launch(i + 1)));
    return {
      url: first.url,
      broker: first.broker,
      open: first.open,
      pids: () => slots.flatMap((slot) => (slot.child?.pid === undefined ? [] : [slot.child.pid])),
      close: stopAll,
    };
  } catch (error) {
    await stopAll();
    const reason = (error as Error).message;
    throw new Error(
      /EADDRINUSE|ENOTSUP|reusePort/i.test(reason)
        ? `${count} workers could not share port ${port}: ${reason}. --workers needs SO_REUSEPORT ` +
            '(Linux, FreeBSD 12+) and a port no other program holds'
        : `${count} workers could not start: ${reason}`,
    );
  }
}

/**
 * SO_REUSEPORT would let the workers join any other program's socket that also set it (another
 * `herald serve --workers` on the same port, say) and silently share its connections; a plain
 * bind first fails instead, as one process would.
 */
async function ensureFree(host: string, port: number): Promise<void> {
  const probe = createServer();
  try {
    await new Promise<void>((resolve, reject) => {
      probe.once('error', reject);
      probe.listen({ host, port, exclusive: true }, resolve);
    });
  } catch (error) {
    throw listenError(error, host, port);
  } finally {
    await new Promise((resolve) => probe.close(resolve));
  }
}

/** SIGTERM (the worker ends its streams with a retry hint), then SIGKILL past the deadline. */
function stopChild(child: ChildProcess | undefined): Promise<void> {
  if (child === undefined || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_DEADLINE_MS);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/** `herald serve --workers N` as the CLI runs it: prints where it listens, stops on SIGTERM/SIGINT. */
export async function runWorkers(config: ServeConfig, version: string): Promise<void> {
  const logger = createLogger({
    level: config.logLevel,
    base: { role: 'primary' },
    ...logDestination(config.logFormat),
  });
  const pool = await startWorkers(config, (line) => logger.warn({}, line));
  // Where it listens is printed at any level: scripts and operators wait for that line.
  logger
    .child({}, { level: 'info' })
    .info(
      { url: pool.url, broker: pool.broker, version, workers: config.workers },
      `herald ${version} listening on ${pool.url} (broker: ${pool.broker}, history: ${config.historySize} events, workers: ${config.workers})`,
    );
  if (pool.open) {
    logger.warn(
      { open: true },
      'open development mode: no JWT key is configured, so every request may publish and see everything',
    );
  }
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, `${signal} received, closing streams on ${config.workers} workers`);
    setTimeout(() => process.exit(0), STOP_DEADLINE_MS + 1_000).unref();
    pool.close().then(() => process.exit(0));
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}
