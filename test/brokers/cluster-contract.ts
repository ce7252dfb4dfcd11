import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  type Broadcasting,
  broadcasterOf,
  type SharedCounting,
  sharedCounterOf,
} from '../../src/core/cluster.ts';
import type { Log } from '../../src/core/log.ts';

/**
 * What every backend's cluster abilities (core/cluster.ts) promise, as one suite each backend
 * runs against a real server: the bus and the shared counters. A cluster is a fresh namespace on
 * that server (a stream name of its own); `node()` gives another broker on it, as another Herald
 * node would have.
 */
export interface ClusterBackend {
  readonly name: string;
  /** Whether several brokers can share one cluster (false for the in-process memory broker). */
  readonly shared: boolean;
  newCluster(): Promise<Cluster>;
}

export interface Cluster {
  node(): Log;
  /** Closes every node made and removes what the cluster left on the server. */
  cleanup(): Promise<void>;
}

type Node = Log & Broadcasting & SharedCounting;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function until(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(10);
  }
}

/** The node's bus and counters, which every built-in backend has. */
export function clustered(log: Log): Node {
  assert.ok(broadcasterOf(log), `${log.kind} has a bus`);
  assert.ok(sharedCounterOf(log), `${log.kind} has shared counters`);
  return log as Node;
}

const PROBE = 'probe:';

/** Everything a listener heard, probes left out. */
export function hear(node: Broadcasting): { heard: string[]; stop: () => void } {
  const heard: string[] = [];
  const stop = node.listen((message) => {
    if (!message.startsWith(PROBE)) heard.push(message);
  });
  return { heard, stop };
}

/**
 * Waits until every node hears every other one: a bus subscribes on its own time after the first
 * `listen` (and the messages before are lost, as pub/sub loses them), so each node broadcasts
 * probes until all have heard one from each.
 */
export async function hearingEachOther(nodes: readonly Broadcasting[], timeoutMs = 15_000): Promise<void> {
  const heard = nodes.map(() => new Set<number>());
  const stops = nodes.map((node, i) =>
    node.listen((message) => {
      if (message.startsWith(PROBE)) heard[i]?.add(Number(message.slice(PROBE.length)));
    }),
  );
  try {
    const deadline = Date.now() + timeoutMs;
    while (!heard.every((set) => set.size === nodes.length)) {
      if (Date.now() > deadline) throw new Error(`the nodes did not hear each other in ${timeoutMs} ms`);
      await Promise.all(nodes.map((node, i) => node.broadcast(`${PROBE}${i}`).catch(() => {})));
      await sleep(50);
    }
  } finally {
    for (const stop of stops) stop();
  }
}

export function clusterContract(backend: ClusterBackend): void {
  describe(`${backend.name} cluster abilities contract`, () => {
    const withCluster = (name: string, body: (cluster: Cluster) => Promise<void>) =>
      test(name, async () => {
        const cluster = await backend.newCluster();
        try {
          await body(cluster);
        } finally {
          await cluster.cleanup();
        }
      });
    /** Several nodes of one cluster, or one where the backend cannot share. */
    const nodesOf = (cluster: Cluster, count: number): Node[] =>
      Array.from({ length: backend.shared ? count : 1 }, () => clustered(cluster.node()));

    withCluster(
      'a broadcast reaches every listener of every node, the sender’s included',
      async (cluster) => {
        const nodes = nodesOf(cluster, 3);
        await hearingEachOther(nodes);
        const ears = nodes.flatMap((node) => [hear(node), hear(node)]);
        await (nodes[0] as Node).broadcast('hello');
        await until(() => ears.every((ear) => ear.heard.length >= 1), 'every listener');
        await sleep(100);
        for (const ear of ears) assert.deepEqual(ear.heard, ['hello'], 'once each');
      },
    );

    withCluster('messages arrive in order per sender, every byte intact', async (cluster) => {
      const nodes = nodesOf(cluster, 2);
      await hearingEachOther(nodes);
      const ear = hear(nodes.at(-1) as Node);
      // A newline would end a frame on the workers' pipe; U+2028 is valid JSON but not JS source.
      const odd = ['', 'line 1\nline 2', '\u2028 Zürich 🎉 "quoted" \\ {"json":true}', 'x'.repeat(64 * 1024)];
      const sent = [...odd, ...Array.from({ length: 30 }, (_, i) => `m${i}`)];
      for (const message of sent) await (nodes[0] as Node).broadcast(message);
      await until(() => ear.heard.length >= sent.length, 'every message');
      assert.deepEqual(ear.heard, sent);
    });

    withCluster('broadcasts sent without awaiting stay in order', async (cluster) => {
      const nodes = nodesOf(cluster, 2);
      await hearingEachOther(nodes);
      const ear = hear(nodes.at(-1) as Node);
      const sent = Array.from({ length: 50 }, (_, i) => `n${i}`);
      await Promise.all(sent.map((message) => (nodes[0] as Node).broadcast(message)));
      await until(() => ear.heard.length >= sent.length, 'every message');
      assert.deepEqual(ear.heard, sent);
    });

    withCluster('another cluster (another stream name) hears nothing of this one', async (cluster) => {
      const other = await backend.newCluster();
      try {
        const [mine] = nodesOf(cluster, 1) as [Node];
        const theirs = clustered(other.node());
        await hearingEachOther([mine]);
        await hearingEachOther([theirs]);
        const myEar = hear(mine);
        const theirEar = hear(theirs);
        await mine.broadcast('mine');
        await theirs.broadcast('theirs');
        await until(() => myEar.heard.length >= 1 && theirEar.heard.length >= 1, 'each its own');
        await sleep(200);
        assert.deepEqual(myEar.heard, ['mine']);
        assert.deepEqual(theirEar.heard, ['theirs']);
      } finally {
        await other.cleanup();
      }
    });

    withCluster(
      'a stopped listener hears nothing more; the others go on, even past one that throws',
      async (cluster) => {
        const nodes = nodesOf(cluster, 2);
        await hearingEachOther(nodes);
        const stopped = hear(nodes[0] as Node);
        const kept = hear(nodes[0] as Node);
        const remote = hear(nodes.at(-1) as Node);
        const thrower = (nodes[0] as Node).listen(() => {
          throw new Error('a listener that fails');
        });
        stopped.stop();
        stopped.stop(); // twice is harmless
        await (nodes.at(-1) as Node).broadcast('after');
        await until(() => kept.heard.length >= 1 && remote.heard.length >= 1, 'the listeners kept');
        assert.deepEqual(stopped.heard, []);
        assert.deepEqual(kept.heard, ['after']);
        thrower();
      },
    );

    withCluster('the same function listening twice is two listeners, each stopped alone', async (cluster) => {
      const [node] = nodesOf(cluster, 1) as [Node];
      await hearingEachOther([node]);
      const heard: string[] = [];
      const listener = (message: string) => {
        if (!message.startsWith(PROBE)) heard.push(message);
      };
      const first = node.listen(listener);
      node.listen(listener);
      await node.broadcast('a');
      await until(() => heard.length >= 2, 'both');
      first();
      await node.broadcast('b');
      await until(() => heard.length >= 3, 'the one left');
      await sleep(100);
      assert.deepEqual(heard, ['a', 'a', 'b']);
    });

    withCluster('a closed node hears nothing, and the others carry on', async (cluster) => {
      const nodes = nodesOf(cluster, 2);
      await hearingEachOther(nodes);
      const closing = hear(nodes[0] as Node);
      const staying = hear(nodes.at(-1) as Node);
      await (nodes[0] as Node).close();
      if (backend.shared) {
        await (nodes[1] as Node).broadcast('after close');
        await until(() => staying.heard.length >= 1, 'the node left');
        await sleep(100);
      }
      assert.deepEqual(closing.heard, []);
    });

    withCluster('acquire: concurrent acquires from several nodes never pass the limit', async (cluster) => {
      const nodes = nodesOf(cluster, 3);
      const names = nodes.map((_, i) => `node-${i}`);
      const results = await Promise.all(
        Array.from({ length: 50 }, (_, i) =>
          (nodes[i % nodes.length] as Node).acquire('streams', names[i % nodes.length] as string, 10, names),
        ),
      );
      assert.equal(results.filter(Boolean).length, 10);
      // Full: even the node that holds nothing gets no more.
      assert.equal(await (nodes[0] as Node).acquire('streams', 'node-x', 10, [...names, 'node-x']), false);
      // One released, one more fits.
      await (nodes[0] as Node).release('streams', names[results.indexOf(true) % nodes.length] as string);
      assert.equal(await (nodes.at(-1) as Node).acquire('streams', 'node-x', 10, [...names, 'node-x']), true);
      assert.equal(await (nodes[0] as Node).acquire('streams', 'node-x', 10, [...names, 'node-x']), false);
    });

    withCluster(
      'acquire: counts of nodes not alive are dropped; the acquiring node keeps its own',
      async (cluster) => {
        const nodes = nodesOf(cluster, 2);
        const [a, b] = [nodes[0] as Node, nodes.at(-1) as Node];
        for (let i = 0; i < 3; i++) assert.equal(await a.acquire('k', 'dead', 3, ['dead', 'alive']), true);
        assert.equal(await b.acquire('k', 'alive', 3, ['dead', 'alive']), false, 'full while "dead" lives');
        assert.equal(await b.acquire('k', 'alive', 3, ['alive']), true, '"dead" is forgotten');
        assert.equal(
          await b.acquire('k', 'alive', 3, ['dead', 'alive']),
          true,
          'its counts are gone for good',
        );
        // "alive" holds 2; naming no live nodes at all still keeps the caller's own.
        assert.equal(await a.acquire('k', 'alive', 3, []), true);
        assert.equal(await a.acquire('k', 'alive', 3, []), false);
      },
    );

    withCluster('release: never below zero, and only the node’s own count', async (cluster) => {
      const nodes = nodesOf(cluster, 2);
      const [a, b] = [nodes[0] as Node, nodes.at(-1) as Node];
      const live = ['n1', 'n2'];
      assert.equal(await a.acquire('k', 'n1', 1, live), true);
      await b.release('k', 'n2'); // holds nothing
      assert.equal(await b.acquire('k', 'n2', 1, live), false, "n2's release took nothing of n1's");
      await a.release('k', 'n1');
      await a.release('k', 'n1');
      await a.release('k', 'n1');
      await a.release('never-acquired', 'n1');
      assert.equal(await a.acquire('k', 'n1', 1, live), true);
      assert.equal(await b.acquire('k', 'n2', 1, live), false, 'the releases did not go below zero');
    });

    withCluster(
      'acquire: a limit of 0 refuses; keys are separate, whatever characters they hold',
      async (cluster) => {
        const [node] = nodesOf(cluster, 1) as [Node];
        assert.equal(await node.acquire('zero', 'n', 0, ['n']), false);
        // Dots and wildcards are subject syntax on NATS, `:` the key separator on Redis; and
        // strings a backend's own encoding could produce (base64url of "a" is "YQ").
        const keys = [
          'a',
          'a.b',
          'a.*',
          'a.>',
          '*',
          '>',
          'a b',
          'a:b',
          'YQ',
          '_YQ',
          '=',
          'é🎉',
          '\n',
          'x'.repeat(5000),
        ];
        for (const key of keys)
          assert.equal(await node.acquire(key, 'n', 1, ['n']), true, `key ${key.slice(0, 20)}`);
        for (const key of keys)
          assert.equal(await node.acquire(key, 'n', 1, ['n']), false, `key ${key.slice(0, 20)}`);
      },
    );

    withCluster('bad input is refused with a clear error, nothing counted', async (cluster) => {
      const [node] = nodesOf(cluster, 1) as [Node];
      const refused = (pattern: RegExp) => (error: unknown) =>
        error instanceof RangeError && pattern.test(error.message);
      await assert.rejects(node.acquire('', 'n', 1, ['n']), refused(/key must be a non-empty string/));
      await assert.rejects(node.acquire('k', '', 1, ['n']), refused(/node must be named/));
      await assert.rejects(
        node.acquire('k', 'n', -1, ['n']),
        refused(/limit must be an integer of 0 or more, not -1/),
      );
      await assert.rejects(node.acquire('k', 'n', 1.5, ['n']), refused(/limit/));
      await assert.rejects(node.acquire('k', 'n', Number.NaN, ['n']), refused(/limit/));
      await assert.rejects(
        node.acquire('k', 'n', 1, 'n' as unknown as string[]),
        refused(/live nodes .* must be an array/),
      );
      await assert.rejects(node.release('', 'n'), refused(/key/));
      await assert.rejects(node.consume('', 1, 1000), refused(/key/));
      await assert.rejects(node.consume('w', -1, 1000), refused(/amount must be an integer of 0 or more/));
      await assert.rejects(node.consume('w', 1, 0), refused(/window must be a positive number of ms/));
      await assert.rejects(node.consume('w', 1, Number.POSITIVE_INFINITY), refused(/window/));
      assert.equal(await node.acquire('k', 'n', 1, ['n']), true, 'nothing was counted under "k"');
      assert.equal((await node.consume('w', 1, 10_000)).total, 1, 'nothing was counted under "w"');
    });

    withCluster(
      'consume: a window counts across nodes, and a new one starts when it ends',
      async (cluster) => {
        const nodes = nodesOf(cluster, 2);
        const [a, b] = [nodes[0] as Node, nodes.at(-1) as Node];
        // Long enough that two calls in a row fall in one window on a loaded machine.
        const windowMs = 1500;
        const first = await a.consume('rate', 1, windowMs);
        assert.equal(first.total, 1);
        assert.ok(first.resetMs > 0 && first.resetMs <= windowMs, `resetMs ${first.resetMs}`);
        const second = await b.consume('rate', 4, windowMs);
        assert.equal(second.total, 5);
        assert.ok(second.resetMs <= first.resetMs + 50, 'the same window');
        assert.equal((await a.consume('other-rate', 2, windowMs)).total, 2, 'keys are separate');
        assert.equal((await a.consume('rate', 0, windowMs)).total, 5, 'an amount of 0 reads');
        await sleep(second.resetMs + 100);
        const next = await b.consume('rate', 1, windowMs);
        assert.equal(next.total, 1, 'a new window');
        assert.ok(next.resetMs > windowMs / 2, `resetMs ${next.resetMs}`);
      },
    );

    withCluster('consume: concurrent adds from several nodes are all counted', async (cluster) => {
      const nodes = nodesOf(cluster, 3);
      const counts = await Promise.all(
        Array.from({ length: 60 }, (_, i) => (nodes[i % nodes.length] as Node).consume('burst', 1, 30_000)),
      );
      assert.deepEqual(
        counts.map((count) => count.total).sort((x, y) => x - y),
        Array.from({ length: 60 }, (_, i) => i + 1),
        'each add saw a total of its own',
      );
    });
  });
}
