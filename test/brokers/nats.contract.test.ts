import { randomBytes } from 'node:crypto';
import { jetstreamManager } from '@nats-io/jetstream';
import { NatsBroker } from '../../src/backends/nats/broker.ts';
import type { Broker } from '../../src/core/log.ts';
import { connectJetStream, SHARED_NATS_URL } from '../helpers/nats-server.ts';
import { brokerContract } from './contract.ts';

// Runs against the NATS JetStream of the test environment: when it is down, every case fails with
// what to do about it (connectJetStream's message), never skips.
brokerContract({
  name: 'nats',
  shared: true,
  async newLog(options = {}) {
    const admin = await connectJetStream(SHARED_NATS_URL);
    const stream = `HERALD_TEST_${randomBytes(6).toString('hex').toUpperCase()}`;
    const nodes: Broker[] = [];
    return {
      node() {
        const broker = new NatsBroker({ servers: SHARED_NATS_URL, stream, ...options });
        nodes.push(broker);
        return broker;
      },
      async cleanup() {
        try {
          await Promise.all(nodes.map((node) => node.close()));
          const jsm = await jetstreamManager(admin);
          await jsm.streams.delete(stream).catch(() => {});
          await jsm.streams.delete(`KV_${stream}_IDS`).catch(() => {});
          await jsm.streams.delete(`KV_${stream}_LATEST`).catch(() => {});
          await jsm.streams.delete(`KV_${stream}_COUNTS`).catch(() => {});
        } finally {
          await admin.close();
        }
      },
    };
  },
});
