import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { createClient } from 'redis';
import { BACKENDS, type Backend, NATS_URL, REDIS_URL } from '../helpers/backends.ts';
import { startPrivateNats } from '../helpers/nats-server.ts';
import { type HubProcess, killAllHubs, spawnHub } from '../helpers/nodes.ts';
import { startPrivateRedis } from '../helpers/redis-server.ts';
import { ResumingClient } from '../helpers/resuming-client.ts';
import { sleep } from '../helpers/server.ts';
import { openStream, type SseStream } from '../helpers/sse-client.ts';

/** A broker server of the test's own, to kill and bring back. */
interface PrivateBroker {
  readonly url: string;
  kill(): Promise<void>;
  restart(): Promise<void>;
  stop(): Promise<void>;
}

const SHARED: Record<string, string> = { redis: REDIS_URL, nats: NATS_URL };

async function privateBroker(name: string): Promise<PrivateBroker> {
  if (name === 'redis') {
    const redis = await startPrivateRedis({ persistent: true });
    return {
      url: redis.url,
      kill: () => redis.kill(),
      restart: () => redis.restart(),
      stop: () => redis.stop(),
    };
  }
  const nats = await startPrivateNats();
  return { url: nats.url, kill: () => nats.kill(), restart: () => nats.start(), stop: () => nats.dispose() };
}

async function publish(node: HubProcess, events: readonly unknown[]): Promise<number> {
  try {
    const response = await fetch(`${node.url}/v1/publish`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(events),
    });
    await response.arrayBuffer();
    return response.status;
  } catch {
    return 0;
  }
}

// Waits are long: on a machine busy with other work, three hub processes and a broker share
// what is left of the CPU. A passing run never waits them out.
async function until(
  condition: () => boolean,
  what: string,
  timeoutMs = 60_000,
  /** Run before each look at `condition` (to fetch what it looks at). */
  step?: () => Promise<void>,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    await step?.();
    if (condition()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    await sleep(step === undefined ? 25 : 100);
  }
}

/** Open streams, closed in `after` whether or not their test got to close them. */
const opened: SseStream[] = [];
async function subscribe(url: string): Promise<SseStream> {
  const stream = await openStream(url);
  opened.push(stream);
  return stream;
}

// Whatever a failed test left: its streams, and every hub process this file started (one that
// started among several in a Promise.all that rejected is in no test's hands).
after(async () => {
  for (const stream of opened) stream.close();
  await killAllHubs();
});

for (const backend of BACKENDS.filter((b): b is Backend => b.name !== 'memory')) {
  describe(`a cluster of hub processes on ${backend.name}`, () => {
    const streams: string[] = [];
    const start = async (count: number, broker = SHARED[backend.name] as string, extra: string[] = []) => {
      const stream = backend.newStream();
      streams.push(stream);
      return Promise.all(
        Array.from({ length: count }, () => spawnHub(['--broker', broker, '--stream', stream, ...extra])),
      );
    };
    after(async () => {
      for (const stream of opened) stream.close();
      await killAllHubs();
      for (const stream of streams) await backend.drop(stream);
    });

    test('three nodes: every subscriber on every node gets every event once, in the same order', async () => {
      const cluster = await start(3);
      const subscribers = await Promise.all(
        Array.from({ length: 30 }, (_, i) =>
          subscribe(
            `${(cluster[i % 3] as HubProcess).url}/v1/events?topic=${encodeURIComponent('jobs/{id}')}`,
          ),
        ),
      );
      await Promise.all(subscribers.map((s) => s.until((x) => x.events.length >= 1, 30_000)));
      // Three publishers at once, each to a different node, in batches.
      const accepted: string[] = [];
      await Promise.all(
        cluster.map(async (node, n) => {
          for (let i = 0; i < 20; i++) {
            const batch = Array.from({ length: 5 }, (_, j) => ({
              topic: `jobs/${n}`,
              data: `n${n}-${i * 5 + j}`,
            }));
            assert.equal(await publish(node, batch), 202);
            accepted.push(...batch.map((e) => e.data));
          }
        }),
      );
      await Promise.all(subscribers.map((s) => s.untilData(300, 60_000)));
      await sleep(100);
      const order = (subscribers[0]?.data ?? []).map((e) => e.data);
      assert.deepEqual([...order].sort(), [...accepted].sort(), 'every event, once');
      for (const subscriber of subscribers) {
        assert.deepEqual(
          subscriber.data.map((e) => e.data),
          order,
          'the same log order everywhere',
        );
        subscriber.close();
      }
      // Each publisher's own events keep the order it published them in.
      for (let n = 0; n < 3; n++) {
        const own = order.filter((d) => d.startsWith(`n${n}-`));
        assert.deepEqual(
          own,
          Array.from({ length: 100 }, (_, i) => `n${n}-${i}`),
        );
      }
    });

    test('kill -9 of a node under 1 000 events/s: its clients resume on the others, nothing lost or repeated', async () => {
      const cluster = await start(3);
      const urls = () => cluster.map((node) => node.url);
      const clients = Array.from({ length: 24 }, (_, i) => new ResumingClient(urls, 'topic=ticks', i % 3));
      try {
        // Every client subscribed before the count starts: one that connected late (no
        // Last-Event-ID yet) would rightly miss what was published before it.
        let pings = 0;
        while (!clients.every((c) => c.data.some((e) => e.data.startsWith('ping-')))) {
          if (pings++ > 600) assert.fail('the 24 clients did not all connect within about a minute');
          await publish(cluster[1] as HubProcess, [{ topic: 'ticks', data: `ping-${pings}` }]);
          await sleep(100);
        }
        // A fixed number of events, not as many as fit in some seconds: a busy machine publishes
        // them more slowly, but the kill still falls in the middle, with 2 000 events after it.
        // Published only to the nodes that survive: an answer lost with a dying node would leave
        // it unknown whether that event was accepted.
        const batches = 300;
        const killAt = 100;
        const accepted: string[] = [];
        let killed: Promise<void> | undefined;
        let acceptedWhenDead = -1;
        for (let i = 0; i < batches; i++) {
          if (i === killAt) {
            // Not awaited: publishing goes on while the node dies.
            killed = (cluster[0] as HubProcess).kill().then(() => {
              acceptedWhenDead = accepted.length;
            });
          }
          const batch = Array.from({ length: 10 }, (_, j) => ({
            topic: 'ticks',
            data: `tick-${i * 10 + j}`,
          }));
          assert.equal(await publish(cluster[1 + (i % 2)] as HubProcess, batch), 202);
          accepted.push(...batch.map((e) => e.data));
          await sleep(10); // about 1 000 events/s on a quiet machine
        }
        await killed;
        assert.equal(accepted.length, 3000);
        assert.ok(
          acceptedWhenDead >= 0 && acceptedWhenDead < accepted.length,
          `events were published after the node was gone (${acceptedWhenDead} of ${accepted.length} before)`,
        );
        const ticks = (client: ResumingClient) =>
          client.data.map((e) => e.data).filter((data) => data.startsWith('tick-'));
        await until(
          () => clients.every((c) => ticks(c).length >= accepted.length),
          `every client to have all ${accepted.length} events`,
        );
        await sleep(200);
        for (const client of clients) assert.deepEqual(ticks(client), accepted);
        const moved = clients.filter((c) => c.reconnects > 0).length;
        assert.ok(moved >= 8, `the killed node's clients moved (${moved} reconnected)`);
      } finally {
        await Promise.all(clients.map((c) => c.stop()));
      }
    });

    test("a rewind and a snapshot on node B of what node A published, then B's stream goes on live", async () => {
      const [a, b] = (await start(2)) as [HubProcess, HubProcess];
      const events = Array.from({ length: 12 }, (_, i) => ({
        topic: 'tiles',
        key: `tile-${i % 4}`,
        data: `v${i}`,
      }));
      // Node B's feed has them once a stream there got them: history is of what B's feed has seen.
      const watcher = await subscribe(`${b.url}/v1/events?topic=tiles`);
      await watcher.until((x) => x.events.length >= 1, 30_000);
      assert.equal(await publish(a, events), 202);
      // (Its outbox may conflate the keyed events: the last one is what says it has them all.)
      await watcher.until((x) => x.data.some((e) => e.data === 'v11'), 30_000, 'v11');
      watcher.close();
      const rewind = await subscribe(`${b.url}/v1/events?topic=tiles&rewind=5`);
      const snapshot = await subscribe(`${b.url}/v1/events?topic=tiles&snapshot=latest`);
      const marked = (s: SseStream) => s.events.some((e) => e.type === 'herald.history');
      await Promise.all([rewind, snapshot].map((s) => s.until(marked, 30_000, 'herald.history')));
      const before = (s: SseStream) => {
        const at = s.events.findIndex((e) => e.type === 'herald.history');
        return s.events.slice(1, at).map((e) => e.data);
      };
      assert.deepEqual(before(rewind), ['v7', 'v8', 'v9', 'v10', 'v11']);
      assert.deepEqual(before(snapshot), ['v8', 'v9', 'v10', 'v11']);
      const latest = (await (await fetch(`${b.url}/v1/latest?topic=tiles`)).json()) as {
        events: { data: string }[];
      };
      assert.deepEqual(
        latest.events.map((e) => e.data),
        ['v8', 'v9', 'v10', 'v11'],
      );
      assert.equal(await publish(a, [{ topic: 'tiles', key: 'tile-0', data: 'live' }]), 202);
      await Promise.all(
        [rewind, snapshot].map((s) => s.until((x) => x.data.at(-1)?.data === 'live', 30_000)),
      );
      for (const stream of [rewind, snapshot]) {
        const ids = stream.data.map((e) => e.id);
        assert.equal(new Set(ids).size, ids.length, 'no event twice');
        stream.close();
      }
    });

    test('the broker restarted mid-stream: nodes stay up, publishes get 503 meanwhile, nothing accepted is lost', async () => {
      const broker = await privateBroker(backend.name);
      try {
        const cluster = await start(2, broker.url);
        const subscribers = await Promise.all(
          cluster.flatMap((node) => [0, 1, 2].map(() => subscribe(`${node.url}/v1/events?topic=orders`))),
        );
        await Promise.all(subscribers.map((s) => s.until((x) => x.events.length >= 1, 30_000)));
        const accepted: string[] = [];
        const refused: number[] = [];
        const refusedData: string[] = [];
        let publishing = true;
        // Until the test says stop (in `finally`, so a failed wait does not leave it running).
        const publisher = (async () => {
          for (let i = 0; publishing; i++) {
            const data = `order-${i}`;
            const status = await publish(cluster[i % 2] as HubProcess, [{ topic: 'orders', data }]);
            if (status === 202) accepted.push(data);
            else {
              refused.push(status);
              refusedData.push(data);
            }
            await sleep(10);
          }
        })();
        try {
          await until(() => accepted.length >= 20, 'publishing before the outage');
          await broker.kill();
          // However long the hub takes to notice on a busy machine.
          let ready = 0;
          await until(
            () => ready === 503,
            'readyz to say the broker is gone',
            30_000,
            async () => {
              const response = await fetch(`${cluster[0]?.url}/readyz`);
              await response.arrayBuffer();
              ready = response.status;
            },
          );
          await until(() => refused.length > 0, 'a publish refused during the outage');
          await broker.restart();
          await until(
            () => accepted.length > 0 && refused.length > 0 && accepted.length > refused.length,
            'publishing again',
          );
          const afterOutage = accepted.length;
          await until(() => accepted.length >= afterOutage + 50, 'more accepted after the outage');
        } finally {
          publishing = false;
          await publisher;
        }
        assert.ok(
          refused.every((status) => status === 503),
          `refused with ${[...new Set(refused)]}`,
        );
        const wasAccepted = new Set(accepted);
        await Promise.all(
          subscribers.map((s) =>
            s.until((x) => x.data.filter((e) => wasAccepted.has(e.data)).length >= accepted.length, 60_000),
          ),
        );
        await sleep(200);
        for (const subscriber of subscribers) {
          assert.equal(subscriber.ended, false, 'the stream stayed open through the outage');
          const got = subscriber.data.map((e) => e.data);
          // Every accepted event, once, in the order accepted.
          assert.deepEqual(
            got.filter((data) => wasAccepted.has(data)),
            accepted,
          );
          // And nothing else but, at most, the one publish under way when the broker died: its
          // append may have reached the broker with the answer lost, so the hub said 503 (as any
          // store's caller cannot know whether a write whose answer was lost went through).
          const others = got.filter((data) => !wasAccepted.has(data));
          assert.ok(
            others.length <= 1 && others.every((data) => refusedData[0] === data),
            `delivered though refused: ${others} (the first refused was ${refusedData[0]})`,
          );
          assert.equal(new Set(got).size, got.length, 'no event twice');
          subscriber.close();
        }
        assert.equal((await fetch(`${cluster[0]?.url}/readyz`)).status, 200);
      } finally {
        await broker.stop();
      }
    });
  });
}

describe('a broker unreachable at start', () => {
  test('--on-broker-down fail (the default) exits with the reason', async () => {
    await assert.rejects(
      spawnHub(['--broker', 'redis://127.0.0.1:9']),
      /unreachable.*--on-broker-down local/s,
    );
  });

  test('--on-broker-down local has this node serve on its own, and /readyz says so', async () => {
    const node = await spawnHub(['--broker', 'nats://127.0.0.1:9', '--on-broker-down', 'local']);
    try {
      const ready = await fetch(`${node.url}/readyz`);
      assert.equal(ready.status, 200);
      assert.deepEqual(await ready.json(), {
        status: 'degraded',
        broker: 'nats',
        degraded: 'fallback-local',
      });
      assert.match(
        node.output(),
        /unreachable at start.*serves on its own.*rejoins the broker when it is back/s,
      );
      const published = await fetch(`${node.url}/v1/publish`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ topic: 't', data: 1 }),
      });
      assert.equal(published.status, 202);
    } finally {
      await node.kill();
    }
  });
});

describe('a bridge on two nodes', () => {
  test('turns each Redis message into one event, with the mapped topic, tenant and type', async () => {
    const stream = `test_bridge_${Date.now()}`;
    const channel = `merchant-${Date.now()}`;
    const spec = `redis:${channel}:*:progress -> merchants/{1}/progress tenant={1} type=type`;
    const nodes = await Promise.all(
      [0, 1].map(() => spawnHub(['--broker', REDIS_URL, '--stream', stream, '--bridge', spec])),
    );
    const client = createClient({ url: REDIS_URL });
    await client.connect();
    try {
      // Open mode: every request is the admin, so watching tenant m42 is allowed.
      const watcher = await subscribe(`${nodes[1]?.url}/v1/events?topic=*&tenant=m42`);
      await watcher.until((s) => s.events.length >= 1, 30_000);
      // Both bridges are subscribed once the nodes listen; wait for one to hold the lease (until
      // then each leaves a message to the other, however long a busy machine takes).
      let leaders = 0;
      await until(
        () => leaders === 1,
        'one bridge to hold the lease',
        60_000,
        async () => {
          const stats = await Promise.all(
            nodes.map(async (node) => (await fetch(`${node.url}/v1/stats`)).json()),
          );
          leaders = stats.filter((s) => s.bridges.bridges[0]?.leader === true).length;
        },
      );
      for (let i = 0; i < 10; i++) {
        await client.publish(
          `${channel}:m42:progress`,
          JSON.stringify({ type: 'progress', poId: 'po-1', pct: i * 10 }),
        );
      }
      await watcher.untilData(10, 60_000);
      await sleep(500);
      assert.equal(watcher.data.length, 10, 'each message once, though both nodes run the bridge');
      assert.deepEqual(
        watcher.data.map((e) => [e.type, JSON.parse(e.data).pct]),
        Array.from({ length: 10 }, (_, i) => ['progress', i * 10]),
      );
      const stats = await (await fetch(`${nodes[0]?.url}/v1/stats`)).json();
      assert.equal(typeof stats.bridges.received, 'number');
      watcher.close();
    } finally {
      await client.quit();
      await Promise.all(nodes.map((node) => node.kill()));
      await (BACKENDS.find((b) => b.name === 'redis') as Backend).drop(stream);
    }
  });
});
