import { MemoryBroker } from '../../src/backends/memory/broker.ts';
import type { Log } from '../../src/core/log.ts';
import { clusterContract } from './cluster-contract.ts';

// A cluster of one: the bus is a direct call, the counters exact within the process.
clusterContract({
  name: 'memory',
  shared: false,
  async newCluster() {
    const nodes: Log[] = [];
    return {
      node() {
        const broker = new MemoryBroker();
        nodes.push(broker);
        return broker;
      },
      async cleanup() {
        await Promise.all(nodes.map((node) => node.close()));
      },
    };
  },
});
