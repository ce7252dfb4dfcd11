import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { before, describe, test } from 'node:test';
import { createClient } from 'redis';
import { RedisBroker } from '../../src/backends/redis/broker.ts';
import { databaseOf } from '../../src/backends/redis/bus.ts';
import type { Log } from '../../src/core/log.ts';
import { deletePrefix, REDIS_URL, requireRedis, startPrivateRedis } from '../helpers/redis-server.ts';
import { clusterContract, hear, hearingEachOther, until } from './cluster-contract.ts';

// Never a silent skip: without the machine's Redis every test fails, saying why and what to do.
before(() => requireRedis());

clusterContract({
  name: 'redis',
  shared: true,
  async newCluster() {
    // A stream name of its own: its own channel and keys, removed by cleanup.
    const stream = `herald-test-${randomBytes(8).toString('hex')}`;
    const nodes: Log[] = [];
    return {
      node() {
        const broker = new RedisBroker({ url: REDIS_URL, stream });
        nodes.push(broker);
        return broker;
      },
      async cleanup() {
        await Promise.all(nodes.map((node) => node.close()));
        await deletePrefix(REDIS_URL, stream);
      },
    };
  },
});

/** How many clients a Redis has connected, this test's admin client left out. */
async function clients(url: string): Promise<number> {
  const admin = createClient({ url });
  await admin.connect();
  try {
    const list = await admin.sendCommand<string>(['CLIENT', 'LIST']);
    return list.trim().split('\n').length - 1;
  } finally {
    admin.destroy();
  }
}

describe('redis cluster bus', () => {
  test('a node that never listens opens no connection for the bus; the first listen opens one', async () => {
    const server = await startPrivateRedis();
    const broker = new RedisBroker({ url: server.url, stream: 'lazy' });
    try {
      await broker.start(() => {});
      await broker.broadcast('nobody listens');
      assert.equal(await clients(server.url), 2, 'the command and feed connections only');
      await hearingEachOther([broker]);
      assert.equal(await clients(server.url), 3, 'and the subscriber');
    } finally {
      await broker.close();
      await server.stop();
    }
  });

  test('the bus works again after Redis is killed and restarted', async () => {
    const server = await startPrivateRedis();
    const errors: string[] = [];
    const nodes = [0, 1].map(
      () =>
        new RedisBroker({
          url: server.url,
          stream: 'restart',
          onError: (_e, context) => errors.push(context),
        }),
    );
    try {
      await hearingEachOther(nodes);
      const ear = hear(nodes[1] as RedisBroker);
      await server.kill();
      await assert.rejects((nodes[0] as RedisBroker).broadcast('while down'), /redis unreachable/);
      await server.restart();
      // Pub/sub keeps nothing: what is sent before the subscriber is back is lost, so send until heard.
      let sent = 0;
      const deadline = Date.now() + 15_000;
      while (ear.heard.length === 0) {
        assert.ok(Date.now() < deadline, 'heard within 15 s of the restart');
        await (nodes[0] as RedisBroker).broadcast(`after-${sent++}`).catch(() => {});
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      assert.match(ear.heard[0] as string, /^after-\d+$/);
      assert.ok(errors.includes('redis bus connection'), 'the lost subscriber was reported');
      // Every node's subscriber is back, each on its own time: all hear all again.
      await hearingEachOther(nodes);
    } finally {
      await Promise.all(nodes.map((node) => node.close()));
      await server.stop();
    }
  });

  test('a bus whose Redis is down at first subscribes once it is up', async () => {
    const server = await startPrivateRedis();
    await server.kill();
    const broker = new RedisBroker({ url: server.url, stream: 'late' });
    try {
      const ear = hear(broker);
      await new Promise((resolve) => setTimeout(resolve, 300));
      await server.restart();
      await hearingEachOther([broker]);
      await broker.broadcast('late');
      await until(() => ear.heard.includes('late'), 'the message');
    } finally {
      await broker.close();
      await server.stop();
    }
  });

  test('the channel is per database: pub/sub ignores databases, the bus does not', async () => {
    assert.equal(databaseOf('redis://127.0.0.1:6379'), 0);
    assert.equal(databaseOf('redis://127.0.0.1:6379/'), 0);
    assert.equal(databaseOf('rediss://user:pw@host:6380/3'), 3);
    assert.equal(databaseOf('not a url'), 0);
    const base = REDIS_URL.replace(/\/\d*$/, '');
    const stream = `herald-test-${randomBytes(8).toString('hex')}`;
    const zero = new RedisBroker({ url: `${base}/0`, stream });
    const one = new RedisBroker({ url: `${base}/1`, stream });
    try {
      await hearingEachOther([zero]);
      await hearingEachOther([one]);
      const ear = hear(one);
      const own = hear(zero);
      await zero.broadcast('db 0');
      await until(() => own.heard.length > 0, 'its own');
      await new Promise((resolve) => setTimeout(resolve, 200));
      assert.deepEqual(ear.heard, []);
    } finally {
      await Promise.all([zero.close(), one.close()]);
      await deletePrefix(`${base}/0`, stream);
      await deletePrefix(`${base}/1`, stream);
    }
  });
});
