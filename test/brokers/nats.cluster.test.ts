import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import { NatsBroker } from '../../src/backends/nats/broker.ts';
import type { Log } from '../../src/core/log.ts';
import { connectJetStream, SHARED_NATS_URL, startPrivateNats } from '../helpers/nats-server.ts';
import { clusterContract, hear, hearingEachOther } from './cluster-contract.ts';

// Runs against the NATS JetStream of the test environment: when it is down, every case fails with
// what to do about it (connectJetStream's message), never skips.
clusterContract({
  name: 'nats',
  shared: true,
  async newCluster() {
    const admin = await connectJetStream(SHARED_NATS_URL);
    // A stream name of its own: its own subjects and buckets, removed by cleanup.
    const stream = `HERALD_TEST_${randomBytes(6).toString('hex').toUpperCase()}`;
    const nodes: Log[] = [];
    return {
      node() {
        const broker = new NatsBroker({ servers: SHARED_NATS_URL, stream });
        nodes.push(broker);
        return broker;
      },
      async cleanup() {
        try {
          await Promise.all(nodes.map((node) => node.close()));
          const jsm = await jetstreamManager(admin);
          for (const name of [
            stream,
            ...['IDS', 'LATEST', 'COUNTS', 'WINDOWS'].map((b) => `KV_${stream}_${b}`),
          ]) {
            await jsm.streams.delete(name).catch(() => {});
          }
        } finally {
          await admin.close();
        }
      },
    };
  },
});

/** What `call` gives once it stops failing, tried for up to 30 s. */
async function eventually<T>(call: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      return await call();
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
}

describe('nats cluster bus and counters', () => {
  test('the bus works again after NATS is killed and restarted; counters too', async () => {
    const server = await startPrivateNats();
    const nodes = [0, 1].map(() => new NatsBroker({ servers: server.url, stream: 'RESTART' }));
    try {
      await hearingEachOther(nodes);
      const ear = hear(nodes[1] as NatsBroker);
      assert.equal(await (nodes[0] as NatsBroker).acquire('k', 'a', 2, ['a']), true);
      await server.kill();
      await assert.rejects(async () => {
        // The client notices the loss within its reconnect loop; broadcasts then fail fast.
        const deadline = Date.now() + 10_000;
        while (Date.now() < deadline) {
          await (nodes[0] as NatsBroker).broadcast('while down');
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      }, /nats unreachable/);
      await server.start();
      // Core NATS keeps nothing: what is sent before the subscription is back is lost, so send until heard.
      let sent = 0;
      const deadline = Date.now() + 20_000;
      while (ear.heard.length === 0) {
        assert.ok(Date.now() < deadline, 'heard within 20 s of the restart');
        await (nodes[0] as NatsBroker).broadcast(`after-${sent++}`).catch(() => {});
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      assert.match(ear.heard[0] as string, /^after-\d+$/);
      // File storage: the count made before the restart is still there.
      assert.equal(await (nodes[1] as NatsBroker).acquire('k', 'b', 2, ['a', 'b']), true);
      assert.equal(await (nodes[1] as NatsBroker).acquire('k', 'b', 2, ['a', 'b']), false);
    } finally {
      await Promise.all(nodes.map((node) => node.close()));
      await server.dispose();
    }
  });

  test('counters come back on a server that lost its store (buckets made anew)', async () => {
    const server = await startPrivateNats();
    const broker = new NatsBroker({ servers: server.url, stream: 'WIPED' });
    try {
      assert.equal(await broker.acquire('k', 'a', 1, ['a']), true);
      assert.equal((await broker.consume('w', 1, 60_000)).total, 1);
      await server.restartEmpty();
      // The first call on a lost bucket fails (503) and forgets it; the next makes it anew.
      assert.equal(
        await eventually(() => broker.acquire('k', 'a', 1, ['a'])),
        true,
        'the lost count is gone',
      );
      assert.equal((await eventually(() => broker.consume('w', 1, 60_000))).total, 1);
      assert.equal((await broker.consume('w', 1, 60_000)).total, 2);
      const admin = await connectJetStream(server.url);
      try {
        const { config } = await (await jetstreamManager(admin)).streams.info('KV_WIPED_WINDOWS');
        assert.equal(config.max_age / 1e6, 60_000, 'the bucket made anew expires windows again');
      } finally {
        await admin.close();
      }
    } finally {
      await broker.close();
      await server.dispose();
    }
  });

  test('the windows bucket keeps the longest window asked for, and no longer', async () => {
    const admin = await connectJetStream(SHARED_NATS_URL);
    const stream = `HERALD_TEST_${randomBytes(6).toString('hex').toUpperCase()}`;
    const broker = new NatsBroker({ servers: SHARED_NATS_URL, stream });
    const jsm = await jetstreamManager(admin);
    const maxAgeMs = async () => (await jsm.streams.info(`KV_${stream}_WINDOWS`)).config.max_age / 1e6;
    try {
      await broker.consume('a', 1, 2000);
      assert.equal(await maxAgeMs(), 2000);
      await broker.consume('b', 1, 500);
      assert.equal(await maxAgeMs(), 2000, 'a shorter window does not shorten it');
      await broker.consume('c', 1, 5000);
      assert.equal(await maxAgeMs(), 5000);
    } finally {
      await broker.close();
      for (const name of [stream, `KV_${stream}_IDS`, `KV_${stream}_WINDOWS`]) {
        await jsm.streams.delete(name).catch(() => {});
      }
      await admin.close();
    }
  });
});
