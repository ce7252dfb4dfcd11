import assert from 'node:assert/strict';
import { duplexPair } from 'node:stream';
import { describe, test } from 'node:test';
import { IpcBroker, LogServer } from '../../src/backends/ipc/broker.ts';
import { MemoryBroker } from '../../src/backends/memory/broker.ts';
import type { Log } from '../../src/core/log.ts';
import { clusterContract, hear, until } from './cluster-contract.ts';

/** A primary's log server with `count` workers, each on its own pipe. */
function primary(count: number) {
  const memory = new MemoryBroker();
  const server = new LogServer(memory);
  const workers = Array.from({ length: count }, () => {
    const [primarySide, workerSide] = duplexPair();
    server.attach(primarySide);
    return new IpcBroker(workerSide);
  });
  return { memory, server, workers };
}

// The workers of `herald serve --workers N` share the primary's memory log: its bus and counters
// reach every worker through the pipes. A cluster is one primary; another primary hears nothing.
clusterContract({
  name: 'ipc (memory log in the primary)',
  shared: true,
  async newCluster() {
    const server = new LogServer(new MemoryBroker());
    const nodes: Log[] = [];
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

describe('ipc cluster bus', () => {
  test("the primary's own listeners hear the workers, and the workers hear the primary", async () => {
    const { memory, server, workers } = primary(2);
    try {
      const inPrimary = hear(memory);
      const inWorkers = workers.map(hear);
      await (workers[0] as IpcBroker).broadcast('from a worker');
      await memory.broadcast('from the primary');
      await until(
        () => inPrimary.heard.length >= 2 && inWorkers.every((ear) => ear.heard.length >= 2),
        'everyone',
      );
      for (const ear of [inPrimary, ...inWorkers]) {
        assert.deepEqual(ear.heard, ['from a worker', 'from the primary']);
      }
    } finally {
      await Promise.all(workers.map((worker) => worker.close()));
      await server.close();
    }
  });

  test('a worker that is gone is skipped; the others still hear', async () => {
    const { server, workers } = primary(3);
    try {
      const ears = workers.map(hear);
      await (workers[0] as IpcBroker).close();
      await (workers[1] as IpcBroker).broadcast('still here');
      await until(() => (ears[1]?.heard.length ?? 0) >= 1 && (ears[2]?.heard.length ?? 0) >= 1, 'the others');
      assert.deepEqual(ears[0]?.heard, []);
      await assert.rejects((workers[0] as IpcBroker).broadcast('closed'), /shutting down/);
    } finally {
      await Promise.all(workers.map((worker) => worker.close()));
      await server.close();
    }
  });
});
