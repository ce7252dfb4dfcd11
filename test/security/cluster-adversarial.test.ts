import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createClient } from 'redis';
import { brokerFor } from '../../src/backends/connect.ts';
import { BACKENDS, NATS_URL, REDIS_URL } from '../helpers/backends.ts';
import { connectJetStream } from '../helpers/nats-server.ts';
import { deletePrefix } from '../helpers/redis-server.ts';
import { sleep, startHub, type TestHub } from '../helpers/server.ts';
import type { SseStream } from '../helpers/sse-client.ts';
import { bearer, SECRET, token } from '../helpers/tokens.ts';

// biome-ignore lint/suspicious/noExplicitAny: answers are read field by field and asserted on.
type Json = Record<string, any>;

/**
 * An adversary's view of the cluster operations (issue #16): other tenants' admins, non-admins,
 * anonymous callers and colliding tenant names against /v1/nodes, /v1/connections,
 * /v1/connections/disconnect and /v1/presence; bad input; forged and malformed messages on the
 * broker's bus; racing opens against the cluster-wide stream cap. Three in-process hubs on the
 * machine's Redis (and one on NATS for its bus), real sockets.
 */

const auth = { jwt: { secrets: [SECRET] } };
// A lease long enough that a loaded machine's stalls do not drop a live node.
const cluster = { heartbeatMs: 250, leaseMs: 5_000, gatherTimeoutMs: 5_000 };

async function call(url: string, init: { jwt?: string; method?: string; body?: string } = {}) {
  const response = await fetch(url, {
    method: init.method ?? 'GET',
    headers: {
      ...(init.body === undefined ? {} : { 'content-type': 'application/json' }),
      ...(init.jwt === undefined ? {} : bearer(init.jwt)),
    },
    ...(init.body === undefined ? {} : { body: init.body }),
  });
  const text = await response.text();
  let body: Json = {};
  try {
    body = JSON.parse(text) as Json;
  } catch {
    body = { raw: text };
  }
  return { status: response.status, type: response.headers.get('content-type') ?? '', body };
}

/** A refusal is problem+json with a code and a detail that says what to do. */
function assertProblem(answer: { status: number; type: string; body: Json }, status: number, code?: string) {
  assert.equal(answer.status, status, JSON.stringify(answer.body));
  assert.match(answer.type, /application\/problem\+json/);
  if (code !== undefined) assert.equal(answer.body.code, code, JSON.stringify(answer.body));
  assert.ok(typeof answer.body.detail === 'string' && answer.body.detail.length > 10, answer.body.detail);
}

async function until(condition: () => Promise<boolean> | boolean, what: string, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

const name = () => `test_advc_${Math.random().toString(36).slice(2, 10)}`;

describe('cluster operations under attack (3 nodes on Redis)', () => {
  const hubs: TestHub[] = [];
  const streams: SseStream[] = [];
  const log = name();
  let root: string;

  before(async () => {
    for (let i = 0; i < 3; i++) {
      hubs.push(
        await startHub({
          broker: await brokerFor({ url: REDIS_URL, stream: log }),
          auth,
          nodeId: `adv-${i}`,
          cluster,
        }),
      );
    }
    root = await token({ admin: true, sub: 'root' });
    for (const hub of hubs) {
      await until(
        async () => (await call(`${hub.url}/v1/nodes`, { jwt: root })).body.nodes?.length === 3,
        'every node in the roster',
      );
    }
  });

  after(async () => {
    for (const each of streams) each.close();
    await Promise.all(hubs.map((hub) => hub.close().catch(() => {})));
    await deletePrefix(REDIS_URL, log);
  });

  const hub = (i: number) => hubs[i] as TestHub;

  async function open(i: number, tenant: string, sub: string, topics: string[], extra = '') {
    const jwt = await token({ tenant, sub, subscribe: topics });
    const query = topics.map((topic) => `topic=${encodeURIComponent(topic)}`).join('&') + extra;
    const opened = await hub(i).subscribe(query, { headers: bearer(jwt) });
    streams.push(opened);
    await opened.untilConnected();
    return opened;
  }

  const total = async () => (await call(`${hub(0).url}/v1/connections?limit=10000`, { jwt: root })).body;

  test('tenants do not reach each other: list, count, members, disconnect, nodes', async () => {
    const victim = await open(1, 'globex', 'gina', ['secret/room']);
    const acmeAdmin = await token({ admin: true, tenant: 'acme', sub: 'acme-ops' });
    const acmeUser = await token({ tenant: 'acme', sub: 'al', subscribe: ['*'] });
    const acmeMembers = await token({
      tenant: 'acme',
      sub: 'am',
      subscribe: ['secret/room'],
      permissions: ['presence:members'],
    });
    // Listing: another tenant's admin sees none of globex, and cannot name it.
    const listed = await call(`${hub(0).url}/v1/connections`, { jwt: acmeAdmin });
    assert.equal(listed.status, 200);
    assert.deepEqual(
      listed.body.connections.filter((row: Json) => row.tenant !== 'acme'),
      [],
    );
    assertProblem(
      await call(`${hub(0).url}/v1/connections?tenant=globex`, { jwt: acmeAdmin }),
      403,
      'tenant-forbidden',
    );
    assertProblem(await call(`${hub(0).url}/v1/connections?tenant=*`, { jwt: acmeAdmin }), 403);
    assertProblem(await call(`${hub(0).url}/v1/connections`, { jwt: acmeUser }), 403, 'admin-required');
    assert.equal((await call(`${hub(0).url}/v1/connections`)).status, 401);
    assert.equal((await call(`${hub(0).url}/v1/nodes`)).status, 401);
    assertProblem(await call(`${hub(0).url}/v1/nodes`, { jwt: acmeUser }), 403, 'admin-required');
    // Nodes: a tenant's admin sees no other tenant's figures, on any node.
    await until(async () => {
      const nodes = (await call(`${hub(2).url}/v1/nodes`, { jwt: root })).body.nodes as Json[];
      return nodes.some((node) => node.tenants.globex?.streams >= 1);
    }, "globex's stream in a heartbeat");
    for (const node of (await call(`${hub(2).url}/v1/nodes`, { jwt: acmeAdmin })).body.nodes as Json[]) {
      assert.deepEqual(
        Object.keys(node.tenants).filter((tenant) => tenant !== 'acme'),
        [],
      );
    }
    // Presence: the same topic name in acme counts acme only; naming globex is refused.
    const presence = await call(`${hub(0).url}/v1/presence?topic=secret/room`, { jwt: acmeMembers });
    assert.equal(presence.status, 200);
    assert.equal(presence.body.connections, 0);
    assert.deepEqual(presence.body.members, []);
    for (const jwt of [acmeMembers, acmeAdmin]) {
      assertProblem(
        await call(`${hub(0).url}/v1/presence?topic=secret/room&tenant=globex`, { jwt }),
        403,
        'tenant-forbidden',
      );
    }
    assert.equal((await call(`${hub(0).url}/v1/presence?topic=secret/room`)).status, 401);
    // Disconnect: by globex's connection id, by its subject, by naming globex: nothing ends.
    const id = victim.connectionId as string;
    assertProblem(
      await call(`${hub(0).url}/v1/connections/disconnect`, {
        jwt: acmeAdmin,
        method: 'POST',
        body: JSON.stringify({ id }),
      }),
      404,
      'connection-not-found',
    );
    const bySubject = await call(`${hub(0).url}/v1/connections/disconnect`, {
      jwt: acmeAdmin,
      method: 'POST',
      body: JSON.stringify({ subject: 'gina' }),
    });
    assert.equal(bySubject.status, 200);
    assert.equal(bySubject.body.disconnected, 0);
    assertProblem(
      await call(`${hub(0).url}/v1/connections/disconnect`, {
        jwt: acmeAdmin,
        method: 'POST',
        body: JSON.stringify({ tenant: 'globex' }),
      }),
      403,
      'tenant-forbidden',
    );
    assertProblem(
      await call(`${hub(0).url}/v1/connections/disconnect`, {
        jwt: acmeUser,
        method: 'POST',
        body: JSON.stringify({ id }),
      }),
      403,
      'admin-required',
    );
    assert.equal(
      (
        await call(`${hub(0).url}/v1/connections/disconnect`, {
          method: 'POST',
          body: JSON.stringify({ id }),
        })
      ).status,
      401,
    );
    await sleep(200);
    assert.equal(victim.ended, false, "globex's stream is still open");
  });

  test('tenant names that could collide: a, a:b, a b, unicode, the empty default tenant', async () => {
    const names = ['a', 'a:b', 'a b', 'a\\u0000b', 'ä', '"a"'];
    const opened = new Map<string, SseStream>();
    for (const [i, tenant] of names.entries()) opened.set(tenant, await open(i % 3, tenant, 's', ['t']));
    for (const tenant of names) {
      const admin = await token({ admin: true, tenant, sub: 'ops' });
      const rows = (await call(`${hub(0).url}/v1/connections`, { jwt: admin })).body.connections as Json[];
      assert.deepEqual(
        rows.map((row) => row.tenant),
        [tenant],
        `an admin of ${JSON.stringify(tenant)} sees its own stream only`,
      );
    }
    // Root ends tenant "a": "a:b", "a b" and the others stay.
    const ended = await call(`${hub(1).url}/v1/connections/disconnect`, {
      jwt: root,
      method: 'POST',
      body: JSON.stringify({ tenant: 'a' }),
    });
    assert.equal(ended.body.disconnected, 1, JSON.stringify(ended.body));
    await (opened.get('a') as SseStream).until((s) => s.ended, 5_000, 'a to end');
    await sleep(200);
    for (const tenant of names.slice(1)) assert.equal(opened.get(tenant)?.ended, false, tenant);
    // A tenant "*" cannot be had from a token, and a control character in a filter is refused.
    const star = await token({ admin: true, tenant: '*', sub: 'x' });
    assert.equal((await call(`${hub(0).url}/v1/connections`, { jwt: star })).status, 401);
    assertProblem(
      await call(`${hub(0).url}/v1/connections?tenant=a%00b`, { jwt: root }),
      400,
      'invalid-connection-filter',
    );
    for (const each of opened.values()) each.close();
  });

  test('bad input is refused with problem+json and nothing changes', async () => {
    const bystander = await open(0, 'acme', 'bob', ['rooms/1']);
    const before = (await total()).connections.length;
    const url = hub(0).url;
    const bad: [string, number, string][] = [
      ['/v1/connections?limit=10001', 400, 'invalid-limit'],
      ['/v1/connections?limit=0', 400, 'invalid-limit'],
      ['/v1/connections?limit=1.5', 400, 'invalid-limit'],
      ['/v1/connections?limit=-1', 400, 'invalid-limit'],
      [`/v1/connections?subject=${'x'.repeat(257)}`, 400, 'invalid-connection-filter'],
      ['/v1/connections?subject=a%07b', 400, 'invalid-connection-filter'],
      ['/v1/connections?subject=', 400, 'invalid-connection-filter'],
      [`/v1/connections?topic=${'t/'.repeat(5_000)}`, 400, 'invalid-connection-filter'],
      ['/v1/connections?topic=a%0Ab', 400, 'invalid-connection-filter'],
      ['/v1/connections?sort=evil', 400, 'invalid-connection-filter'],
      ['/v1/presence?topic=rooms/{id}', 400, 'invalid-topic'],
      ['/v1/presence?topic=*', 400, 'invalid-topic'],
      ['/v1/presence', 400, 'topic-required'],
      ['/v1/presence?topic=a%00b', 400, ''],
      ['/v1/presence?topic=x&tenant=*', 400, 'invalid-tenant'],
    ];
    for (const [path, status, code] of bad) {
      const answer = await call(`${url}${path}`, { jwt: root });
      assert.equal(answer.status, status, path);
      assertProblem(answer, status, code === '' ? undefined : code);
    }
    // Unicode is a name like any other.
    assert.equal(
      (await call(`${url}/v1/connections?subject=%F0%9F%A6%8A&topic=r%C3%A4ume`, { jwt: root })).status,
      200,
    );
    const post = (body: string) =>
      call(`${url}/v1/connections/disconnect`, { jwt: root, method: 'POST', body });
    const refusals: [string, number, string | undefined][] = [
      ['{}', 400, 'invalid-disconnect'],
      ['[]', 400, 'invalid-disconnect'],
      ['null', 400, 'invalid-disconnect'],
      ['not json', 400, undefined],
      [JSON.stringify({ subject: 'bob', reason: 'r'.repeat(10_000) }), 400, 'invalid-disconnect'],
      [JSON.stringify({ subject: 'bob', reason: 'a\u0007b' }), 400, 'invalid-disconnect'],
      [JSON.stringify({ subject: 'bob', reconnect: 'no' }), 400, 'invalid-disconnect'],
      [JSON.stringify({ subject: 'bob', drop: true }), 400, 'invalid-disconnect'],
      [JSON.stringify({ id: 5 }), 400, 'invalid-disconnect'],
      [JSON.stringify({ tenant: ['acme'] }), 400, 'invalid-connection-filter'],
      // 1 MiB: within the body bound (4 MiB by default), refused for what it says.
      [JSON.stringify({ subject: 'bob', pad: 'x'.repeat(1_048_576) }), 400, 'invalid-disconnect'],
      [JSON.stringify({ subject: 'bob', reason: 'x'.repeat(1_048_576) }), 400, 'invalid-disconnect'],
    ];
    for (const [body, status, code] of refusals) assertProblem(await post(body), status, code);
    await sleep(200);
    assert.equal(bystander.ended, false, 'no refusal ended a stream');
    assert.equal((await total()).connections.length, before);
    bystander.close();
  });

  test("a long poll (the client's fallback) is listed and ended by a disconnect with reconnect:false", async () => {
    const jwt = await token({ tenant: 'acme', sub: 'poller', subscribe: ['polled'] });
    const controller = new AbortController();
    const polling = fetch(`${hub(0).url}/v1/events/poll?topic=polled&wait=60`, {
      headers: bearer(jwt),
      signal: controller.signal,
    }).then(
      (response) => response.text(),
      () => '',
    );
    try {
      await until(
        async () =>
          (await call(`${hub(1).url}/v1/connections?subject=poller`, { jwt: root })).body.connections
            ?.length === 1,
        'the poll in flight listed',
      );
      const listed = await call(`${hub(1).url}/v1/connections?subject=poller`, { jwt: root });
      const ended = await call(`${hub(1).url}/v1/connections/disconnect`, {
        jwt: root,
        method: 'POST',
        body: JSON.stringify({ subject: 'poller', reason: 'banned', reconnect: false }),
      });
      assert.equal(listed.body.connections.length, 1, 'the poll in flight is listed');
      assert.equal(listed.body.connections[0].transport, 'poll');
      assert.equal(listed.body.connections[0].node, 'adv-0');
      assert.deepEqual(listed.body.connections[0].topics, ['polled']);
      assert.equal(ended.body.disconnected, 1, 'and ended');
      const answer = JSON.parse(await polling) as Json;
      assert.deepEqual(answer.disconnect, { reason: 'banned', reconnect: false });
      assert.deepEqual(answer.events, []);
    } finally {
      controller.abort();
      await polling;
    }
  });

  test('2 000 watched topics over 3 nodes (20 presence=1 streams of 100) and 150 members on one topic: what it costs', async () => {
    const jwt = await token({
      tenant: 'flood',
      sub: 'w',
      subscribe: ['*'],
      permissions: ['presence:members'],
    });
    const started = performance.now();
    const watchers: SseStream[] = [];
    for (let s = 0; s < 20; s++) {
      const query = Array.from({ length: 100 }, (_, i) => `topic=f/${s}/${i}`).join('&');
      const watcher = await hub(s % 3).subscribe(`${query}&presence=1`, { headers: bearer(jwt) });
      streams.push(watcher);
      watchers.push(watcher);
    }
    for (const watcher of watchers) await watcher.untilConnected();
    const openMs = performance.now() - started;
    const cluster0 = hub(0).herald.cluster;
    const watching = cluster0.presence.watching();
    const heartbeatBytes = JSON.stringify({ figures: cluster0.figures(), watching }).length;
    // Every node is told of every watched topic: a heartbeat carries all of one node's.
    assert.ok(watching.length <= 10_000);
    const t0 = performance.now();
    assert.equal((await call(`${hub(1).url}/v1/nodes`, { jwt: root })).status, 200);
    const nodesMs = performance.now() - t0;
    // 150 subjects on one topic across the nodes: the presence answer lists them all (capped at 10 000).
    const members: SseStream[] = [];
    for (let i = 0; i < 150; i++) {
      const member = await hub(i % 3).subscribe('topic=crowd', {
        headers: bearer(await token({ tenant: 'flood', sub: `m${i}`, subscribe: ['crowd'] })),
      });
      streams.push(member);
      members.push(member);
    }
    for (const member of members) await member.untilConnected();
    const t1 = performance.now();
    const crowd = await call(`${hub(2).url}/v1/presence?topic=crowd`, { jwt });
    const presenceMs = performance.now() - t1;
    assert.equal(crowd.body.subjects, 150);
    assert.equal(crowd.body.members.length, 150);
    console.log(
      `20 presence=1 streams x 100 topics opened in ${openMs.toFixed(0)} ms; node 0 watches ${watching.length} ` +
        `topics, its heartbeat ${heartbeatBytes} bytes; GET /v1/nodes ${nodesMs.toFixed(1)} ms; ` +
        `GET /v1/presence with 150 members over 3 nodes ${presenceMs.toFixed(1)} ms, ${JSON.stringify(crowd.body).length} bytes`,
    );
    for (const each of [...watchers, ...members]) each.close();
  });

  test('herald.presence: another tenant on the same topic, and a watcher without presence:members, hear nothing', async () => {
    const globexWatcher = await open(0, 'globex', 'gw', ['lobby'], '&presence=1');
    const globexAll = await hub(1).subscribe('topic=lobby&presence=1', {
      headers: bearer(await token({ tenant: 'globex', sub: 'ga', subscribe: ['*'] })),
    });
    streams.push(globexAll);
    const acmeCounter = await open(2, 'acme', 'ac', ['lobby'], '&presence=1');
    const acmeAll = await hub(0).subscribe('topic=lobby&presence=1', {
      headers: bearer(await token({ tenant: 'acme', sub: 'aa', subscribe: ['*'] })),
    });
    streams.push(acmeAll);
    await globexAll.untilConnected();
    await acmeAll.untilConnected();
    await sleep(300);
    const joiner = await open(1, 'acme', 'intruder-visible', ['lobby']);
    await acmeAll.until(
      (s) =>
        s.events.some((event) => event.type === 'herald.presence' && event.data.includes('intruder-visible')),
      10_000,
      "acme's own watcher to hear the join",
    );
    await sleep(500);
    const heard = (stream: SseStream) =>
      stream.events.filter((event) => event.type === 'herald.presence' && event.data.includes('intruder'))
        .length;
    assert.equal(heard(globexWatcher), 0, 'globex hears nothing of acme');
    assert.equal(heard(globexAll), 0, "globex's * grant hears nothing of acme");
    assert.equal(heard(acmeCounter), 0, 'a watcher without presence:members is told no subject');
    for (const each of [globexWatcher, globexAll, acmeCounter, acmeAll, joiner]) each.close();
  });

  test('forged and malformed bus messages neither crash a node nor corrupt its roster', async () => {
    const redis = createClient({ url: REDIS_URL });
    await redis.connect();
    try {
      const channel = `${log}:bus:0`;
      const protocol = 'herald-cluster/1';
      const garbage: string[] = [
        '',
        'not json',
        'null',
        '[]',
        '"herald"',
        'x'.repeat(4 * 1024 * 1024),
        JSON.stringify({ protocol, kind: 'heartbeat' }),
        JSON.stringify({ protocol, kind: 'heartbeat', from: 1, startedAt: 1, figures: {} }),
        JSON.stringify({ protocol, kind: 'watching', from: 'forged', topics: 5 }),
        JSON.stringify({ protocol, kind: 'watching', from: 'forged', topics: [[1, 2], null, 'x'] }),
        JSON.stringify({ protocol, kind: 'presence', from: 'forged', sequence: 'x', changes: [null, [1]] }),
        JSON.stringify({ protocol, kind: 'presence', from: 'forged', sequence: 1, changes: 7 }),
        JSON.stringify({
          protocol,
          kind: 'ask',
          from: 'forged',
          id: 'q',
          question: 'connections',
          args: null,
        }),
        JSON.stringify({
          protocol,
          kind: 'ask',
          from: 'forged',
          id: 'q',
          question: 'disconnect',
          args: { filter: 7 },
        }),
        JSON.stringify({ protocol, kind: 'ask', from: 'forged', id: 'q', question: 'presence', args: [] }),
        JSON.stringify({ protocol, kind: 'ask', from: 'forged', id: 'q', question: '__proto__', args: {} }),
        JSON.stringify({ protocol, kind: 'answer', from: 'forged', to: 'adv-0', id: 'nope', body: null }),
        JSON.stringify({ protocol, kind: 'leaving', from: 'nobody' }),
      ];
      for (const message of garbage) await redis.publish(channel, message);
      // A forged heartbeat whose start is outside what a date can hold.
      const forged = (from: string, startedAt: number) =>
        JSON.stringify({
          protocol,
          kind: 'heartbeat',
          from,
          startedAt,
          watching: 5,
          figures: { connections: 1, published: 0, delivered: 0, feedLagMs: 0, tenants: {} },
        });
      await redis.publish(channel, forged('forged-date', 1e300));
      await sleep(500);
      for (const each of hubs) {
        const nodes = await call(`${each.url}/v1/nodes`, { jwt: root });
        assert.equal(nodes.status, 200, `/v1/nodes still answers: ${JSON.stringify(nodes.body)}`);
        const ids = (nodes.body.nodes as Json[]).map((node) => node.id).sort();
        assert.deepEqual(ids, ['adv-0', 'adv-1', 'adv-2'], 'no forged node was listed');
        assert.equal((await call(`${each.url}/v1/connections`, { jwt: root })).status, 200);
      }
      // A well-formed stranger is trusted (anyone on the broker is), and listed with sane figures.
      await redis.publish(channel, forged('stranger', Date.now()));
      await until(async () => {
        const nodes = (await call(`${hub(1).url}/v1/nodes`, { jwt: root })).body.nodes as Json[];
        return nodes.some((node) => node.id === 'stranger');
      }, 'the stranger listed');
      // A node that never beat says it watches topics: nothing is kept, since what a node no one
      // knows watches would never be dropped (a node's topics go when it leaves the roster).
      const watchers = () =>
        (hub(0).herald.cluster.presence as unknown as { watchers: Map<string, unknown> }).watchers.size;
      const before = watchers();
      for (let m = 0; m < 10; m++) {
        const topics = Array.from({ length: 10_000 }, (_, i) => ['ghost-tenant', `g/${m}/${i}`]);
        await redis.publish(channel, JSON.stringify({ protocol, kind: 'watching', from: 'ghost', topics }));
      }
      // The stranger is listed: its watches are kept, bounded per message, until it leaves.
      await redis.publish(
        channel,
        JSON.stringify({ protocol, kind: 'watching', from: 'stranger', topics: [['acme', 'seen']] }),
      );
      await until(() => watchers() - before >= 1, "the stranger's watch", 10_000);
      await sleep(500);
      assert.equal(
        watchers() - before,
        1,
        'only the listed node watches: 10 x 10 000 forged topics kept none',
      );
      // A live stream of real nodes still opens and is counted.
      const alive = await open(2, 'acme', 'after-garbage', ['x']);
      const rows = (await total()).connections as Json[];
      assert.ok(rows.some((row) => row.subject === 'after-garbage'));
      alive.close();
    } finally {
      await redis.quit();
    }
  });

  test('one presence=1 stream with 100 exact topics: what it costs every node', async () => {
    const topics = Array.from({ length: 100 }, (_, i) => `p/${i}`);
    const jwt = await token({ tenant: 'acme', sub: 'watcher', subscribe: ['*'] });
    const started = performance.now();
    const watcher = await hub(0).subscribe(
      `${topics.map((topic) => `topic=${topic}`).join('&')}&presence=1`,
      { headers: bearer(jwt) },
    );
    streams.push(watcher);
    await watcher.untilConnected();
    const openMs = performance.now() - started;
    // Once every node answered the watch's snapshot, each announces its changes: a stream opened
    // before that is counted in the snapshot rather than told as a join (so wait, or it races).
    await until(
      () => hub(0).herald.cluster.presence.watchSettled('acme', 'p/99'),
      'the watch of p/99 settled on every node',
      10_000,
    );
    const joiner = await open(2, 'acme', 'joiner', ['p/99']);
    await watcher.until(
      (s) => s.events.some((event) => event.type === 'herald.presence' && event.data.includes('joiner')),
      10_000,
      'the join',
    );
    const t0 = performance.now();
    const answer = await call(`${hub(1).url}/v1/presence?topic=p/99&tenant=acme`, { jwt: root });
    const presenceMs = performance.now() - t0;
    assert.equal(answer.body.connections, 2);
    console.log(
      `presence=1 with ${topics.length} topics opened in ${openMs.toFixed(0)} ms; one GET /v1/presence on 3 nodes: ${presenceMs.toFixed(1)} ms`,
    );
    watcher.close();
    joiner.close();
  });
});

for (const backend of BACKENDS.filter((each) => each.name !== 'memory')) {
  describe(`the cluster-wide stream cap under a race (3 nodes on ${backend.name}, cap 5)`, () => {
    const hubs: TestHub[] = [];
    const log = backend.newStream();
    after(async () => {
      // The streams' slots go back before the broker's connection closes (else each release is
      // logged as the broker failing to count).
      await until(
        () => hubs.every((hub) => [...hub.herald.hub.streams()].length === 0),
        'every stream closed',
        5_000,
      ).catch(() => {});
      await sleep(200);
      await Promise.all(hubs.map((hub) => hub.close().catch(() => {})));
      await backend.drop(log);
    });

    test('50 concurrent opens on 3 nodes get at most 5; aborted opens give their slots back', async () => {
      for (let i = 0; i < 3; i++) {
        const hub = await startHub({
          broker: await backend.broker(log),
          auth,
          cluster: { heartbeatMs: 100, leaseMs: 1_000 },
          limits: { streamsPerTenant: 5 },
        });
        hubs.push(hub);
        await hub.herald.hub.whenReady();
      }
      await sleep(800);
      const jwt = await token({ tenant: 'racer', sub: 'r', subscribe: ['t'] });
      const attempt = async (i: number) => {
        const response = await fetch(`${(hubs[i % 3] as TestHub).url}/v1/events?topic=t`, {
          headers: bearer(jwt),
        });
        return response;
      };
      const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => attempt(i)));
      const admitted = answers.filter((response) => response.status === 200);
      const refused = answers.filter((response) => response.status === 429);
      assert.equal(admitted.length, 5, `admitted ${admitted.length}`);
      assert.equal(refused.length, 45);
      for (const response of [...admitted, ...refused]) await response.body?.cancel().catch(() => {});
      // Opens cut off at once, before the broker answers: none keeps a slot.
      const aborted = Array.from({ length: 30 }, (_, i) => {
        const controller = new AbortController();
        const done = fetch(`${(hubs[i % 3] as TestHub).url}/v1/events?topic=t`, {
          headers: bearer(jwt),
          signal: controller.signal,
        }).then(
          (response) => response.body?.cancel(),
          () => {},
        );
        setTimeout(() => controller.abort(), i % 5);
        return done;
      });
      await Promise.all(aborted);
      // Every slot comes back: 5 opens succeed again, the 6th does not.
      let held: Response[] = [];
      await until(
        async () => {
          for (const response of held) await response.body?.cancel().catch(() => {});
          held = await Promise.all(Array.from({ length: 5 }, (_, i) => attempt(i)));
          return held.every((response) => response.status === 200);
        },
        'five slots free again',
        20_000,
      );
      const sixth = await attempt(5);
      assert.equal(sixth.status, 429);
      await sixth.body?.cancel();
      for (const response of held) await response.body?.cancel().catch(() => {});
    });
  });
}

describe('malformed messages on the NATS bus', () => {
  let hub: TestHub | undefined;
  const log = name();
  after(async () => {
    await hub?.close();
    const nc = await connectJetStream(NATS_URL);
    try {
      const { jetstreamManager } = await import('@nats-io/jetstream');
      const jsm = await jetstreamManager(nc);
      for (const stream of [
        log,
        `KV_${log}_IDS`,
        `KV_${log}_LATEST`,
        `KV_${log}_COUNTS`,
        `KV_${log}_WINDOWS`,
      ])
        await jsm.streams.delete(stream.toUpperCase()).catch(() => {});
    } finally {
      await nc.close();
    }
  });

  test('garbage and a forged heartbeat on <stream>.bus leave the node answering', async () => {
    hub = await startHub({
      broker: await brokerFor({ url: NATS_URL, stream: log }),
      auth,
      nodeId: 'nats-0',
      cluster,
    });
    await hub.herald.hub.whenReady();
    const root = await token({ admin: true });
    const nc = await connectJetStream(NATS_URL);
    try {
      const subject = `${log.toLowerCase()}.bus`;
      for (const message of ['', '{', 'x'.repeat(512 * 1024), '{"protocol":"herald-cluster/1","kind":"ask"}'])
        nc.publish(subject, message);
      nc.publish(
        subject,
        JSON.stringify({
          protocol: 'herald-cluster/1',
          kind: 'heartbeat',
          from: 'forged',
          startedAt: -1e300,
          figures: { connections: 0, tenants: {} },
        }),
      );
      await nc.flush();
    } finally {
      await nc.close();
    }
    await sleep(500);
    const nodes = await call(`${hub.url}/v1/nodes`, { jwt: root });
    assert.equal(nodes.status, 200, JSON.stringify(nodes.body));
    assert.deepEqual(
      (nodes.body.nodes as Json[]).map((node) => node.id),
      ['nats-0'],
    );
  });
});
