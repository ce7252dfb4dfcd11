import { randomBytes } from 'node:crypto';
import { before } from 'node:test';
import { FailoverLog } from '../../src/backends/failover/log.ts';
import { RedisBroker } from '../../src/backends/redis/broker.ts';
import type { Broker } from '../../src/core/log.ts';
import { deletePrefix, REDIS_URL, requireRedis } from '../helpers/redis-server.ts';
import { brokerContract } from './contract.ts';

/**
 * `--on-broker-down local` on a broker that stays up: the log that rides out outages must be the
 * broker's log, unchanged (the shared contract), while it is on the broker. Its outages are in
 * test/cluster/outage-*.test.ts.
 */

before(() => requireRedis());

brokerContract({
  name: 'redis, riding out outages (--on-broker-down local)',
  shared: true,
  async newLog(options = {}) {
    const stream = `herald-test-${randomBytes(8).toString('hex')}`;
    const nodes: Broker[] = [];
    return {
      node() {
        const log = new FailoverLog(new RedisBroker({ url: REDIS_URL, stream, ...options }));
        nodes.push(log);
        return log;
      },
      async cleanup() {
        await Promise.all(nodes.map((node) => node.close()));
        await deletePrefix(REDIS_URL, stream);
      },
    };
  },
});
