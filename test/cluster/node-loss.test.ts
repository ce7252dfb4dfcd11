import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { SignJWT } from 'jose';
import { startPrivateNats } from '../helpers/nats-server.ts';
import { type HubProcess, killAllHubs, spawnHub } from '../helpers/nodes.ts';
import { startPrivateRedis } from '../helpers/redis-server.ts';
import { sleep } from '../helpers/server.ts';
import { openStream, type SseStream } from '../helpers/sse-client.ts';
import { bearer, SECRET, token } from '../helpers/tokens.ts';

// biome-ignore lint/suspicious/noExplicitAny: answers are read field by field and asserted on.
type Json = Record<string, any>;
/**
 * Three `herald serve` processes on a broker of the test's own (Redis, then NATS): every node
 * sees the others (`/v1/nodes`), lists and ends connections on all of them, counts presence
 * across them; and a node killed with SIGKILL (no goodbye) drops out of the nodes, the
 * connections and the presence within the lease (2 s here).
 */

const LEASE_MS = 2_000;
const ARGS = [
  '--node-heartbeat',
  '300ms',
  '--node-lease',
  `${LEASE_MS}ms`,
  '--jwt-secret',
  SECRET,
  '--mercure-subscriptions',
];
const SUBSCRIPTIONS = '/.well-known/mercure/subscriptions';

/** A Mercure token of the hub's key (`mercure.subscribe` selectors). */
async function mercureToken(subscribe: string[]): Promise<string> {
  return new SignJWT({ mercure: { subscribe } })
    .setProtectedHeader({ alg: 'HS256' })
    .setExpirationTime('1h')
    .sign(new TextEncoder().encode(SECRET));
}

async function getJson(url: string, jwt: string) {
  const response = await fetch(url, { headers: bearer(jwt) });
  return { status: response.status, body: (await response.json()) as Json };
}

// Generous: three hub processes and a broker share a busy machine. A passing run never waits them out.
async function until(condition: () => Promise<boolean>, what: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    await sleep(100);
  }
}

const BROKERS = {
  async redis() {
    const redis = await startPrivateRedis();
    return { url: redis.url, stop: () => redis.stop() };
  },
  async nats() {
    const nats = await startPrivateNats();
    return { url: nats.url, stop: () => nats.dispose() };
  },
};

for (const [name, start] of Object.entries(BROKERS)) {
  describe(`a cluster of three hub processes on ${name}`, () => {
    let broker: { url: string; stop: () => Promise<void> };
    const nodes: HubProcess[] = [];
    const streams: SseStream[] = [];
    let admin: string;

    before(async () => {
      broker = await start();
      const stream = `cluster${randomBytes(4).toString('hex')}`;
      // One after the other: three processes compiling at once on a loaded machine time out connecting.
      for (let i = 0; i < 3; i++)
        nodes.push(await spawnHub(['--broker', broker.url, '--stream', stream, ...ARGS]));
      admin = await token({ admin: true, sub: 'ops' });
      for (const node of nodes) {
        await until(
          async () => (await getJson(`${node.url}/v1/nodes`, admin)).body.nodes?.length === 3,
          'every node to list the three',
        );
      }
    });

    after(async () => {
      for (const each of streams) each.close();
      await killAllHubs();
      await broker?.stop();
    });

    async function open(node: HubProcess, sub: string, topic: string): Promise<SseStream> {
      const jwt = await token({ tenant: 'acme', sub, subscribe: [topic] });
      const opened = await openStream(`${node.url}/v1/events?topic=${encodeURIComponent(topic)}`, {
        headers: bearer(jwt),
      });
      streams.push(opened);
      await opened.untilConnected();
      return opened;
    }

    test('connections, presence and a disconnect by subject span every node', async () => {
      const [a, b, c] = nodes as [HubProcess, HubProcess, HubProcess];
      await open(a, 'sam', 'lobby');
      await open(c, 'pat', 'lobby');
      const spammerA = await open(a, 'spammer', 'lobby');
      const spammerB = await open(b, 'spammer', 'lobby');
      const presence = await getJson(`${b.url}/v1/presence?topic=lobby&tenant=acme`, admin);
      assert.equal(presence.body.connections, 4);
      assert.equal(presence.body.subjects, 3);
      assert.deepEqual(presence.body.incomplete, []);
      const listed = await getJson(`${b.url}/v1/connections?tenant=acme&topic=lobby`, admin);
      assert.equal(listed.body.connections.length, 4);
      assert.equal(new Set(listed.body.connections.map((row: { node: string }) => row.node)).size, 3);
      const response = await fetch(`${c.url}/v1/connections/disconnect`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...bearer(admin) },
        body: JSON.stringify({ subject: 'spammer', tenant: 'acme', reason: 'spam', reconnect: false }),
      });
      const answer = (await response.json()) as {
        disconnected: number;
        nodes: string[];
        incomplete: string[];
      };
      assert.equal(answer.disconnected, 2);
      assert.equal(answer.nodes.length, 3);
      for (const ended of [spammerA, spammerB]) {
        await ended.untilEnded(10_000);
        assert.ok(ended.events.some((event) => event.type === 'herald.disconnect'));
      }
      assert.equal(
        (await getJson(`${a.url}/v1/presence?topic=lobby&tenant=acme`, admin)).body.connections,
        2,
      );
    });

    test('a node killed with SIGKILL drops out of nodes, connections and presence within the lease', async () => {
      const [a, , c] = nodes as [HubProcess, HubProcess, HubProcess];
      // A presence stream on node a: it hears pat, whose stream is on node c, leave when c dies.
      const watcherToken = await token({
        tenant: 'acme',
        sub: 'watcher',
        subscribe: ['lobby'],
        permissions: ['presence:members'],
      });
      const watcher = await openStream(`${a.url}/v1/events?topic=lobby&presence=1`, {
        headers: bearer(watcherToken),
      });
      streams.push(watcher);
      await watcher.untilConnected();
      // A Mercure subscriber on node c, which node a lists among the active subscriptions.
      const room = `https://example.com/rooms/${randomBytes(4).toString('hex')}`;
      const mercure = await openStream(`${c.url}/.well-known/mercure?topic=${encodeURIComponent(room)}`, {
        headers: bearer(await mercureToken([room])),
      });
      streams.push(mercure);
      const watcherOfSubscriptions = bearer(await mercureToken([`${SUBSCRIPTIONS}{/topic}{/subscriber}`]));
      const listedOnA = async () => {
        const response = await fetch(`${a.url}${SUBSCRIPTIONS}`, { headers: watcherOfSubscriptions });
        const body = (await response.json()) as { subscriptions: { topic: string }[] };
        return body.subscriptions.filter((subscription) => subscription.topic === room).length;
      };
      await until(async () => (await listedOnA()) === 1, "node c's Mercure subscription listed on node a");
      await sleep(500);
      const killedId = (await getJson(`${c.url}/v1/nodes`, admin)).body.nodes.find(
        (node: { self: boolean }) => node.self,
      ).id;
      await c.kill();
      const killedAt = Date.now();
      // Until the lease runs out, the dead node is still expected: answers name it as incomplete.
      const during = await getJson(`${a.url}/v1/presence?topic=lobby&tenant=acme`, admin);
      assert.ok(
        during.body.incomplete.includes(killedId) || Date.now() - killedAt > LEASE_MS,
        JSON.stringify(during.body),
      );
      await until(async () => {
        const listed = (await getJson(`${a.url}/v1/nodes`, admin)).body.nodes;
        return !listed.some((node: { id: string }) => node.id === killedId);
      }, 'the killed node to drop out');
      const droppedAfter = Date.now() - killedAt;
      await watcher.until(
        (s) => s.events.some((event) => event.type === 'herald.presence'),
        10_000,
        "pat's leave",
      );
      const leave = JSON.parse(
        watcher.events.find((event) => event.type === 'herald.presence')?.data ?? '{}',
      );
      assert.deepEqual(leave, { topic: 'lobby', action: 'leave', subject: 'pat', connections: 0 });
      // The lease, a sweep (a quarter lease) and a loaded machine's slack.
      assert.ok(droppedAfter < LEASE_MS * 3, `dropped after ${droppedAfter} ms`);
      const presence = await getJson(`${a.url}/v1/presence?topic=lobby&tenant=acme`, admin);
      // sam's stream on node a, and the watcher's own.
      assert.equal(presence.body.connections, 2);
      assert.deepEqual(presence.body.incomplete, []);
      const listed = await getJson(`${a.url}/v1/connections?tenant=acme`, admin);
      assert.ok(listed.body.connections.every((row: { node: string }) => row.node !== killedId));
      // Its Mercure subscription no longer stays listed for ever.
      await until(async () => (await listedOnA()) === 0, "node c's Mercure subscription to end", 10_000);
      process.stdout.write(
        `# ${name}: killed node dropped out after ${droppedAfter} ms (lease ${LEASE_MS} ms)\n`,
      );
    });
  });
}
