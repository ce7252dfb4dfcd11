import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { brokerFor } from '../../src/backends/connect.ts';
import { createClient, HeraldClientError, type StatusChange } from '../../src/client/index.ts';
import { disconnectLocal } from '../../src/cluster/connections.ts';
import { MAX_POLL_TOMBSTONES, POLL_TOMBSTONE_MS } from '../../src/core/long-poll.ts';
import { OPEN_PRINCIPAL } from '../../src/core/principal.ts';
import type { Subscription } from '../../src/core/subscriber.ts';
import { parseSelector } from '../../src/core/topics.ts';
import { muxFigures } from '../../src/http/mux.ts';
import { LockServer } from '../client/fixtures/tab-locks.ts';
import { recordingFetch } from '../client/helpers.ts';
import { BACKENDS, REDIS_URL } from '../helpers/backends.ts';
import { deletePrefix } from '../helpers/redis-server.ts';
import { sleep, startHub, type TestHub } from '../helpers/server.ts';
import type { SseStream } from '../helpers/sse-client.ts';
import { bearer, SECRET, token } from '../helpers/tokens.ts';

// biome-ignore lint/suspicious/noExplicitAny: answers are read field by field and asserted on.
type Json = Record<string, any>;

/**
 * An attacker's and an unlucky user's view of two changes: an admin's disconnect reaching
 * long-poll clients (polls under way listed and ended; `reconnect: false` by subject or tenant
 * leaving a tombstone that answers the polls starting soon after), and tab sharing keeping the
 * leader tab's stream until the other tabs have closed their channels. Real hubs (two nodes on
 * the machine's Redis, one hub per backend), real sockets, worker threads as tabs.
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
  return {
    status: response.status,
    type: response.headers.get('content-type') ?? '',
    body: (await response.json()) as Json,
  };
}

async function until(condition: () => Promise<boolean> | boolean, what: string, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

const name = () => `test_polltab_${Math.random().toString(36).slice(2, 10)}`;

describe('long polls and their tombstones under attack (2 nodes on Redis)', () => {
  const hubs: TestHub[] = [];
  const polls: AbortController[] = [];
  const streams: SseStream[] = [];
  const log = name();
  let root: string;

  before(async () => {
    for (let i = 0; i < 2; i++) {
      hubs.push(
        await startHub({
          broker: await brokerFor({ url: REDIS_URL, stream: log }),
          auth,
          nodeId: `pta-${i}`,
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
    for (const stream of streams) stream.close();
    await Promise.all(hubs.map((hub) => hub.close().catch(() => {})));
    await deletePrefix(REDIS_URL, log);
  });

  const hub = (i: number) => hubs[i] as TestHub;

  /** A poll of `tenant` as `sub` on hub `i`: its answer and how long it took, ms. */
  async function poll(i: number, tenant: string, sub: string, wait: number) {
    const jwt = await token({ tenant, sub, subscribe: ['room'] });
    const controller = new AbortController();
    polls.push(controller);
    const started = performance.now();
    const answer = fetch(`${hub(i).url}/v1/events/poll?topic=room&wait=${wait}`, {
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
    (await call(`${hub(via).url}/v1/connections?${query}`, jwt)).body as Json;

  const disconnect = (via: number, body: unknown, jwt = root) =>
    call(`${hub(via).url}/v1/connections/disconnect`, jwt, body);

  test('limit with polls and streams mixed: the oldest are listed, whichever their kind', async () => {
    const waiting = poll(0, 'mixed', 'mia', 60);
    await until(async () => (await listed(1, 'subject=mia')).connections.length === 1, "mia's poll listed");
    // A stream opened after the poll, on the same node, a millisecond later at least.
    await sleep(20);
    const jwt = await token({ tenant: 'mixed', sub: 'mia', subscribe: ['room'] });
    const stream = await hub(0).subscribe('topic=room', { headers: bearer(jwt) });
    streams.push(stream);
    await stream.untilConnected();
    const all = await listed(1, 'subject=mia');
    assert.deepEqual(
      all.connections.map((row: Json) => row.transport),
      ['poll', 'sse'],
      'oldest first: the poll, then the stream',
    );
    const first = await listed(1, 'subject=mia&limit=1');
    assert.equal(first.truncated, true);
    assert.deepEqual(
      first.connections.map((row: Json) => row.transport),
      ['poll'],
      'limit=1 keeps the oldest: the poll, not the stream opened after it',
    );
    stream.close();
    await disconnect(0, { subject: 'mia', tenant: 'mixed' });
    await waiting;
  });

  test("another tenant's admin cannot flush a tenant's tombstones away by making its own", async () => {
    const acmeAdmin = await token({ admin: true, tenant: 'acme', sub: 'acme-ops' });
    const evilAdmin = await token({ admin: true, tenant: 'evil', sub: 'evil-ops' });
    const banned = await disconnect(0, { subject: 'victim', reason: 'banned', reconnect: false }, acmeAdmin);
    assert.equal(banned.status, 200);
    // Evil's admin ends, in its own tenant, more subjects than a node keeps tombstones: allowed,
    // and each leaves a tombstone on every node.
    const flood = Array.from({ length: MAX_POLL_TOMBSTONES + 10 }, (_, i) => `e${i}`);
    for (let at = 0; at < flood.length; at += 50) {
      const answers = await Promise.all(
        flood
          .slice(at, at + 50)
          .map((subject) => disconnect(1, { subject, reason: 'flood', reconnect: false }, evilAdmin)),
      );
      for (const answer of answers) assert.equal(answer.status, 200);
    }
    // Acme's victim, between two polls, is still told on either node.
    for (const i of [0, 1]) {
      const told = await poll(i, 'acme', 'victim', 0);
      assert.deepEqual(told.body.disconnect, { reason: 'banned', reconnect: false }, `node ${i}`);
    }
    // Evil's own newest tombstone still holds; its oldest went, the bound holding.
    const newest = await poll(0, 'evil', `e${flood.length - 1}`, 0);
    assert.deepEqual(newest.body.disconnect, { reason: 'flood', reconnect: false });
    assert.equal((await poll(0, 'evil', 'e0', 0)).body.disconnect, undefined);
  });

  test('tombstones keep to their tenant and subject, whatever the names look like', async () => {
    const aAdmin = await token({ admin: true, tenant: 'a', sub: 'a-ops' });
    // Tenant a's admin ends subject "b" of its own tenant for good.
    assert.equal(
      (await disconnect(1, { subject: 'b', reason: 'a-only', reconnect: false }, aAdmin)).status,
      200,
    );
    const told = await poll(0, 'a', 'b', 0);
    assert.deepEqual(told.body.disconnect, { reason: 'a-only', reconnect: false });
    // Tenants whose names share a's or b's characters, separators, a tenant named like the subject
    // and a subject named like the tenant: none of their polls is told.
    for (const [tenant, sub] of [
      ['a:b', 'b'],
      ['a b', 'b'],
      ['a/b', 'b'],
      ['ab', 'b'],
      ['A', 'b'],
      ['b', 'b'],
      ['b', 'a'],
      ['', 'b'],
      ['a', 'b '],
      ['a', 'a:b'],
    ] as const) {
      const answer = await poll(0, tenant, sub, 0);
      assert.equal(
        answer.body.disconnect,
        undefined,
        `tenant ${JSON.stringify(tenant)}, subject ${JSON.stringify(sub)}`,
      );
    }
    // Nor a cluster admin's poll that watches every tenant ("*"), when a's admin ends all of a.
    assert.equal(
      (await disconnect(1, { tenant: 'a', reason: 'all-a', reconnect: false }, aAdmin)).status,
      200,
    );
    const rootPoll = await fetch(`${hub(0).url}/v1/events/poll?topic=room&wait=0`, { headers: bearer(root) });
    assert.equal(((await rootPoll.json()) as Json).disconnect, undefined, "root's all-tenant poll");
    assert.deepEqual((await poll(0, 'a', 'z', 0)).body.disconnect, { reason: 'all-a', reconnect: false });
    // a's admin cannot widen its disconnect to every tenant, nor to another: refused, and no
    // tombstone is left behind.
    for (const tenant of ['*', 'b']) {
      const refused = await disconnect(1, { tenant, reconnect: false }, aAdmin);
      assert.equal(refused.status, 403, JSON.stringify(refused.body));
      assert.match(refused.type, /application\/problem\+json/);
    }
    assert.equal((await poll(1, 'b', 'z', 0)).body.disconnect, undefined);
  });

  test('a disconnect by topic is refused, and the poll under way carries on', async () => {
    const waiting = poll(0, 'topical', 'tom', 60);
    await until(async () => (await listed(1, 'subject=tom')).connections.length === 1, "tom's poll listed");
    for (const body of [{ topic: 'room' }, { subject: 'tom', topic: 'room', reconnect: false }]) {
      const refused = await disconnect(1, body);
      assert.equal(refused.status, 400, JSON.stringify(refused.body));
      assert.match(refused.type, /application\/problem\+json/);
      assert.equal(refused.body.code, 'invalid-disconnect');
    }
    await sleep(200);
    assert.equal((await listed(1, 'subject=tom')).connections.length, 1, 'still waiting');
    // Nor did a refusal leave a tombstone: another poll of tom waits as usual.
    assert.equal((await poll(1, 'topical', 'tom', 0)).body.disconnect, undefined);
    assert.equal((await disconnect(0, { subject: 'tom', reason: 'done' })).body.disconnected, 1);
    assert.deepEqual((await waiting).body.disconnect, { reason: 'done', reconnect: true });
  });

  test('malformed disconnects on the bus end no poll and leave no tombstone; a well-formed one does both', async () => {
    const { createClient: createRedis } = await import('redis');
    const redis = createRedis({ url: REDIS_URL });
    await redis.connect();
    try {
      const waiting = poll(0, 'bussed', 'bea', 60);
      await until(async () => (await listed(1, 'subject=bea')).connections.length === 1, "bea's poll listed");
      const ask = (args: unknown) =>
        redis.publish(
          `${log}:bus:0`,
          JSON.stringify({
            protocol: 'herald-cluster/1',
            kind: 'ask',
            from: 'forged',
            id: 'q',
            question: 'disconnect',
            args,
          }),
        );
      for (const args of [
        null,
        [],
        { filter: 'bussed' },
        { filter: { subject: 'bea' }, reconnect: false },
        { filter: { tenant: 7, subject: 'bea' }, reconnect: false },
        { filter: { tenant: 'bussed', subject: ['bea'] }, reconnect: false },
        { filter: { tenant: 'bussed', subject: 'bea', id: null }, reconnect: false },
        { filter: { tenant: 'bussed', subject: 'bea', topic: 5 }, reconnect: false },
      ])
        await ask(args);
      await sleep(500);
      assert.equal((await listed(1, 'subject=bea')).connections.length, 1, 'the poll is still waiting');
      assert.equal((await poll(0, 'bussed', 'bea', 0)).body.disconnect, undefined, 'no tombstone');
      // Anyone on the broker is trusted: a well-formed question is a disconnect (its reason cut
      // to 256 characters, a reconnect that is not false taken as true).
      await ask({
        filter: { tenant: 'bussed', subject: 'bea' },
        reason: 'r'.repeat(10_000),
        reconnect: 'false',
      });
      const answer = await waiting;
      assert.deepEqual(answer.body.disconnect, { reason: 'r'.repeat(256), reconnect: true });
      assert.equal(
        (await poll(0, 'bussed', 'bea', 0)).body.disconnect,
        undefined,
        'reconnect:true, no tombstone',
      );
    } finally {
      await redis.quit();
    }
  });

  test('polls racing a reconnect:false on both nodes: every one is told, none waits its 60 s', async () => {
    const answers: Promise<{ body: Json; ms: number }>[] = [];
    // Some polls under way before, some started while the disconnect goes round the cluster.
    for (let i = 0; i < 10; i++) answers.push(poll(i % 2, 'racing', 'rex', 60));
    await until(
      async () => (await listed(1, 'subject=rex')).connections.length === 10,
      'ten polls under way',
    );
    const ending = disconnect(1, { subject: 'rex', reason: 'raced', reconnect: false });
    for (let i = 0; i < 20; i++) {
      answers.push(poll(i % 2, 'racing', 'rex', 60));
      if (i % 4 === 0) await sleep(1);
    }
    const ended = await ending;
    assert.equal(ended.status, 200);
    assert.ok(ended.body.disconnected >= 10, JSON.stringify(ended.body));
    for (let i = 0; i < 10; i++) answers.push(poll(i % 2, 'racing', 'rex', 60));
    const settled = await Promise.all(answers);
    for (const [i, answer] of settled.entries()) {
      assert.deepEqual(answer.body.disconnect, { reason: 'raced', reconnect: false }, `poll ${i}`);
      assert.ok(answer.ms < 30_000, `poll ${i} answered in ${answer.ms.toFixed(0)} ms`);
    }
    assert.deepEqual((await listed(0, 'subject=rex')).connections, []);
  });

  test('a poll between two polls of herald/client, told by a tombstone on another node: the client closes', async () => {
    const jwt = await token({ tenant: 'between', sub: 'bill', subscribe: ['room'] });
    // What a proxy that does not pass streams answers them: the client polls at once. And the
    // polls after the first answer with an event are held here, client side, until the
    // disconnect has gone round: the client is between two polls when it comes.
    let hold: Promise<void> | undefined;
    let held = 0;
    const recorded = recordingFetch((url, init) => {
      const path = new URL(url).pathname;
      if (path === '/v1/events')
        return new Response('', { status: 200, headers: { 'content-type': 'text/plain' } });
      if (path !== '/v1/events/poll' || hold === undefined) return undefined;
      held++;
      return hold.then(() => fetch(url, init));
    });
    const client = createClient({
      url: hub(0).url,
      topics: ['room'],
      token: jwt,
      store: null,
      fetch: recorded.fetch,
      probeMs: 60_000,
      backoff: { initialMs: 20, maxMs: 100 },
    });
    try {
      const changes: StatusChange[] = [];
      client.onStatus((change) => changes.push(change));
      const received: unknown[] = [];
      client.on('message', (message) => received.push(message.data));
      await until(
        async () => (await listed(1, 'subject=bill')).connections.length === 1,
        "bill's poll under way",
      );
      let release = () => {};
      hold = new Promise<void>((resolve) => {
        release = resolve;
      });
      const publisher = await token({ tenant: 'between', publish: ['room'] });
      assert.equal((await hub(1).publish({ topic: 'room', data: 'last' }, bearer(publisher))).status, 202);
      await until(() => held === 1 && received.includes('last'), 'the event, and the next poll held');
      const ended = await disconnect(1, { subject: 'bill', reason: 'suspended', reconnect: false });
      assert.equal(ended.body.disconnected, 0, 'nothing under way: the client is between two polls');
      release();
      await until(() => client.status === 'closed', 'the client closed');
      const closed = changes.at(-1);
      assert.match(closed?.reason ?? '', /disconnected: suspended/);
      assert.ok(closed?.error instanceof HeraldClientError);
      const made = recorded.calls.length;
      await sleep(1_000);
      assert.equal(recorded.calls.length, made, 'no request after the close');
    } finally {
      hold = undefined;
      client.close();
    }
  });
});

describe('tombstones: their bound in time, and what 1 000 of them cost a poll', () => {
  let memory: TestHub;
  before(async () => {
    memory = await startHub({ auth });
  });
  after(async () => {
    await memory.close();
  });

  /** A poll as the route makes it, of `subject` in tenant `cost`, straight to the hub. */
  const pollOf = (subject: string): Subscription => ({
    tenant: 'cost',
    selectors: [parseSelector('room')],
    grants: OPEN_PRINCIPAL.subscribe,
    subject,
  });

  /** The mean time of `count` polls that answer at once, ms. */
  async function meanPollMs(subject: string, count: number): Promise<number> {
    const node = memory.herald.hub;
    const started = performance.now();
    for (let i = 0; i < count; i++) await node.poll(pollOf(subject), 0, 100);
    return (performance.now() - started) / count;
  }

  test(`${MAX_POLL_TOMBSTONES} tombstones of another tenant add little to each poll, matched or not`, async (t) => {
    const node = memory.herald.hub;
    await meanPollMs('payer', 200); // warm
    const bare = await meanPollMs('payer', 1_000);
    // The oldest is the one a barred poll matches: every other is checked before it.
    disconnectLocal(node, { tenant: 'cost', subject: 'barred' }, 'oldest', false);
    for (let i = 1; i < MAX_POLL_TOMBSTONES; i++) {
      disconnectLocal(node, { tenant: 'flood', subject: `f${i}` }, 'flood', false);
    }
    const passing = await meanPollMs('payer', 1_000);
    const barred = await meanPollMs('barred', 1_000);
    assert.deepEqual((await node.poll(pollOf('barred'), 60_000, 100)).disconnect, {
      reason: 'oldest',
      reconnect: false,
    });
    t.diagnostic(
      `poll: ${(bare * 1000).toFixed(1)} us bare, ${(passing * 1000).toFixed(1)} us past ${MAX_POLL_TOMBSTONES} tombstones, ${(barred * 1000).toFixed(1)} us barred by the oldest`,
    );
    // A thousand checks of a few string comparisons: tens of microseconds. A bound a loaded
    // machine keeps, and that a check costing a log read, or quadratic, would not.
    assert.ok(passing - bare < 2, `${(passing - bare).toFixed(3)} ms more per poll`);
    assert.ok(barred < bare + 2, `a barred poll: ${barred.toFixed(3)} ms`);
  });

  test(`a tombstone lasts ${POLL_TOMBSTONE_MS / 1000} s, then the polls it matched wait as usual`, async () => {
    const node = memory.herald.hub;
    const made = performance.now();
    disconnectLocal(node, { tenant: 'cost', subject: 'paroled' }, 'for a while', false);
    assert.deepEqual((await node.poll(pollOf('paroled'), 60_000, 100)).disconnect, {
      reason: 'for a while',
      reconnect: false,
    });
    await sleep(made + POLL_TOMBSTONE_MS + 50 - performance.now());
    const started = performance.now();
    const answer = await node.poll(pollOf('paroled'), 300, 100);
    assert.equal(answer.disconnect, undefined);
    assert.ok(performance.now() - started >= 250, 'it waited');
  });
});

for (const backend of BACKENDS) {
  describe(`a poll ended by an admin loses no event (${backend.name})`, () => {
    let hub: TestHub;
    const stream = backend.newStream();
    let admin: string;
    let publisher: string;
    before(async () => {
      hub = await startHub({ broker: await backend.broker(stream), auth });
      admin = await token({ admin: true });
      publisher = await token({ tenant: 'hist', publish: ['room'] });
    });
    after(async () => {
      await hub.close();
      await backend.drop(stream);
    });

    const pollAs = async (sub: string, query: string) => {
      const jwt = await token({ tenant: 'hist', sub, subscribe: ['room'] });
      const response = await fetch(`${hub.url}/v1/events/poll?topic=room&${query}`, { headers: bearer(jwt) });
      assert.equal(response.status, 200);
      return (await response.json()) as Json;
    };
    const publish = async (data: string[]) => {
      const answer = await hub.publish(
        data.map((each) => ({ topic: 'room', data: each })),
        bearer(publisher),
      );
      assert.equal(answer.status, 202, JSON.stringify(answer.body));
      return answer.body.ids as string[];
    };
    const disconnect = async (body: unknown) => {
      const response = await fetch(`${hub.url}/v1/connections/disconnect`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...bearer(admin) },
        body: JSON.stringify(body),
      });
      return (await response.json()) as Json;
    };

    test('ended while it reads its rewind: it answers with what it read, and the next poll gets the rest', async () => {
      const ids = await publish(['h1', 'h2', 'h3', 'h4', 'h5']);
      // The log's reads wait on this gate: the disconnect comes while the poll reads its history.
      const broker = hub.herald.broker as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>;
      let open = () => {};
      const gate = new Promise<void>((resolve) => {
        open = resolve;
      });
      let reading = 0;
      const originals = new Map<string, (...args: unknown[]) => Promise<unknown>>();
      for (const method of ['read', 'readBack']) {
        const original = broker[method];
        if (typeof original !== 'function') continue;
        originals.set(method, original);
        broker[method] = async (...args: unknown[]) => {
          reading++;
          await gate;
          return original.apply(broker, args);
        };
      }
      try {
        const first = pollAs('historian', 'rewind=5&limit=3&wait=0');
        await until(() => reading > 0, 'the history being read');
        const ended = await disconnect({ subject: 'historian', reason: 'rebalancing' });
        assert.equal(ended.disconnected, 1);
        open();
        const answer = await first;
        assert.deepEqual(answer.disconnect, { reason: 'rebalancing', reconnect: true });
        assert.deepEqual(
          answer.events.map((event: Json) => event.data),
          ['h1', 'h2', 'h3'],
        );
        assert.equal(
          answer.lastEventId,
          ids[2] as string,
          'where the next poll goes on: after the last one sent',
        );
        assert.equal(answer.history?.kind, 'rewind');
        const rest = await pollAs('historian', `after=${encodeURIComponent(answer.lastEventId)}&wait=0`);
        assert.equal(rest.disconnect, undefined, 'reconnect:true left no tombstone');
        assert.deepEqual(
          rest.events.map((event: Json) => event.data),
          ['h4', 'h5'],
        );
      } finally {
        open();
        for (const [method, original] of originals) broker[method] = original;
      }
    });

    test('ended while it waits, as events come: each is got once, in order, by the polls that follow', async () => {
      let after = (await pollAs('waiter', 'wait=0')).lastEventId as string;
      const waiting = pollAs('waiter', `after=${encodeURIComponent(after)}&wait=30&limit=2`);
      await until(async () => {
        const listed = await fetch(`${hub.url}/v1/connections?subject=waiter`, { headers: bearer(admin) });
        return ((await listed.json()) as Json).connections.length === 1;
      }, 'the poll under way');
      const ids = await publish(['w1', 'w2', 'w3', 'w4', 'w5']);
      await disconnect({ subject: 'waiter', reason: 'moving' });
      const got: string[] = [];
      let answer = await waiting;
      for (let polls = 0; ; polls++) {
        got.push(...answer.events.map((event: Json) => event.id));
        after = answer.lastEventId;
        if (got.length >= ids.length || polls > 10) break;
        answer = await pollAs('waiter', `after=${encodeURIComponent(after)}&wait=2&limit=2`);
      }
      assert.deepEqual(got, ids);
      assert.equal(after, ids.at(-1));
    });
  });
}

describe('tab sharing: the leader tab keeps its stream only while other tabs need it (worker threads as tabs)', () => {
  const locks = new LockServer();
  const workers: Worker[] = [];
  const tabHubs: TestHub[] = [];
  after(async () => {
    await Promise.all(workers.map((worker) => worker.terminate()));
    await Promise.all(tabHubs.map((each) => each.close()));
  });

  interface TabState {
    status: string;
    connectionId?: string;
    received: { id: string; n: number }[];
  }

  /**
   * A tab (test/client/fixtures/tab.ts) that can also be frozen, as a browser freezes a
   * background tab: its thread blocks, timers and messages included, and catches up afterwards.
   */
  function openTab(url: string) {
    const worker = new Worker(
      `const { parentPort, workerData } = require('node:worker_threads');
      parentPort.on('message', (message) => {
        if (typeof message?.freeze !== 'number') return;
        parentPort.postMessage({ call: 'freeze' });
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, message.freeze);
      });
      import(workerData.fixture);`,
      {
        eval: true,
        workerData: {
          url,
          topics: ['room'],
          shareTabs: true,
          fixture: new URL('../client/fixtures/tab.ts', import.meta.url).href,
        },
      },
    );
    workers.push(worker);
    locks.serve(worker);
    const waiting = new Map<string, (reply: { value?: unknown }) => void>();
    worker.on('message', (reply: { call?: string; value?: unknown }) => {
      if (reply.call === undefined) return;
      waiting.get(reply.call)?.(reply);
      waiting.delete(reply.call);
    });
    const ready = new Promise<void>((resolve) => waiting.set('ready', () => resolve()));
    const ask = (message: Record<string, unknown>, reply: string) =>
      new Promise<unknown>((resolve) => {
        waiting.set(reply, (answer) => resolve(answer.value));
        worker.postMessage(message);
      });
    return {
      worker,
      ready,
      state: () => ask({ call: 'state' }, 'state') as Promise<TabState>,
      close: () => ask({ call: 'close' }, 'close'),
      /** Resolves once the tab is frozen, for `ms`. */
      freeze: (ms: number) => ask({ freeze: ms }, 'freeze'),
    };
  }

  type Tab = ReturnType<typeof openTab>;

  const all = async (tabs: Tab[], check: (state: TabState) => boolean) =>
    (await Promise.all(tabs.map((tab) => tab.state()))).every(check);

  /** The tabs open one after the other: the first holds the lock and the shared stream. */
  async function openTabs(url: string, count: number): Promise<Tab[]> {
    const tabs: Tab[] = [];
    for (let i = 0; i < count; i++) {
      const tab = openTab(url);
      await tab.ready;
      tabs.push(tab);
      await until(() => all(tabs, (s) => s.status === 'open'), `${tabs.length} tabs open`);
    }
    return tabs;
  }

  /** Open development mode; a heartbeat every second, within what the tabs expect (2 s). */
  async function newHub(): Promise<TestHub> {
    const started = await startHub({ heartbeatMs: 1_000 });
    tabHubs.push(started);
    return started;
  }

  const figures = (hub: TestHub) => muxFigures(hub.herald.hub);

  test('the leader tab closes with no other tab: its stream closes, and the next tab leads', async () => {
    const hub = await newHub();
    const [leader] = (await openTabs(hub.url, 1)) as [Tab];
    assert.deepEqual(figures(hub), { streams: 1, channels: 1 });
    await leader.close();
    await until(() => figures(hub).streams === 0, 'the shared stream closed');
    // The lock went with it: a new tab is not left waiting on a leader that is no more.
    const [next] = (await openTabs(hub.url, 1)) as [Tab];
    assert.deepEqual(figures(hub), { streams: 1, channels: 1 });
    await next.close();
    await until(() => figures(hub).streams === 0, 'the second shared stream closed');
  });

  test('three tabs: the leader closes first; the others carry on, on the same stream, until the last closes', async () => {
    const hub = await newHub();
    const [leader, second, third] = (await openTabs(hub.url, 3)) as [Tab, Tab, Tab];
    const before = await Promise.all([second, third].map(async (tab) => (await tab.state()).connectionId));
    await leader.close();
    await until(async () => (await leader.state()).status === 'closed', 'the leader closed');
    await until(() => figures(hub).channels === 2, "the leader's channel closed");
    assert.equal((await hub.publish({ topic: 'room', data: { n: 1 } })).status, 202);
    await until(() => all([second, third], (s) => s.received.length === 1), 'the event in both other tabs');
    const after = await Promise.all([second, third].map(async (tab) => (await tab.state()).connectionId));
    assert.deepEqual(after, before, 'no reconnection');
    await second.close();
    await until(() => figures(hub).channels === 1, "the second tab's channel closed");
    assert.equal(figures(hub).streams, 1, 'the third tab still has its channel on it');
    assert.equal((await hub.publish({ topic: 'room', data: { n: 2 } })).status, 202);
    await until(async () => (await third.state()).received.length === 2, 'the next event in the third tab');
    await third.close();
    await until(() => figures(hub).streams === 0, 'the shared stream closed once no tab needs it');
    assert.equal([...hub.herald.hub.streams()].length, 0);
  });

  test('tabs that close while the leader relays a burst leave nothing held: the leader closes its stream after', async () => {
    const hub = await newHub();
    const [leader, ...others] = (await openTabs(hub.url, 4)) as Tab[];
    let n = 0;
    const publishing = (async () => {
      for (let round = 0; round < 30; round++) {
        const batch = Array.from({ length: 20 }, () => ({ topic: 'room', data: { n: ++n } }));
        assert.equal((await hub.publish(batch)).status, 202);
        await sleep(10);
      }
    })();
    // One tab closes mid-burst, one crashes, one opens and closes before its channel is up.
    await sleep(50);
    await (others[0] as Tab).close();
    await (others[1] as Tab).worker.terminate();
    const fleeting = openTab(hub.url);
    await fleeting.ready;
    await fleeting.close();
    await publishing;
    await until(
      async () => (await (leader as Tab).state()).received.length === n,
      'every event in the leader',
    );
    const numbers = (await (leader as Tab).state()).received.map((event) => event.n);
    assert.deepEqual(
      numbers,
      Array.from({ length: n }, (_, i) => i + 1),
      'the leader had each once, in order',
    );
    // The last other tab and the leader close: nothing of the closed tabs keeps the stream up.
    await (others[2] as Tab).close();
    await (leader as Tab).close();
    await until(() => figures(hub).streams === 0, 'the shared stream closed');
    assert.deepEqual(figures(hub), { streams: 0, channels: 0 });
  });

  test('the leader tab closes just as another tab asks for a channel: that tab leads, and is open', async () => {
    const hub = await newHub();
    const [leader] = (await openTabs(hub.url, 1)) as [Tab];
    const late = openTab(hub.url);
    await late.ready;
    // Its request may reach the leader before the leader lets go, or be lost with it.
    await leader.close();
    await until(async () => (await late.state()).status === 'open', 'the late tab open');
    // One stream: the leader's, kept for it, or its own, once the leader's has gone.
    await until(() => figures(hub).streams === 1 && figures(hub).channels === 1, 'one stream, one channel');
    assert.equal((await hub.publish({ topic: 'room', data: { n: 1 } })).status, 202);
    await until(async () => (await late.state()).received.length === 1, 'the event in the late tab');
    await late.close();
    await until(() => figures(hub).streams === 0, 'the shared stream closed');
  });

  test('the leader closed, the other tab crashes: the stream closes (its tab lock tells)', async () => {
    const hub = await newHub();
    const [leader, follower] = (await openTabs(hub.url, 2)) as [Tab, Tab];
    await leader.close();
    await until(() => figures(hub).channels === 1, "the leader's channel closed");
    assert.equal(figures(hub).streams, 1, 'kept for the other tab');
    await follower.worker.terminate();
    await until(() => figures(hub).streams === 0, 'the shared stream closed');
  });

  test('reconnect:false while a tab is frozen: it is told when it wakes, and no stream comes back', async (t) => {
    const hub = await newHub();
    const [leader, follower] = (await openTabs(hub.url, 2)) as [Tab, Tab];
    // Frozen for less than its watchdog's limit (5 s): longer, and it would give its channel up
    // as silent before reading what came meanwhile, as a lone client's stream would.
    await follower.freeze(2_500);
    const answer = await fetch(`${hub.url}/v1/connections/disconnect`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ tenant: '*', reason: 'banned', reconnect: false }),
    });
    assert.equal(answer.status, 200);
    await until(async () => (await leader.state()).status === 'closed', 'the leader closed');
    t.diagnostic(`while the other tab is frozen: ${JSON.stringify(figures(hub))}`);
    // Answers once it has woken.
    await until(async () => (await follower.state()).status === 'closed', 'the frozen tab closed');
    await until(() => figures(hub).streams === 0, 'the shared stream closed');
    await sleep(1_500);
    assert.equal([...hub.herald.hub.streams()].length, 0, 'no channel came back');
    assert.deepEqual(figures(hub), { streams: 0, channels: 0 }, 'no shared stream came back');
  });
});
