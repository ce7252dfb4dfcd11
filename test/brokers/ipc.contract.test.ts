import { duplexPair } from 'node:stream';
import { IpcBroker, LogServer } from '../../src/backends/ipc/broker.ts';
import { MemoryBroker } from '../../src/backends/memory/broker.ts';
import type { Broker } from '../../src/core/log.ts';
import { brokerContract } from './contract.ts';

// The workers of `herald serve --workers N` share one memory log through the primary: the same
// contract, with every node a worker on its own pipe to that log.
brokerContract({
  name: 'ipc (memory log in the primary)',
  shared: true,
  async newLog(options = {}) {
    const server = new LogServer(new MemoryBroker(options));
    const nodes: Broker[] = [];
    return {
      node() {
        const [primarySide, workerSide] = duplexPair();
        server.attach(primarySide);
        const broker = new IpcBroker(workerSide);
        nodes.push(broker);
        return broker;
      },
      async cleanup() {
        await Promise.all(nodes.map((node) => node.close()));
        await server.close();
      },
    };
  },
});
