import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { before, describe, test } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import { NatsBroker } from '../../src/backends/nats/broker.ts';
import { RedisBroker } from '../../src/backends/redis/broker.ts';
import { HeraldError } from '../../src/core/errors.ts';
import { latestKeeperOf } from '../../src/core/log.ts';
import { connectJetStream, SHARED_NATS_URL } from '../helpers/nats-server.ts';
import { adminClient, deletePrefix, REDIS_URL, requireRedis } from '../helpers/redis-server.ts';
import { draft } from './contract.ts';

/*
 * How each external backend stores the latest values per key (the contract says what they are):
 * the Redis keys the append script writes and evicts, in bytes, and the NATS bucket's bounds.
 */

describe('latest values on Redis', () => {
  before(() => requireRedis());

  const withBroker = (
    name: string,
    latestMaxKeys: number,
    body: (broker: RedisBroker, stream: string) => Promise<void>,
  ) =>
    test(name, async () => {
      const stream = `herald-test-${randomBytes(8).toString('hex')}`;
      const broker = new RedisBroker({ url: REDIS_URL, stream, latestMaxKeys });
      try {
        await broker.start(() => {});
        await body(broker, stream);
      } finally {
        await broker.close();
        await deletePrefix(REDIS_URL, stream);
      }
    });

  const keysOf = async (stream: string) => {
    const client = await adminClient(REDIS_URL);
    try {
      return (await client.keys(`${stream}:latest*`)).sort();
    } finally {
      client.destroy();
    }
  };

  withBroker('appends without a key write no latest value', 10, async (broker, stream) => {
    await broker.append([draft('a'), draft('b', { id: 'chosen' })]);
    assert.deepEqual(await keysOf(stream), []);
  });

  withBroker(
    "a hash per tenant, named and evicted by byte lengths, whatever the tenant's characters",
    2,
    async (broker, stream) => {
      await broker.append([draft('z', { tenant: 'Zürich', topics: ['tälle/1'], key: 'ké' })]);
      const client = await adminClient(REDIS_URL);
      try {
        const hash = `${stream}:latest:7:Zürich`;
        assert.deepEqual(await keysOf(stream), [`${stream}:latest-order`, hash].sort());
        const [field, value] = Object.entries(await client.hGetAll(hash))[0] ?? [];
        assert.equal(field, '8:tälle/1:ké');
        assert.match(value ?? '', /^\d+-\d+ \{/);
        assert.deepEqual(await client.zRange(`${stream}:latest-order`, 0, -1), ['7:Zürich8:tälle/1:ké']);
        await broker.append([draft('a', { tenant: 'a', key: 'k' })]);
        await broker.append([draft('b', { tenant: 'a', key: 'k2' })]);
        // Zürich's slot was the oldest: its hash is emptied, so Redis removes it.
        assert.deepEqual(await keysOf(stream), [`${stream}:latest-order`, `${stream}:latest:1:a`].sort());
        assert.deepEqual(await latestKeeperOf(broker)?.latest('Zürich', 10), { events: [], complete: true });
      } finally {
        client.destroy();
      }
    },
  );

  withBroker('a refused append (a duplicate chosen id) keeps no latest value', 10, async (broker) => {
    await broker.append([draft('a', { id: 'dup' })]);
    await assert.rejects(
      broker.append([draft('b', { key: 'k' }), draft('c', { id: 'dup' })]),
      (error: unknown) => error instanceof HeraldError && error.status === 409,
    );
    assert.deepEqual(await latestKeeperOf(broker)?.latest('', 10), { events: [], complete: true });
  });
});

describe('latest values on NATS', () => {
  const withBroker = (
    name: string,
    latestMaxKeys: number,
    body: (
      broker: NatsBroker,
      bucket: () => Promise<{ max_msgs: number; discard: string } | undefined>,
    ) => Promise<void>,
  ) =>
    test(name, async () => {
      const admin = await connectJetStream(SHARED_NATS_URL);
      const stream = `HERALD_TEST_${randomBytes(6).toString('hex').toUpperCase()}`;
      const broker = new NatsBroker({ servers: SHARED_NATS_URL, stream, latestMaxKeys });
      const jsm = await jetstreamManager(admin);
      try {
        await broker.start(() => {});
        await body(broker, async () => {
          const info = await jsm.streams.info(`KV_${stream}_LATEST`).catch(() => undefined);
          return info && { max_msgs: info.config.max_msgs, discard: info.config.discard };
        });
      } finally {
        await broker.close();
        for (const name of [stream, `KV_${stream}_IDS`, `KV_${stream}_LATEST`]) {
          await jsm.streams.delete(name).catch(() => {});
        }
        await admin.close();
      }
    });

  withBroker(
    'the bucket is made at the first keyed append, bounded by latestMaxKeys, oldest discarded',
    7,
    async (broker, bucket) => {
      await broker.append([draft('a')]);
      assert.equal(await bucket(), undefined, 'a log without keys has no bucket');
      await broker.append([draft('b', { key: 'k' })]);
      assert.deepEqual(await bucket(), { max_msgs: 7, discard: 'old' });
    },
  );

  withBroker('long tenants, topics and keys are hashed into the KV key and read back', 10, async (broker) => {
    const tenant = 't'.repeat(300);
    const topic = `tiles/${'x'.repeat(900)}`;
    const key = 'k'.repeat(256);
    const [event] = await broker.append([draft('long', { tenant, topics: [topic], key })]);
    const { events } = (await latestKeeperOf(broker)?.latest(tenant, 10)) ?? { events: [] };
    assert.deepEqual(
      events.map((e) => [e.pos, e.topics[0], e.key]),
      [[event?.pos, topic, key]],
    );
  });

  withBroker('latestMaxKeys 0 makes no bucket', 0, async (broker, bucket) => {
    await broker.append([draft('b', { key: 'k' })]);
    assert.equal(latestKeeperOf(broker), undefined);
    assert.equal(await bucket(), undefined);
  });
});
