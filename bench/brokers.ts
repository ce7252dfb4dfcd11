import { randomBytes } from 'node:crypto';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { createClient } from 'redis';
import { listeningPid } from './port-owner.ts';

/**
 * The brokers a Herald cluster can share, as the benchmark uses them: the Redis and NATS JetStream
 * servers that run on this machine (never started or stopped by the benchmark), and the memory
 * broker, which is no server at all and so holds one node only.
 *
 * Every run gets a log of its own, under a fresh name, which `drop` removes afterwards.
 */
export interface SharedBroker {
  readonly name: BrokerName;
  /** `--broker` of `herald serve`. */
  readonly url: string;
  /** How many Herald processes may share one log: 1 for the memory broker. */
  readonly maxNodes: number;
  /** A fresh log name (`--stream`), unique to one run. */
  newStream(): string;
  /** Removes everything the log `stream` left on the broker; bounded, never throws for an absent log. */
  drop(stream: string): Promise<void>;
  /**
   * The broker server's processes, to measure their CPU: whoever listens on its port. Empty for the
   * memory broker, which runs inside Herald.
   */
  pids(): readonly number[];
}

export type BrokerName = 'memory' | 'redis' | 'nats';

/** Loopback only: the benchmark sends no traffic off this machine. */
const HOST = '127.0.0.1';
const REDIS_PORT = 6379;
const NATS_PORT = 4222;
const REDIS_URL = `redis://${HOST}:${REDIS_PORT}`;
const NATS_URL = `nats://${HOST}:${NATS_PORT}`;
/** Connecting and cleaning up must not hang a run: a healthy local broker answers in milliseconds. */
const TIMEOUT_MS = 5_000;

const newStream = () => `bench_${Date.now().toString(36)}_${randomBytes(4).toString('hex')}`;

function withTimeout<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took over ${TIMEOUT_MS / 1000} s`)), TIMEOUT_MS);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

function serverPids(port: number, processName: string): readonly number[] {
  const pid = listeningPid(HOST, port, processName);
  if (pid === undefined) throw new Error(`no ${processName} listens on ${HOST}:${port}: is it running?`);
  return [pid];
}

const memory: SharedBroker = {
  name: 'memory',
  url: 'memory',
  maxNodes: 1,
  newStream,
  drop: async () => {},
  pids: () => [],
};

/** Redis: the log is the keys `<stream>:*` (the stream `<stream>:log` and the id keys). */
const redis: SharedBroker = {
  name: 'redis',
  url: REDIS_URL,
  maxNodes: Number.POSITIVE_INFINITY,
  newStream,
  async drop(stream) {
    const client = createClient({
      url: REDIS_URL,
      socket: { connectTimeout: TIMEOUT_MS, reconnectStrategy: false },
    });
    client.on('error', () => {});
    try {
      await withTimeout(
        (async () => {
          await client.connect();
          for await (const keys of client.scanIterator({ MATCH: `${stream}:*`, COUNT: 1000 })) {
            if (keys.length > 0) await client.unlink(keys);
          }
        })(),
        `removing the Redis keys ${stream}:*`,
      );
    } finally {
      client.destroy();
    }
  },
  pids: () => serverPids(REDIS_PORT, 'redis-server'),
};

/** NATS: the log is the JetStream stream `<STREAM>`, the publisher-chosen ids the KV bucket `<STREAM>_IDS`. */
const nats: SharedBroker = {
  name: 'nats',
  url: NATS_URL,
  maxNodes: Number.POSITIVE_INFINITY,
  newStream,
  async drop(stream) {
    const nc = await connect({ servers: NATS_URL, timeout: TIMEOUT_MS, reconnect: false });
    try {
      await withTimeout(
        (async () => {
          const jsm = await jetstreamManager(nc, { timeout: TIMEOUT_MS });
          const name = stream.toUpperCase();
          for (const each of [name, `KV_${name}_IDS`, `KV_${name}_LATEST`]) {
            await jsm.streams.delete(each).catch((error: unknown) => {
              // Absent (never created): nothing to remove.
              if (!/not found/i.test(String(error))) throw error;
            });
          }
        })(),
        `removing the JetStream streams of ${stream}`,
      );
    } finally {
      await nc.close().catch(() => {});
    }
  },
  pids: () => serverPids(NATS_PORT, 'nats-server'),
};

/** Every broker the cluster scenario knows, by name (`--broker`). */
export const BROKERS: Readonly<Record<BrokerName, SharedBroker>> = { memory, redis, nats };
