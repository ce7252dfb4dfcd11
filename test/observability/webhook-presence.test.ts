import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { NodeLeftNotice, PresenceNotice, WebhookNotice } from '../../src/observability/webhooks.ts';
import { BACKENDS, REDIS_URL } from '../helpers/backends.ts';
import { type HubProcess, killAllHubs, spawnHub } from '../helpers/nodes.ts';
import { sleep, startHub, type TestHub } from '../helpers/server.ts';
import type { SseStream } from '../helpers/sse-client.ts';
import { bearer, SECRET as JWT_SECRET, token } from '../helpers/tokens.ts';
import { WebhookReceiver } from '../helpers/webhook-receiver.ts';

/**
 * Presence in the webhook (docs/hooks.md): `presence.join` when a subject's first stream on an
 * exact topic opens on a node, `presence.leave` when its last one there closes, each sent once by
 * that node; `node.left` once per node that drops out of the cluster, whether it shut down (it
 * says so itself) or was killed (the live node with the smallest id says so when its lease runs
 * out). The app is a real node:http server that checks every delivery's signature.
 */

const SECRET = 'a-webhook-secret-long-enough-for-hmac-sha256-use';
const auth = { jwt: { secrets: [JWT_SECRET] } };

const presenceOf = (notices: readonly WebhookNotice[]): PresenceNotice[] =>
  notices.filter((n): n is PresenceNotice => n.type === 'presence.join' || n.type === 'presence.leave');
const nodeLeftOf = (notices: readonly WebhookNotice[]): NodeLeftNotice[] =>
  notices.filter((n): n is NodeLeftNotice => n.type === 'node.left');
/** `join acme rooms/1 alice 1 @node`: a presence notice, for comparing lists at a glance. */
const line = (n: PresenceNotice) =>
  `${n.type.slice('presence.'.length)} ${n.tenant} ${n.topic} ${n.subject} ${n.connections} @${n.node}`;

function allVerified(receiver: WebhookReceiver): void {
  assert.ok(receiver.deliveries.length > 0, 'something was delivered');
  for (const delivery of receiver.deliveries) assert.equal(delivery.verified, true, delivery.signature);
}

describe('presence notices on one node', () => {
  const receiver = new WebhookReceiver(SECRET);
  let hub: TestHub;

  before(async () => {
    await receiver.start();
    hub = await startHub({
      auth,
      nodeId: 'solo',
      webhook: { url: receiver.url, secret: SECRET, batchDelayMs: 20 },
    });
  });

  after(async () => {
    await hub?.close();
    await receiver.stop();
  });

  async function open(claims: Parameters<typeof token>[0], query: string): Promise<SseStream> {
    const stream = await hub.subscribe(query, { headers: bearer(await token(claims)) });
    await stream.untilConnected();
    return stream;
  }

  test('first stream of a subject on a topic joins, its last leaves; templates, no subject and other tenants apart', async () => {
    receiver.deliveries.length = 0;
    const alice = { tenant: 'acme', sub: 'alice', subscribe: ['rooms/{id}'] };
    const a1 = await open(alice, 'topic=rooms/1');
    const a2 = await open(alice, 'topic=rooms/1&topic=rooms/2');
    const template = await open(alice, `topic=${encodeURIComponent('rooms/{id}')}`);
    const bob = await open({ tenant: 'globex', sub: 'bob', subscribe: ['rooms/{id}'] }, 'topic=rooms/1');
    const nobody = await open({ tenant: 'acme', subscribe: ['rooms/{id}'] }, 'topic=rooms/1');
    // Another tenant's room, asked for with a token of acme: refused, so nobody joins it.
    const forged = await hub.subscribe('topic=rooms/1&tenant=globex', {
      headers: bearer(await token(alice)),
    });
    assert.equal(forged.status, 403);
    await receiver.until(() => presenceOf(receiver.notices).length >= 3, 'three joins');
    await sleep(200);
    assert.deepEqual(presenceOf(receiver.notices).map(line).sort(), [
      'join acme rooms/1 alice 1 @solo',
      'join acme rooms/2 alice 1 @solo',
      'join globex rooms/1 bob 1 @solo',
    ]);

    receiver.deliveries.length = 0;
    a1.close();
    template.close();
    nobody.close();
    await receiver.until(
      () => receiver.notices.filter((n) => n.type === 'stream.closed').length >= 3,
      'the three closes',
    );
    await sleep(200);
    assert.deepEqual(presenceOf(receiver.notices), [], 'alice still has a stream on rooms/1: no leave');

    a2.close();
    bob.close();
    await receiver.until(() => presenceOf(receiver.notices).length >= 3, 'three leaves');
    await sleep(200);
    assert.deepEqual(presenceOf(receiver.notices).map(line).sort(), [
      'leave acme rooms/1 alice 0 @solo',
      'leave acme rooms/2 alice 0 @solo',
      'leave globex rooms/1 bob 0 @solo',
    ]);
    const [leave] = presenceOf(receiver.notices);
    assert.match(leave?.id ?? '', /^[0-9a-f-]{36}$/);
    assert.ok(Math.abs(Date.parse(leave?.at ?? '') - Date.now()) < 60_000, 'at is a time, now');
    allVerified(receiver);
  });

  test('a stream change leaves the topics it drops and joins those it adds; its close undoes what it has then', async () => {
    receiver.deliveries.length = 0;
    const carol = { tenant: 'acme', sub: 'carol', subscribe: ['rooms/{id}'] };
    const jwt = await token(carol);
    const stream = await open(carol, 'topic=rooms/3');
    await receiver.until(() => presenceOf(receiver.notices).length >= 1, 'the join of rooms/3');
    const connected = JSON.parse(stream.events[0]?.data ?? '{}') as { connectionId: string; secret: string };
    const changed = await fetch(`${hub.url}/v1/subscriptions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...bearer(jwt) },
      body: JSON.stringify({ ...connected, action: 'set', topics: ['rooms/4'] }),
    });
    assert.equal(changed.status, 200);
    await receiver.until(() => presenceOf(receiver.notices).length >= 3, 'the change: a leave and a join');
    stream.close();
    await receiver.until(() => presenceOf(receiver.notices).length >= 4, 'the leave of rooms/4');
    // Open again: every count went back to nothing, so this is a join again.
    (await open(carol, 'topic=rooms/3')).close();
    await receiver.until(() => presenceOf(receiver.notices).length >= 6, 'a second join and leave');
    await sleep(200);
    assert.deepEqual(presenceOf(receiver.notices).map(line), [
      'join acme rooms/3 carol 1 @solo',
      'leave acme rooms/3 carol 0 @solo',
      'join acme rooms/4 carol 1 @solo',
      'leave acme rooms/4 carol 0 @solo',
      'join acme rooms/3 carol 1 @solo',
      'leave acme rooms/3 carol 0 @solo',
    ]);
  });
});

describe('presence notices with the endpoint down', () => {
  const receiver = new WebhookReceiver(SECRET);
  const hubs: TestHub[] = [];

  after(async () => {
    await Promise.all(hubs.map((each) => each.close()));
    await receiver.stop();
  });

  test('are retried until it is back, and slow no delivery meanwhile', async (t) => {
    // A port the endpoint will come back on: free now, refused until then.
    await receiver.start();
    const port = Number(new URL(receiver.url).port);
    await receiver.stop();
    const hooked = await startHub({
      auth,
      webhook: { url: receiver.url, secret: SECRET, retryBaseMs: 100, retryMaxMs: 200, maxAttempts: 1_000 },
    });
    hubs.push(hooked);
    const plain = await startHub({ auth });
    hubs.push(plain);
    const jwt = await token({ tenant: 'acme', sub: 'dana', subscribe: ['load'], publish: ['load'] });

    /** ms until 1 000 events published in batches reach a presence-counted stream. */
    const measure = async (hub: TestHub) => {
      const stream = await hub.subscribe('topic=load', { headers: bearer(jwt) });
      await stream.untilConnected();
      const started = performance.now();
      for (let batch = 0; batch < 10; batch++) {
        const events = Array.from({ length: 100 }, (_, i) => ({ topic: 'load', data: batch * 100 + i }));
        assert.equal((await hub.publish(events, bearer(jwt))).status, 202);
      }
      await stream.untilData(1_000, 10_000);
      return { stream, ms: performance.now() - started };
    };
    const baseline = await measure(plain);
    baseline.stream.close();
    const down = await measure(hooked);
    await receiver.until(() => (hooked.herald.webhooks?.stats().retries ?? 0) >= 2, 'two retries', 10_000);
    assert.equal(hooked.herald.webhooks?.stats().delivered, 0);
    // Generous: the machine is shared; only a stall (seconds) would mean the hook is in the way.
    assert.ok(
      down.ms < baseline.ms * 3 + 500,
      `1 000 events in ${Math.round(down.ms)} ms with the endpoint down, ${Math.round(baseline.ms)} ms without a webhook`,
    );
    t.diagnostic(
      `endpoint down: ${Math.round(down.ms)} ms for 1 000 events; no webhook: ${Math.round(baseline.ms)} ms`,
    );

    await receiver.start(port);
    await receiver.until(
      () => presenceOf(receiver.notices).length >= 1,
      'the join, once the endpoint is back',
    );
    down.stream.close();
    await receiver.until(() => presenceOf(receiver.notices).length >= 2, 'the leave');
    assert.deepEqual(presenceOf(receiver.notices).map(line), [
      `join acme load dana 1 @${hooked.herald.nodeId}`,
      `leave acme load dana 0 @${hooked.herald.nodeId}`,
    ]);
    allVerified(receiver);
  });
});

const redis = BACKENDS.find((backend) => backend.name === 'redis');
assert.ok(redis);
const LEASE_MS = 4_000;
const cluster = { heartbeatMs: 300, leaseMs: LEASE_MS, gatherTimeoutMs: 5_000 };

// Generous: four nodes share a busy machine. A passing run never waits them out.
async function until(condition: () => Promise<boolean> | boolean, what: string, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    await sleep(50);
  }
}

describe('presence notices and node.left in a cluster on Redis', () => {
  const receiver = new WebhookReceiver(SECRET);
  const stream = redis.newStream();
  const hubs: TestHub[] = [];
  const open: SseStream[] = [];
  let spawned: HubProcess;
  let spawnedId: string;
  let admin: string;

  const nodesSeenBy = async (url: string): Promise<string[]> => {
    const response = await fetch(`${url}/v1/nodes`, { headers: bearer(admin) });
    return ((await response.json()) as { nodes?: { id: string }[] }).nodes?.map((node) => node.id) ?? [];
  };

  before(async () => {
    await receiver.start();
    admin = await token({ admin: true, sub: 'ops' });
    for (let i = 0; i < 3; i++) {
      hubs.push(
        await startHub({
          broker: await redis.broker(stream),
          auth,
          nodeId: `node-${i}`,
          cluster,
          webhook: { url: receiver.url, secret: SECRET, batchDelayMs: 50 },
        }),
      );
    }
    // A `herald serve` process, to be killed outright: no goodbye.
    spawned = await spawnHub([
      ...['--broker', REDIS_URL, '--stream', stream, '--jwt-secret', JWT_SECRET],
      ...['--node-heartbeat', '300ms', '--node-lease', `${LEASE_MS}ms`],
      ...['--webhook-url', receiver.url, '--webhook-secret', SECRET, '--webhook-batch-delay', '50ms'],
    ]);
    const self = await fetch(`${spawned.url}/v1/nodes`, { headers: bearer(admin) });
    spawnedId = ((await self.json()) as { nodes: { id: string; self: boolean }[] }).nodes.find(
      (node) => node.self,
    )?.id as string;
    for (const url of [...hubs.map((hub) => hub.url), spawned.url]) {
      await until(async () => (await nodesSeenBy(url)).length === 4, 'every node to list the four');
    }
  });

  after(async () => {
    for (const each of open) each.close();
    await killAllHubs();
    await Promise.all(hubs.map((hub) => hub.close()));
    await redis.drop(stream);
    await receiver.stop();
  });

  async function openOn(hub: TestHub, sub: string, topic: string): Promise<SseStream> {
    const jwt = await token({ tenant: 'acme', sub, subscribe: [topic] });
    const opened = await hub.subscribe(`topic=${encodeURIComponent(topic)}`, { headers: bearer(jwt) });
    open.push(opened);
    await opened.untilConnected();
    return opened;
  }

  test('each node tells of its own streams: one join per node a subject is on', async () => {
    receiver.deliveries.length = 0;
    const [a, b] = hubs as [TestHub, TestHub];
    await openOn(a, 'alice', 'lobby');
    await openOn(a, 'alice', 'lobby');
    await openOn(b, 'alice', 'lobby');
    await receiver.until(() => presenceOf(receiver.notices).length >= 2, 'two joins');
    await sleep(300);
    assert.deepEqual(presenceOf(receiver.notices).map(line).sort(), [
      'join acme lobby alice 1 @node-0',
      'join acme lobby alice 1 @node-1',
    ]);
    allVerified(receiver);
  });

  test('a node killed outright: node.left once, by the live node with the smallest id, once its lease ran out', async () => {
    receiver.deliveries.length = 0;
    const killedAt = performance.now();
    await spawned.kill();
    await receiver.until(() => nodeLeftOf(receiver.notices).length >= 1, 'node.left', 30_000);
    const tookMs = performance.now() - killedAt;
    // Long enough for every node's lease of it to run out: a second would be another node's.
    await sleep(LEASE_MS);
    const left = nodeLeftOf(receiver.notices);
    assert.equal(left.length, 1, JSON.stringify(left));
    assert.equal(left[0]?.node, spawnedId);
    assert.equal(left[0]?.reason, 'lease-expired');
    assert.equal(left[0]?.sentBy, 'node-0');
    assert.ok(tookMs >= LEASE_MS - 500, `sent ${Math.round(tookMs)} ms after the kill, within the lease`);
    allVerified(receiver);
  });

  test('a node that shuts down says node.left itself, once, and no leave for each of its members', async () => {
    const leaving = hubs[2] as TestHub;
    receiver.deliveries.length = 0;
    await openOn(leaving, 'carol', 'lobby');
    await receiver.until(() => presenceOf(receiver.notices).length >= 1, "carol's join");
    hubs.splice(2, 1);
    await leaving.close();
    await until(async () => (await nodesSeenBy(hubs[0]?.url as string)).length === 2, 'node-2 gone');
    // Past a lease: no node sends another for node-2.
    await sleep(LEASE_MS + 1_000);
    const left = nodeLeftOf(receiver.notices);
    assert.deepEqual(
      left.map((n) => `${n.node} ${n.reason} by ${n.sentBy}`),
      ['node-2 leaving by node-2'],
    );
    assert.deepEqual(presenceOf(receiver.notices).map(line), ['join acme lobby carol 1 @node-2']);
    // Its streams' closes still went, after node.left.
    const fromNode2 = receiver.notices.filter((n) => n.node === 'node-2' || n.type === 'node.left');
    assert.deepEqual(
      fromNode2.map((n) => n.type),
      ['stream.opened', 'presence.join', 'node.left', 'stream.closed'],
    );
    allVerified(receiver);
  });
});
