import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { BACKENDS } from '../helpers/backends.ts';
import { startHub, type TestHub } from '../helpers/server.ts';
import type { SseStream } from '../helpers/sse-client.ts';
import { bearer, SECRET, token } from '../helpers/tokens.ts';

// biome-ignore lint/suspicious/noExplicitAny: answers are read field by field and asserted on.
type Json = Record<string, any>;
/**
 * The cluster's admin API on in-process hubs that share one log: `/v1/nodes`, `/v1/connections`,
 * `/v1/connections/disconnect` and `/v1/presence`, on the memory broker (a cluster of one) and on
 * three hubs sharing a Redis, then a NATS, log and its bus. Processes killed outright are in node-loss.test.ts.
 */

const auth = { jwt: { secrets: [SECRET] } };
// A lease long enough that a loaded machine's stalls do not drop a live node; gathers wait longer
// than a stall too.
const cluster = { heartbeatMs: 250, leaseMs: 5_000, gatherTimeoutMs: 5_000 };

async function getJson(url: string, jwt?: string) {
  const response = await fetch(url, { headers: jwt === undefined ? {} : bearer(jwt) });
  return { status: response.status, body: (await response.json()) as Json };
}

async function postJson(url: string, body: unknown, jwt?: string) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(jwt === undefined ? {} : bearer(jwt)) },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as Json };
}

async function until(condition: () => Promise<boolean> | boolean, timeoutMs = 10_000, what = 'condition') {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

for (const backend of BACKENDS) {
  const size = backend.name === 'memory' ? 1 : 3;
  describe(`cluster admin API on ${backend.name} (${size} node${size > 1 ? 's' : ''})`, () => {
    const hubs: TestHub[] = [];
    const streams: SseStream[] = [];
    const stream = backend.newStream();
    let admin: string;
    let acmeAdmin: string;
    let globexAdmin: string;
    /** Node 0's watch of a topic has every node's snapshot (see PresenceFeed.watchSettled). */
    const settled = (tenant: string, topic: string) =>
      until(
        () => (hubs[0] as TestHub).herald.cluster.presence.watchSettled(tenant, topic),
        10_000,
        `the watch of ${topic} settled on every node`,
      );

    before(async () => {
      for (let i = 0; i < size; i++) {
        hubs.push(
          await startHub({
            broker: await backend.broker(stream),
            auth,
            nodeId: `node-${i}`,
            cluster,
          }),
        );
      }
      admin = await token({ admin: true, sub: 'ops' });
      acmeAdmin = await token({ admin: true, tenant: 'acme', sub: 'acme-ops' });
      globexAdmin = await token({ admin: true, tenant: 'globex', sub: 'globex-ops' });
      for (const hub of hubs) {
        await until(
          async () => (await getJson(`${hub.url}/v1/nodes`, admin)).body.nodes?.length === size,
          10_000,
          'every node in the roster',
        );
      }
    });

    after(async () => {
      for (const each of streams) each.close();
      await Promise.all(hubs.map((hub) => hub.close()));
      await backend.drop(stream);
    });

    /** A stream of `tenant` as `sub`, on hub `i`, connected. */
    async function open(i: number, tenant: string, sub: string, topics: string[]): Promise<SseStream> {
      const jwt = await token({ tenant, sub, subscribe: topics });
      const query = topics.map((topic) => `topic=${encodeURIComponent(topic)}`).join('&');
      const opened = await (hubs[i] as TestHub).subscribe(query, { headers: bearer(jwt) });
      streams.push(opened);
      await opened.untilConnected();
      return opened;
    }

    test('GET /v1/nodes lists every live node with its figures; non-admins are refused', async () => {
      await open(0, 'acme', 'alice', ['rooms/1']);
      const { status, body } = await getJson(`${hubs[size - 1]?.url}/v1/nodes`, admin);
      assert.equal(status, 200);
      assert.equal(body.nodes.length, size);
      assert.deepEqual(
        body.nodes.map((node: { id: string }) => node.id).sort(),
        hubs.map((_, i) => `node-${i}`),
      );
      assert.equal(body.leaseMs, cluster.leaseMs);
      await until(
        async () => {
          const nodes = (await getJson(`${hubs[size - 1]?.url}/v1/nodes`, admin)).body.nodes;
          return nodes.find((node: { id: string }) => node.id === 'node-0').tenants.acme?.streams >= 1;
        },
        15_000,
        "node-0's heartbeat with acme's stream",
      );
      const user = await token({ tenant: 'acme', sub: 'alice' });
      assert.equal((await getJson(`${hubs[0]?.url}/v1/nodes`, user)).status, 403);
      const scoped = (await getJson(`${hubs[0]?.url}/v1/nodes`, globexAdmin)).body.nodes;
      for (const node of scoped)
        assert.deepEqual(
          Object.keys(node.tenants).filter((t) => t !== 'globex'),
          [],
        );
    });

    test('per-tenant figures: events published and delivered, in /v1/nodes and /v1/stats', async () => {
      const alice = await open(0, 'acme', 'alice-2', ['figures']);
      const publisher = await token({ tenant: 'acme', publish: ['figures'], sub: 'figures-publisher' });
      const published = await (hubs[0] as TestHub).publish(
        [
          { topic: 'figures', data: 1 },
          { topic: 'figures', data: 2 },
        ],
        bearer(publisher),
      );
      assert.equal(published.status, 202);
      await alice.untilData(2);
      const stats = (await getJson(`${hubs[0]?.url}/v1/stats`, admin)).body;
      assert.ok(stats.tenants.acme.published >= 2, JSON.stringify(stats.tenants));
      assert.ok(stats.tenants.acme.delivered >= 2, JSON.stringify(stats.tenants));
      assert.ok(stats.tenants.acme.streams >= 1);
      const self = (await getJson(`${hubs[0]?.url}/v1/nodes`, admin)).body.nodes[0];
      assert.equal(self.self, true);
      assert.ok(self.tenants.acme.published >= 2 && self.tenants.acme.delivered >= 2, JSON.stringify(self));
      // The node's own totals cover every tenant, so they are at least the tenant's.
      assert.ok(self.published >= self.tenants.acme.published, JSON.stringify(self));
      assert.ok(self.delivered >= self.tenants.acme.delivered, JSON.stringify(self));
      assert.equal(typeof self.feedLagMs, 'number');
      // Another node's view of this one comes from its heartbeat and carries the same totals.
      if (size > 1) {
        let seen: Json | undefined;
        await until(
          async () => {
            const nodes = (await getJson(`${hubs[1]?.url}/v1/nodes`, admin)).body.nodes;
            seen = nodes.find((node: { id: string }) => node.id === self.id);
            return seen !== undefined && seen.published >= 2;
          },
          30_000,
          "node-0's totals in node-1's view",
        );
        assert.equal(typeof seen?.feedLagMs, 'number');
      }
    });

    test("GET /v1/connections lists every node's streams, filtered; a tenant admin sees only its tenant", async () => {
      await open(size - 1, 'acme', 'bob', ['rooms/2', 'rooms/{id}']);
      await open(0, 'globex', 'carol', ['rooms/2']);
      const all = (await getJson(`${hubs[0]?.url}/v1/connections?subject=bob`, admin)).body;
      assert.equal(all.connections.length, 1);
      const row = all.connections[0];
      assert.equal(row.node, `node-${size - 1}`);
      assert.equal(row.tenant, 'acme');
      assert.deepEqual(row.topics, ['rooms/2', 'rooms/{id}']);
      assert.equal(row.transport, 'sse');
      assert.equal(typeof row.bytes, 'number');
      assert.equal(row.queued, 0);
      assert.deepEqual(all.incomplete, []);
      assert.equal(all.nodes.length, size);

      const byTopic = (await getJson(`${hubs[0]?.url}/v1/connections?topic=rooms/2`, admin)).body.connections;
      assert.deepEqual(byTopic.map((r: { subject: string }) => r.subject).sort(), ['bob', 'carol']);
      const acme = (await getJson(`${hubs[0]?.url}/v1/connections`, acmeAdmin)).body.connections;
      assert.ok(acme.length >= 2);
      assert.ok(acme.every((r: { tenant: string }) => r.tenant === 'acme'));
      const other = await getJson(`${hubs[0]?.url}/v1/connections?tenant=acme`, globexAdmin);
      assert.equal(other.status, 403);
      assert.equal(other.body.code, 'tenant-forbidden');
      const limited = (await getJson(`${hubs[0]?.url}/v1/connections?limit=1`, admin)).body;
      assert.equal(limited.connections.length, 1);
      assert.equal(limited.truncated, true);
    });

    test('malformed filters are 400 with a detail that says what to fix', async () => {
      const cases: [string, string][] = [
        ['limit=0', 'invalid-limit'],
        ['limit=abc', 'invalid-limit'],
        ['tenat=acme', 'invalid-connection-filter'],
        ['subject=', 'invalid-connection-filter'],
        [`topic=${'x'.repeat(2000)}`, 'invalid-connection-filter'],
        ['topic=a%01b', 'invalid-connection-filter'],
        [`tenant=${'t'.repeat(300)}`, 'invalid-connection-filter'],
      ];
      for (const [query, code] of cases) {
        const { status, body } = await getJson(`${hubs[0]?.url}/v1/connections?${query}`, admin);
        assert.equal(status, 400, query);
        assert.equal(body.code, code, query);
        assert.ok(body.detail.length > 20, body.detail);
      }
      const bodies: unknown[] = [
        '[]',
        '{}',
        { id: 5 },
        { subject: 'x', reconnect: 'no' },
        { subject: 'x', force: true },
        { tenant: 7 },
        'not json',
      ];
      for (const body of bodies) {
        const answer = await postJson(`${hubs[0]?.url}/v1/connections/disconnect`, body, admin);
        assert.equal(answer.status, 400, JSON.stringify(body));
        assert.match(answer.body.code, /invalid-disconnect|invalid-connection-filter|malformed-json/);
      }
    });

    test('disconnect by subject ends its streams on every node, each told why; reconnect defaults to true', async () => {
      const first = await open(0, 'acme', 'mallory', ['rooms/9']);
      const second = await open(size - 1, 'acme', 'mallory', ['rooms/9']);
      const bystander = await open(0, 'acme', 'trent', ['rooms/9']);
      const answer = await postJson(
        `${hubs[0]?.url}/v1/connections/disconnect`,
        { subject: 'mallory', reason: 'banned' },
        acmeAdmin,
      );
      assert.equal(answer.status, 200);
      assert.equal(answer.body.disconnected, 2);
      assert.deepEqual(answer.body.incomplete, []);
      for (const ended of [first, second]) {
        await ended.untilEnded();
        const notice = ended.events.find((event) => event.type === 'herald.disconnect');
        assert.deepEqual(JSON.parse(notice?.data ?? '{}'), { reason: 'banned', reconnect: true });
      }
      assert.equal(bystander.ended, false);
    });

    test("another tenant's admin cannot end your streams; an unknown id is 404 after every node is asked", async () => {
      const victim = await open(size - 1, 'acme', 'victor', ['rooms/3']);
      const id = victim.connectionId as string;
      const foreign = await postJson(`${hubs[0]?.url}/v1/connections/disconnect`, { id }, globexAdmin);
      assert.equal(foreign.status, 404);
      assert.equal(foreign.body.code, 'connection-not-found');
      const named = await postJson(
        `${hubs[0]?.url}/v1/connections/disconnect`,
        { id, tenant: 'acme' },
        globexAdmin,
      );
      assert.equal(named.status, 403);
      const user = await postJson(
        `${hubs[0]?.url}/v1/connections/disconnect`,
        { id },
        await token({ tenant: 'acme', sub: 'victor' }),
      );
      assert.equal(user.status, 403);
      assert.equal(victim.ended, false);
      const forged = await postJson(
        `${hubs[0]?.url}/v1/connections/disconnect`,
        { id: 'no-such-connection' },
        admin,
      );
      assert.equal(forged.status, 404);
      assert.equal(forged.body.code, 'connection-not-found');
      const ended = await postJson(
        `${hubs[0]?.url}/v1/connections/disconnect`,
        { id, reconnect: false },
        acmeAdmin,
      );
      assert.equal(ended.body.disconnected, 1);
      await victim.untilEnded();
      const notice = victim.events.find((event) => event.type === 'herald.disconnect');
      assert.deepEqual(JSON.parse(notice?.data ?? '{}'), { reason: '', reconnect: false });
    });

    test('GET /v1/presence counts streams and subjects on a topic across nodes; members for admins', async () => {
      await open(0, 'acme', 'pat', ['lobby']);
      await open(size - 1, 'acme', 'pat', ['lobby']);
      await open(size - 1, 'acme', 'sam', ['lob{x}']);
      await open(0, 'globex', 'pat', ['lobby']);
      const viewer = await token({ tenant: 'acme', sub: 'viewer', subscribe: ['lobby'] });
      const counted = await getJson(`${hubs[0]?.url}/v1/presence?topic=lobby`, viewer);
      assert.equal(counted.status, 200);
      assert.equal(counted.body.connections, 3);
      assert.equal(counted.body.subjects, 2);
      assert.equal(counted.body.members, undefined);
      const withMembers = await getJson(`${hubs[0]?.url}/v1/presence?topic=lobby`, acmeAdmin);
      assert.deepEqual(withMembers.body.members, [
        { subject: 'pat', connections: 2 },
        { subject: 'sam', connections: 1 },
      ]);
      const permitted = await token({
        tenant: 'acme',
        subscribe: ['lobby'],
        permissions: ['presence:members'],
      });
      assert.equal(
        (await getJson(`${hubs[0]?.url}/v1/presence?topic=lobby`, permitted)).body.members.length,
        2,
      );
      const ungranted = await getJson(
        `${hubs[0]?.url}/v1/presence?topic=lobby`,
        await token({ tenant: 'acme', subscribe: ['other'] }),
      );
      assert.equal(ungranted.status, 403);
      assert.equal(ungranted.body.code, 'presence-forbidden');
      assert.equal((await getJson(`${hubs[0]?.url}/v1/presence`, viewer)).body.code, 'topic-required');
      assert.equal((await getJson(`${hubs[0]?.url}/v1/presence?topic=rooms/{id}`, acmeAdmin)).status, 400);
    });

    test('presence=1 streams hear who joins and leaves their exact topics, from every node', async () => {
      const watcherToken = await token({
        tenant: 'acme',
        sub: 'watcher',
        subscribe: ['stage'],
        permissions: ['presence:members'],
      });
      const watcher = await (hubs[0] as TestHub).subscribe('topic=stage&presence=1', {
        headers: bearer(watcherToken),
      });
      streams.push(watcher);
      await watcher.untilConnected();
      const notices = () =>
        watcher.events
          .filter((event) => event.type === 'herald.presence')
          .map((event) => JSON.parse(event.data));
      // Every node has answered the watch's snapshot: from now on each announces its changes (a
      // stream opened before is counted in the snapshot, not told as a join).
      await settled('acme', 'stage');
      const member = await open(size - 1, 'acme', 'zed', ['stage']);
      await watcher.until(() => notices().length >= 1, 15_000, 'a join');
      assert.deepEqual(notices()[0], { topic: 'stage', action: 'join', subject: 'zed', connections: 1 });
      member.close();
      await watcher.until(() => notices().length >= 2, 15_000, 'a leave');
      assert.deepEqual(notices()[1], { topic: 'stage', action: 'leave', subject: 'zed', connections: 0 });
      // Without the permission (or a * grant), a presence stream hears nothing of who comes.
      const blindToken = await token({ tenant: 'acme', sub: 'blind', subscribe: ['stage'] });
      const blind = await (hubs[0] as TestHub).subscribe('topic=stage&presence=1', {
        headers: bearer(blindToken),
      });
      streams.push(blind);
      await blind.untilConnected();
      await open(size - 1, 'acme', 'yan', ['stage']);
      await watcher.until(() => notices().length >= 3, 15_000, 'a second join');
      assert.equal(blind.events.filter((event) => event.type === 'herald.presence').length, 0);
      const refused = await (hubs[0] as TestHub).subscribe('topic=stage&presence=yes', {
        headers: bearer(blindToken),
      });
      assert.equal(refused.status, 400);
    });

    test("a stream that changes its topics joins and leaves them in the watchers' eyes; its close undoes only what it has", async () => {
      const watcherToken = await token({
        tenant: 'acme',
        sub: 'change-watcher',
        subscribe: ['dais'],
        permissions: ['presence:members'],
      });
      const watcher = await (hubs[0] as TestHub).subscribe('topic=dais&presence=1', {
        headers: bearer(watcherToken),
      });
      streams.push(watcher);
      await watcher.untilConnected();
      const notices = () =>
        watcher.events
          .filter((event) => event.type === 'herald.presence')
          .map((event) => JSON.parse(event.data));
      await settled('acme', 'dais');
      const moverToken = await token({ tenant: 'acme', sub: 'mover', subscribe: ['dais', 'lobby'] });
      const mover = await (hubs[size - 1] as TestHub).subscribe('topic=lobby', {
        headers: bearer(moverToken),
      });
      streams.push(mover);
      await mover.untilConnected();
      const connected = JSON.parse(mover.events[0]?.data ?? '{}') as { connectionId: string; secret: string };
      const change = (topics: string[]) =>
        fetch(`${hubs[size - 1]?.url}/v1/subscriptions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...bearer(moverToken) },
          body: JSON.stringify({ ...connected, action: 'set', topics }),
        });
      assert.equal((await change(['dais'])).status, 200);
      await watcher.until(() => notices().length >= 1, 15_000, 'a join by a change');
      assert.deepEqual(notices()[0], { topic: 'dais', action: 'join', subject: 'mover', connections: 1 });
      assert.equal((await change(['lobby'])).status, 200);
      await watcher.until(() => notices().length >= 2, 15_000, 'a leave by a change');
      assert.deepEqual(notices()[1], { topic: 'dais', action: 'leave', subject: 'mover', connections: 0 });
      // Closing on lobby says nothing of dais: the change already took it away.
      mover.close();
      await new Promise((resolve) => setTimeout(resolve, 500));
      assert.equal(notices().length, 2, JSON.stringify(notices()));
      const presence = await getJson(`${hubs[0]?.url}/v1/presence?topic=dais&tenant=acme`, admin);
      assert.equal(presence.body.connections, 1, 'only the watcher is on dais');
    });

    // A cluster of one has no other node to tell.
    if (size > 1)
      test('a node that closes says so: the others drop it at once, not after the lease', async () => {
        const leaving = await startHub({
          broker: await backend.broker(stream),
          auth,
          nodeId: 'node-leaving',
          cluster,
        });
        const listed = async () =>
          (await getJson(`${hubs[0]?.url}/v1/nodes`, admin)).body.nodes.some(
            (node: { id: string }) => node.id === 'node-leaving',
          );
        await until(listed, 30_000, 'the new node listed');
        const closedAt = Date.now();
        await leaving.close();
        await until(async () => !(await listed()), 30_000, 'the closed node dropped');
        assert.ok(Date.now() - closedAt < cluster.leaseMs, `dropped after ${Date.now() - closedAt} ms`);
      });
  });
}
