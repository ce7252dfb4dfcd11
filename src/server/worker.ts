import { Socket } from 'node:net';
import { IpcBroker } from '../backends/ipc/broker.ts';
import { createLogger } from '../observability/logger.ts';
import { logDestination } from '../observability/pretty.ts';
import { serve } from './serve.ts';
import type { StartMessage, WorkerMessage } from './workers.ts';

/**
 * One worker of `herald serve --workers N`, started by the primary (src/server/workers.ts) with
 * an IPC channel: it waits for its configuration, serves the shared port, and stops on SIGTERM
 * or when the primary is gone.
 */

// Streams get a retry hint and the worker exits well inside the primary's deadline.
const SHUTDOWN_DEADLINE_MS = 4_500;

const send = (message: WorkerMessage, then?: () => void) => process.send?.(message, undefined, {}, then);

// A terminal's Ctrl-C reaches every process of the group: the primary decides, and tells the workers.
process.on('SIGINT', () => {});

process.once('message', async (message: StartMessage) => {
  const { config, index, workers, sharedLog, degraded } = message;
  try {
    const pipe = sharedLog ? new Socket({ fd: 4, readable: true, writable: true }) : undefined;
    const broker = pipe === undefined ? undefined : new IpcBroker(pipe);
    const logger = createLogger({
      level: config.logLevel,
      base: { worker: index + 1 },
      ...logDestination(config.logFormat),
    });
    const running = await serve(config, logger, {
      reusePort: true,
      metricsLabels: { worker: String(index + 1) },
      ...(broker === undefined ? {} : { broker }),
      ...(degraded === undefined ? {} : { degraded }),
    });
    // The figures of /v1/stats are this worker's: say which one answered.
    running.herald.addStats('worker', () => ({ index: index + 1, of: workers, pid: process.pid }));
    let stopping = false;
    const stop = () => {
      if (stopping) return;
      stopping = true;
      setTimeout(() => process.exit(0), SHUTDOWN_DEADLINE_MS).unref();
      running.close().then(() => process.exit(0));
    };
    process.on('SIGTERM', stop);
    // The primary died without a word (kill -9): nobody would restart or stop this worker.
    process.on('disconnect', stop);
    // Without its log this worker can neither publish nor feed its streams: restarting is the cure.
    pipe?.on('close', stop);
    const { herald } = running;
    send({
      t: 'listening',
      url: running.url,
      broker: herald.degraded ? `memory, ${herald.degraded}` : herald.broker.kind,
      open: herald.open,
    });
  } catch (error) {
    send({ t: 'failed', message: error instanceof Error ? error.message : String(error) }, () =>
      process.exit(1),
    );
  }
});
