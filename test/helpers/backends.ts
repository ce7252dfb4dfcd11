import { randomUUID } from 'node:crypto';
import { jetstreamManager } from '@nats-io/jetstream';
import { brokerFor } from '../../src/backends/connect.ts';
import type { Broker } from '../../src/core/log.ts';
import type { HeraldOptions } from '../../src/herald.ts';
import { connectJetStream } from './nats-server.ts';
import { deletePrefix } from './redis-server.ts';
import { startHub, type TestHub } from './server.ts';

/**
 * The backends the behaviour suites run on: the same tests, against the memory broker and
 * against the real Redis and NATS of this machine, each test on a fresh log of its own.
 */
export interface Backend {
  readonly name: 'memory' | 'redis' | 'nats';
  /** A fresh log name, unique to the caller. */
  newStream(): string;
  /** A broker on the log `stream` (several brokers on one name share it, as nodes do). */
  broker(stream: string, history?: HeraldOptions['history']): Promise<Broker>;
  /** Removes what the log left on the backend. */
  drop(stream: string): Promise<void>;
}

export const REDIS_URL = process.env.HERALD_TEST_REDIS ?? 'redis://127.0.0.1:6379';
export const NATS_URL = process.env.HERALD_TEST_NATS ?? 'nats://127.0.0.1:4222';

const newStream = () => `test_${randomUUID().replaceAll('-', '').slice(0, 16)}`;

export const BACKENDS: readonly Backend[] = [
  {
    name: 'memory',
    newStream,
    broker: (stream, history = {}) => brokerFor({ url: 'memory', stream, ...history }),
    drop: async () => {},
  },
  {
    name: 'redis',
    newStream,
    broker: (stream, history = {}) => brokerFor({ url: REDIS_URL, stream, ...history }),
    drop: (stream) => deletePrefix(REDIS_URL, stream),
  },
  {
    name: 'nats',
    newStream,
    broker: (stream, history = {}) => brokerFor({ url: NATS_URL, stream, ...history }),
    async drop(stream) {
      const nc = await connectJetStream(NATS_URL);
      try {
        const jsm = await jetstreamManager(nc);
        const name = stream.toUpperCase();
        await jsm.streams.delete(name).catch(() => {});
        await jsm.streams.delete(`KV_${name}_IDS`).catch(() => {});
        await jsm.streams.delete(`KV_${name}_LATEST`).catch(() => {});
        // The cluster's shared counters (src/backends/nats/counters.ts).
        await jsm.streams.delete(`KV_${name}_COUNTS`).catch(() => {});
        await jsm.streams.delete(`KV_${name}_WINDOWS`).catch(() => {});
      } finally {
        await nc.close();
      }
    },
  },
];

/** A real Herald on node:http over a fresh log of this backend; closing it drops the log. */
export async function hubOn(on: Backend, options: HeraldOptions = {}): Promise<TestHub> {
  const { history, ...rest } = options;
  const stream = on.newStream();
  const hub = await startHub({ ...rest, broker: await on.broker(stream, history) });
  await hub.herald.hub.whenReady();
  return {
    ...hub,
    async close() {
      await hub.close();
      await on.drop(stream);
    },
  };
}
