import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { createClient } from 'redis';
import { MemoryBroker } from '../src/backends/memory/broker.ts';
import { NatsBroker } from '../src/backends/nats/broker.ts';
import { RedisBroker } from '../src/backends/redis/broker.ts';
import type { EventDraft } from '../src/core/event.ts';
import type { Broker } from '../src/core/log.ts';

/*
 * What the latest values per key cost in memory: N keyed events (each its own slot) appended to
 * each backend, then
 *   - memory: the hub process's heap and RSS with the slots kept, less the same appends with
 *     `latestMaxKeys: 0` (the ring of history is in both, so the difference is the slots alone);
 *   - Redis: `MEMORY USAGE` of every tenant hash and of the order set;
 *   - NATS: the bytes of the bucket's stream `KV_<stream>_LATEST`.
 * Uses the machine's Redis and NATS (127.0.0.1:6379, :4222) and removes what it wrote.
 *
 *   node --expose-gc bench/latest-memory.ts [--keys 100000] [--data 200] [--tenants 10] [--only memory,redis,nats]
 */

const { values } = parseArgs({
  options: {
    keys: { type: 'string', default: '100000' },
    data: { type: 'string', default: '200' },
    tenants: { type: 'string', default: '10' },
    only: { type: 'string', default: 'memory,redis,nats' },
  },
});
const KEYS = Number(values.keys);
const DATA_BYTES = Number(values.data);
const TENANTS = Number(values.tenants);
const ONLY = new Set(values.only.split(','));
const BATCH = 100;
const REDIS_URL = 'redis://127.0.0.1:6379';
const NATS_URL = 'nats://127.0.0.1:4222';

/** Each event's own data, as publishes would have it (one shared string would not be counted per key). */
const dataOf = (i: number) => JSON.stringify(`${i} `.padEnd(Math.max(0, DATA_BYTES - 2), 'x'));

function keyed(i: number): EventDraft {
  return {
    topics: [`tiles/${i % 1000}`],
    data: dataOf(i),
    tenant: `tenant-${i % TENANTS}`,
    key: `vin-${i}`,
    type: 'ai-score',
    priority: 'normal',
    time: Date.now(),
  };
}

/** Appends every keyed event, a batch at a time, a few batches in flight. */
async function fill(broker: Broker): Promise<number> {
  const started = performance.now();
  const inFlight = 8;
  let next = 0;
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < KEYS) {
        const from = next;
        next = Math.min(KEYS, next + BATCH);
        const drafts: EventDraft[] = [];
        for (let i = from; i < next; i++) drafts.push(keyed(i));
        await broker.append(drafts);
      }
    }),
  );
  return performance.now() - started;
}

const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;
const perKey = (bytes: number) => `${Math.round(bytes / KEYS)} B`;
const rows: string[][] = [];

function settle(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) throw new Error('run with node --expose-gc');
  for (let i = 0; i < 3; i++) gc();
}

async function memory(): Promise<void> {
  const measure = async (latestMaxKeys: number) => {
    settle();
    const before = process.memoryUsage();
    const broker = new MemoryBroker({ latestMaxKeys });
    await broker.start(() => {});
    const ms = await fill(broker);
    settle();
    const after = process.memoryUsage();
    const result = { heap: after.heapUsed - before.heapUsed, rss: after.rss - before.rss, ms, broker };
    return result;
  };
  const without = await measure(0);
  await without.broker.close();
  const withSlots = await measure(KEYS);
  const heap = withSlots.heap - without.heap;
  const rss = withSlots.rss - without.rss;
  rows.push(['memory: hub heap (slots only)', mb(heap), perKey(heap), `${Math.round(withSlots.ms)} ms`]);
  rows.push(['memory: hub RSS (slots only)', mb(rss), perKey(rss), '']);
  await withSlots.broker.close();
}

async function redis(): Promise<void> {
  const stream = `bench-latest-${randomBytes(4).toString('hex')}`;
  const broker = new RedisBroker({ url: REDIS_URL, stream, latestMaxKeys: KEYS, maxEvents: 1000 });
  const client = createClient({ url: REDIS_URL });
  await client.connect();
  try {
    await broker.start(() => {});
    const ms = await fill(broker);
    let hashes = 0;
    for (let t = 0; t < TENANTS; t++) {
      const tenant = `tenant-${t}`;
      hashes +=
        (await client.memoryUsage(`${stream}:latest:${Buffer.byteLength(tenant)}:${tenant}`, {
          SAMPLES: 0,
        })) ?? 0;
    }
    const order = (await client.memoryUsage(`${stream}:latest-order`, { SAMPLES: 0 })) ?? 0;
    rows.push(['Redis: tenant hashes', mb(hashes), perKey(hashes), `${Math.round(ms)} ms`]);
    rows.push(['Redis: order set', mb(order), perKey(order), '']);
  } finally {
    await broker.close();
    for await (const keys of client.scanIterator({ MATCH: `${stream}:*`, COUNT: 1000 })) {
      if (keys.length > 0) await client.unlink(keys);
    }
    client.destroy();
  }
}

async function nats(): Promise<void> {
  const stream = `BENCH_LATEST_${randomBytes(4).toString('hex').toUpperCase()}`;
  const broker = new NatsBroker({ servers: NATS_URL, stream, latestMaxKeys: KEYS, maxEvents: 1000 });
  const nc = await connect({ servers: NATS_URL });
  const jsm = await jetstreamManager(nc);
  try {
    await broker.start(() => {});
    const ms = await fill(broker);
    const { state } = await jsm.streams.info(`KV_${stream}_LATEST`);
    rows.push([
      `NATS: KV stream (${state.messages} messages)`,
      mb(state.bytes),
      perKey(state.bytes),
      `${Math.round(ms)} ms`,
    ]);
  } finally {
    await broker.close();
    for (const name of [stream, `KV_${stream}_IDS`, `KV_${stream}_LATEST`]) {
      await jsm.streams.delete(name).catch(() => {});
    }
    await nc.close();
  }
}

if (ONLY.has('memory')) await memory();
if (ONLY.has('redis')) await redis();
if (ONLY.has('nats')) await nats();

console.log(`\n${KEYS} keys, ${DATA_BYTES} B of data each, ${TENANTS} tenants\n`);
console.log('| where | total | per key | appends took |');
console.log('|---|---|---|---|');
for (const row of rows) console.log(`| ${row.join(' | ')} |`);
