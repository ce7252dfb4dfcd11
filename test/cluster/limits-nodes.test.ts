import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, afterEach, describe, test } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import { BACKENDS, NATS_URL, REDIS_URL } from '../helpers/backends.ts';
import { connectJetStream } from '../helpers/nats-server.ts';
import { type HubProcess, killAllHubs, spawnHub } from '../helpers/nodes.ts';
import { sleep } from '../helpers/server.ts';
import { openStream, type SseStream } from '../helpers/sse-client.ts';
import { bearer, SECRET, token } from '../helpers/tokens.ts';

/**
 * Cluster-wide limits with three `herald serve` processes on one broker (the machine's Redis and
 * NATS, each test on a log of its own): a tenant's or a subject's streams, and a credential's
 * publishes, are counted across the nodes, whichever node a client reaches; a node killed outright
 * stops counting once it leaves the roster.
 */

const BROKERS = [
  ['redis', REDIS_URL],
  ['nats', NATS_URL],
] as const;

// Heartbeats every 200 ms, a lease of 1.2 s: a killed node drops out within about 1.5 s, and a
// node counts across nodes 700 ms after it starts.
const CLUSTER = ['--node-heartbeat', '200ms', '--node-lease', '1200ms'];

/** Until the roster of every node has had its heartbeat: they count across nodes from then. */
const SETTLE_MS = 1_500;

const streams: SseStream[] = [];
afterEach(() => {
  for (const open of streams.splice(0)) open.close();
});
/** The logs the tests made, by backend, dropped at the end. */
const logs: [string, string][] = [];
after(async () => {
  await killAllHubs();
  for (const [backend, name] of logs) {
    await BACKENDS.find((b) => b.name === backend)?.drop(name);
    if (backend !== 'nats') continue;
    // The shared counters' buckets, which the backends' drop does not know of.
    const nc = await connectJetStream(NATS_URL);
    const jsm = await jetstreamManager(nc);
    for (const bucket of ['COUNTS', 'WINDOWS']) {
      await jsm.streams.delete(`KV_${name.toUpperCase()}_${bucket}`).catch(() => {});
    }
    await nc.close();
  }
});

async function cluster(url: string, extra: readonly string[]): Promise<HubProcess[]> {
  const name = `limits_${randomUUID().replaceAll('-', '').slice(0, 12)}`;
  logs.push([url === NATS_URL ? 'nats' : 'redis', name]);
  const args = ['--broker', url, '--stream', name, '--jwt-secret', SECRET, ...CLUSTER, ...extra];
  // One after the other: three compiling their TypeScript at once on a busy machine can each take
  // longer than the broker client's connect timeout.
  const nodes: HubProcess[] = [];
  for (let i = 0; i < 3; i++) nodes.push(await spawnHub(args));
  await sleep(SETTLE_MS);
  return nodes;
}

async function open(node: HubProcess, jwt: string): Promise<SseStream> {
  const opened = await openStream(`${node.url}/v1/events?topic=things/1`, { headers: bearer(jwt) });
  streams.push(opened);
  return opened;
}

/** Opens a stream and tells its status; a refused one is closed at once. */
async function status(node: HubProcess, jwt: string): Promise<number> {
  const opened = await open(node, jwt);
  if (opened.status !== 200) opened.close();
  return opened.status;
}

async function until(condition: () => Promise<boolean>, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    await sleep(100);
  }
}

const subscriber = (tenant: string, sub: string) => token({ tenant, sub, subscribe: ['things/{id}'] });

for (const [name, url] of BROKERS) {
  describe(`three nodes on ${name}`, () => {
    let nodes: HubProcess[] = [];
    afterEach(async () => {
      await Promise.all(nodes.map((node) => node.stop()));
      nodes = [];
    });

    test('a tenant capped at 3 gets its 4th refused on every node, one more once one closes, and the slots of a node killed outright once it leaves the roster', async () => {
      nodes = await cluster(url, ['--max-streams-per-tenant', '3']);
      const [a, b, c] = nodes as [HubProcess, HubProcess, HubProcess];
      const jwt = await subscriber('acme', 'alice');
      const first = await open(a, jwt);
      assert.equal(first.status, 200);
      assert.equal(await status(b, jwt), 200);
      assert.equal(await status(c, jwt), 200);
      for (const node of nodes) {
        const refused = await open(node, jwt);
        assert.equal(refused.status, 429, `the 4th stream on ${node.url}`);
        await refused.until((s) => s.ended, 10_000, 'the refusal');
        assert.match(refused.raw, /"code":"too-many-streams"/);
        assert.match(refused.raw, /across all nodes; the limit is 3/);
      }
      first.close();
      await until(async () => (await status(b, jwt)) === 200, 'the closed stream’s slot');
      assert.equal(await status(c, jwt), 429);
      // c holds one of the three; killed, it says goodbye to nobody.
      await c.kill();
      assert.equal(await status(a, jwt), 429, 'still counted while c is in the roster');
      await until(async () => (await status(a, jwt)) === 200, 'c to leave the roster', 15_000);
      assert.equal(await status(b, jwt), 429);
    });

    test('a subject capped at 1 gets its 2nd refused on every node; another tenant’s subject of the same name and the tenant "a:b" are others', async () => {
      nodes = await cluster(url, ['--max-streams-per-subject', '1']);
      const [a, b, c] = nodes as [HubProcess, HubProcess, HubProcess];
      const alice = await subscriber('acme', 'alice');
      const held = await open(b, alice);
      assert.equal(held.status, 200);
      for (const node of nodes) assert.equal(await status(node, alice), 429);
      assert.equal(await status(c, await subscriber('globex', 'alice')), 200);
      assert.equal(await status(a, await subscriber('a:b', 'c')), 200);
      assert.equal(await status(c, await subscriber('a', 'b:c')), 200);
      held.close();
      await until(async () => (await status(a, alice)) === 200, 'the subject’s slot');
    });

    test('a credential publishing through three nodes stays within the window’s allowance plus a chunk per node', async (t) => {
      // 20 events/s, burst 20: windows of 1 s admitting 20, leased in chunks of 2 (low enough that
      // three nodes exceed it on a busy machine too).
      nodes = await cluster(url, ['--publish-rate', '20', '--publish-burst', '20']);
      const headers = {
        'content-type': 'application/json',
        ...bearer(await token({ tenant: 'acme', sub: 'billing', publish: ['things/{id}'] })),
      };
      const body = JSON.stringify({ topic: 'things/1', data: {} });
      const accepted: number[] = [];
      const statuses = new Map<number, number>();
      const started = Date.now();
      const runMs = 3_000;
      await Promise.all(
        nodes.map(async (node) => {
          while (Date.now() - started < runMs) {
            const response = await fetch(`${node.url}/v1/publish`, { method: 'POST', headers, body });
            await response.arrayBuffer();
            statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1);
            if (response.status === 202) accepted.push(Date.now());
          }
        }),
      );
      const requests = (statuses.get(202) ?? 0) + (statuses.get(429) ?? 0);
      assert.equal(
        requests,
        [...statuses.values()].reduce((a, b) => a + b, 0),
        `${JSON.stringify([...statuses])}`,
      );
      // The first window opens with the first publish: 3 s touch at most 4 windows.
      const windows = Math.ceil(runMs / 1_000) + 1;
      const bound = windows * (20 + 3 * 2);
      t.diagnostic(
        `${name}: ${accepted.length} publishes accepted in ${runMs} ms, ${statuses.get(429)} refused`,
      );
      assert.ok(accepted.length <= bound, `${accepted.length} accepted; at most ${bound}`);
      if (requests > bound) assert.ok((statuses.get(429) ?? 0) > 0, 'the nodes together were refused');
      // Alone, each node would have admitted 20 + 20 per second, 3 × 80 in all.
      const usable = Math.min(requests, 2 * (20 - 3 * 2));
      assert.ok(accepted.length >= usable, `${accepted.length} accepted of ${requests}: the rate is usable`);
    });
  });
}

describe('workers of one node (--workers 2): the primary counts', () => {
  let node: HubProcess | undefined;
  after(() => node?.stop());

  test('a tenant capped at 2 holds 2 streams, whichever worker each connection lands on', async () => {
    node = await spawnHub([
      '--workers',
      '2',
      '--jwt-secret',
      SECRET,
      ...CLUSTER,
      '--max-streams-per-tenant',
      '2',
    ]);
    await sleep(SETTLE_MS);
    const jwt = await subscriber('acme', 'alice');
    // Each a new connection: the kernel spreads them over both workers, each of which alone
    // would admit 2.
    const answers: number[] = [];
    for (let i = 0; i < 8; i++) answers.push(await status(node, jwt));
    assert.deepEqual(answers.filter((answer) => answer === 200).length, 2, `answers ${answers.join(',')}`);
    assert.ok(answers.every((answer) => answer === 200 || answer === 429));
  });
});
