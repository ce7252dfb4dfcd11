import { randomBytes } from 'node:crypto';
import { before } from 'node:test';
import { RedisBroker } from '../../src/backends/redis/broker.ts';
import type { Broker } from '../../src/core/log.ts';
import { deletePrefix, REDIS_URL, requireRedis } from '../helpers/redis-server.ts';
import { brokerContract } from './contract.ts';

// Never a silent skip: without the machine's Redis every test fails, saying why and what to do.
before(() => requireRedis());

brokerContract({
  name: 'redis',
  shared: true,
  async newLog(options = {}) {
    // A fresh key prefix per log, removed by cleanup: tests never see each other's events.
    const stream = `herald-test-${randomBytes(8).toString('hex')}`;
    const nodes: Broker[] = [];
    return {
      node() {
        const broker = new RedisBroker({ url: REDIS_URL, stream, ...options });
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
