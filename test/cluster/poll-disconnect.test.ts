import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { brokerFor } from '../../src/backends/connect.ts';
import { disconnectLocal } from '../../src/cluster/connections.ts';
import { MAX_POLL_TOMBSTONES } from '../../src/core/long-poll.ts';
import { REDIS_URL } from '../helpers/backends.ts';
import { deletePrefix } from '../helpers/redis-server.ts';
import { sleep, startHub, type TestHub } from '../helpers/server.ts';
import { bearer, SECRET, token } from '../helpers/tokens.ts';

// biome-ignore lint/suspicious/noExplicitAny: answers are read field by field and asserted on.
type Json = Record<string, any>;

/**
 * An admin's disconnect reaches clients that fell back to long polling (`GET /v1/events/poll`):
 * polls under way are listed (`transport: 'poll'`) and answered at once with `disconnect`; a
 * disconnect with `reconnect: false` by subject or tenant also answers, for a while, the polls that
 * start after it (the client was between two polls). Two in-process hubs on the machine's Redis,
 * real sockets: what one node is asked, the other does too.
 */

const auth = { jwt: { secrets: [SECRET] } };
// A lease long enough that a loaded machine's stalls do not drop a live node.
const cluster = { heartbeatMs: 250, leaseMs: 5_000, gatherTimeoutMs: 5_000 };

async function call(url: string, jwt: string, body?: unknown) {
  const response = await fetch(url, {
    method: body === undefined ? 'GET' : 'POST',
    headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...bearer(jwt) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: response.status, body: (await response.json()) as Json };
}

async function until(condition: () => Promise<boolean> | boolean, what: string, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

const name = () => `test_polldc_${Math.random().toString(36).slice(2, 10)}`;

describe('a disconnect reaches long polls (2 nodes on Redis)', () => {
  const hubs: TestHub[] = [];
  const polls: AbortController[] = [];
  const log = name();
  let root: string;

  before(async () => {
    for (let i = 0; i < 2; i++) {
      hubs.push(
        await startHub({
          broker: await brokerFor({ url: REDIS_URL, stream: log }),
          auth,
          nodeId: `poll-${i}`,
          cluster,
        }),
      );
    }
    root = await token({ admin: true, sub: 'root' });
    for (const hub of hubs) {
      await until(
        async () => (await call(`${hub.url}/v1/nodes`, root)).body.nodes?.length === 2,
        'every node in the roster',
      );
    }
  });

  after(async () => {
    for (const controller of polls) controller.abort();
    await Promise.all(hubs.map((hub) => hub.close().catch(() => {})));
    await deletePrefix(REDIS_URL, log);
  });

  const hub = (i: number) => hubs[i] as TestHub;

  /** A poll of `tenant` as `sub` on hub `i`: its answer and how long it took, ms. */
  async function poll(i: number, tenant: string, sub: string, wait: number, topic = 'room') {
    const jwt = await token({ tenant, sub, subscribe: [topic] });
    const controller = new AbortController();
    polls.push(controller);
    const started = performance.now();
    const answer = fetch(`${hub(i).url}/v1/events/poll?topic=${encodeURIComponent(topic)}&wait=${wait}`, {
      headers: bearer(jwt),
      signal: controller.signal,
    }).then(async (response) => {
      assert.equal(response.status, 200);
      return { body: (await response.json()) as Json, ms: performance.now() - started };
    });
    // A failed poll is asserted on where it is awaited, not reported as unhandled meanwhile.
    answer.catch(() => {});
    return answer;
  }

  const listed = async (via: number, query: string, jwt = root) =>
    (await call(`${hub(via).url}/v1/connections?${query}`, jwt)).body.connections as Json[];

  const disconnect = (via: number, body: unknown, jwt = root) =>
    call(`${hub(via).url}/v1/connections/disconnect`, jwt, body);

  test("another tenant's admin neither lists nor ends a poll, and leaves it no tombstone", async () => {
    const acmeAdmin = await token({ admin: true, tenant: 'acme', sub: 'acme-ops' });
    const waiting = poll(0, 'globex', 'gina', 60);
    await until(async () => (await listed(1, 'subject=gina')).length === 1, "globex's poll listed");
    const [row] = await listed(1, 'subject=gina');
    assert.equal(row?.transport, 'poll');
    assert.equal(row?.tenant, 'globex');
    assert.equal(row?.node, 'poll-0');
    assert.deepEqual(row?.topics, ['room']);
    assert.equal(row?.bytes, 0);

    assert.deepEqual(await listed(1, 'subject=gina', acmeAdmin), [], 'not listed to acme');
    const ended = await disconnect(1, { subject: 'gina', reason: 'x', reconnect: false }, acmeAdmin);
    assert.equal(ended.status, 200);
    assert.equal(ended.body.disconnected, 0);
    const byId = await disconnect(1, { id: row?.id, reconnect: false }, acmeAdmin);
    assert.equal(byId.status, 404, 'its id is not found by acme');
    // Still waiting, as root sees: ended by none of that.
    assert.equal((await listed(1, 'subject=gina')).length, 1);
    // Nor does acme's disconnect answer a globex poll that starts after it.
    const next = await poll(1, 'globex', 'gina', 1);
    assert.equal(next.body.disconnect, undefined);
    assert.ok(next.ms >= 900, `the next poll waited (${next.ms.toFixed(0)} ms)`);

    // Root ends it by id: it answers at once, and the id leaves no tombstone.
    const rootEnded = await disconnect(1, { id: row?.id, reason: 'by id', reconnect: false });
    assert.equal(rootEnded.body.disconnected, 1);
    const answer = await waiting;
    assert.deepEqual(answer.body.disconnect, { reason: 'by id', reconnect: false });
    assert.ok(answer.ms < 60_000);
    const later = await poll(0, 'globex', 'gina', 1);
    assert.equal(later.body.disconnect, undefined, 'a disconnect by id leaves no tombstone');
  });

  test('reconnect:false by subject while no poll is under way: the next poll of that subject, on either node, is told at once', async () => {
    const ended = await disconnect(1, { subject: 'ghost', reason: 'suspended', reconnect: false });
    assert.equal(ended.body.disconnected, 0, 'nothing under way');
    // A subject's polls on both nodes are answered at once: 60 s waits, answered with no event.
    for (const i of [0, 1]) {
      const told = await poll(i, 'acme', 'ghost', 60);
      assert.deepEqual(told.body.disconnect, { reason: 'suspended', reconnect: false }, `node ${i}`);
      assert.deepEqual(told.body.events, []);
      assert.equal(typeof told.body.lastEventId, 'string');
    }
    // Another subject's poll waits as usual, and gets what is published.
    const other = poll(0, 'acme', 'casper', 60);
    await until(async () => (await listed(1, 'subject=casper')).length === 1, "casper's poll listed");
    const publisher = await token({ tenant: 'acme', publish: ['room'], sub: 'pub' });
    assert.equal((await hub(1).publish({ topic: 'room', data: 'hello' }, bearer(publisher))).status, 202);
    const answer = await other;
    assert.equal(answer.body.disconnect, undefined);
    assert.deepEqual(
      answer.body.events.map((event: Json) => event.data),
      ['hello'],
    );
    // A stream of the told subject is not refused: for streams, reconnect:false is the client's promise.
    const jwt = await token({ tenant: 'acme', sub: 'ghost', subscribe: ['room'] });
    const stream = await hub(0).subscribe('topic=room', { headers: bearer(jwt) });
    try {
      await stream.untilConnected();
    } finally {
      stream.close();
    }
  });

  test('reconnect:true ends the polls under way and leaves no tombstone', async () => {
    const waiting = poll(0, 'acme', 'bouncer', 60);
    await until(async () => (await listed(1, 'subject=bouncer')).length === 1, "bouncer's poll listed");
    const ended = await disconnect(1, { subject: 'bouncer', reason: 'rebalancing' });
    assert.equal(ended.body.disconnected, 1);
    const answer = await waiting;
    assert.deepEqual(answer.body.disconnect, { reason: 'rebalancing', reconnect: true });
    for (const i of [0, 1]) {
      const next = await poll(i, 'acme', 'bouncer', 1);
      assert.equal(next.body.disconnect, undefined, `node ${i}: no tombstone`);
      assert.ok(next.ms >= 900, `node ${i}: the next poll waited (${next.ms.toFixed(0)} ms)`);
    }
    // Nor without a poll under way.
    assert.equal((await disconnect(0, { subject: 'bouncer', reconnect: true })).body.disconnected, 0);
    assert.equal((await poll(1, 'acme', 'bouncer', 0)).body.disconnect, undefined);
  });

  test(`at most ${MAX_POLL_TOMBSTONES} tombstones: the oldest is dropped first`, async () => {
    // Made in one go, by the function a node runs when asked over the bus: all at one instant, so
    // that it is the bound, not the window, that drops the first.
    const node = hub(0).herald.hub;
    for (let i = 0; i <= MAX_POLL_TOMBSTONES; i++) {
      assert.equal(disconnectLocal(node, { tenant: 'tomb', subject: `t${i}` }, 'bound', false), 0);
    }
    const newest = await poll(0, 'tomb', `t${MAX_POLL_TOMBSTONES}`, 60);
    assert.deepEqual(newest.body.disconnect, { reason: 'bound', reconnect: false });
    // The earlier tests' tombstones (acme's, root's) may still be live: past the bound the tenant
    // holding the most, this one, gives up its oldest, so up to three of these go, not one.
    const second = await poll(0, 'tomb', 't3', 60);
    assert.deepEqual(second.body.disconnect, { reason: 'bound', reconnect: false }, 'the fourth is kept');
    const oldest = await poll(0, 'tomb', 't0', 0);
    assert.equal(oldest.body.disconnect, undefined, 'the oldest was dropped');
    // Only that node was told.
    assert.equal((await poll(1, 'tomb', 't1', 0)).body.disconnect, undefined);
  });
});
