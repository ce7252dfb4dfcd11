import { MemoryBroker } from '../../src/backends/memory/broker.ts';
import type { Broker } from '../../src/core/log.ts';
import { brokerContract } from './contract.ts';

brokerContract({
  name: 'memory',
  shared: false,
  async newLog(options = {}) {
    const nodes: Broker[] = [];
    return {
      node() {
        const broker = new MemoryBroker(options);
        nodes.push(broker);
        return broker;
      },
      async cleanup() {
        await Promise.all(nodes.map((node) => node.close()));
      },
    };
  },
});
