import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, afterEach, describe, test } from 'node:test';
import { brokerFor } from '../../src/backends/connect.ts';
import { type SharedCounting, sharedCounterOf } from '../../src/core/cluster.ts';
import type { HeraldOptions } from '../../src/herald.ts';
import { publishesKey, subjectStreamsKey, tenantStreamsKey } from '../../src/http/limit-keys.ts';
import type { HeraldLogger } from '../../src/observability/logger.ts';
import { metricsOf } from '../../src/observability/metrics.ts';
import { REDIS_URL } from '../helpers/backends.ts';
import { deletePrefix, type PrivateRedis, startPrivateRedis } from '../helpers/redis-server.ts';
import { sleep, startHub, type TestHub } from '../helpers/server.ts';
import type { SseStream } from '../helpers/sse-client.ts';
import { bearer, SECRET, token } from '../helpers/tokens.ts';

/**
 * Cluster-wide limits with nodes in this process: Heralds on one Redis log are nodes of one
 * cluster as much as processes are (test/cluster/limits-nodes.test.ts runs them as processes),
 * and here a test can read a node's log lines and metrics and hang its broker.
 */

/** A node's log lines, by level. */
class Lines implements HeraldLogger {
  readonly lines: { level: string; message: string }[] = [];
  debug(_: object, message = '') {
    this.lines.push({ level: 'debug', message });
  }
  info(_: object, message = '') {
    this.lines.push({ level: 'info', message });
  }
  warn(_: object, message = '') {
    this.lines.push({ level: 'warn', message });
  }
  error(_: object, message = '') {
    this.lines.push({ level: 'error', message });
  }
  about(level: string, pattern: RegExp): number {
    return this.lines.filter((line) => line.level === level && pattern.test(line.message)).length;
  }
}

const hubs: TestHub[] = [];
const privates: PrivateRedis[] = [];
/** The logs made on the machine's Redis, dropped at the end. */
const logs: string[] = [];
after(async () => {
  await Promise.all(hubs.map((hub) => hub.close().catch(() => {})));
  await Promise.all(privates.map((redis) => redis.stop()));
  for (const name of logs) await deletePrefix(REDIS_URL, name);
});

const stream = () => {
  const name = `test_limits_${Math.random().toString(36).slice(2, 10)}`;
  logs.push(name);
  return name;
};

// Heartbeats every 100 ms: a node counts across nodes 600 ms after it starts (src/herald.ts).
const CLUSTER = { heartbeatMs: 100, leaseMs: 1_000 };
const SETTLED_MS = 800;

async function nodes(
  count: number,
  url: string,
  name: string,
  options: HeraldOptions = {},
  logger?: HeraldLogger,
): Promise<TestHub[]> {
  const started = await Promise.all(
    Array.from({ length: count }, async () => {
      const broker = await brokerFor({ url, stream: name });
      const hub = await startHub({
        broker,
        auth: { jwt: { secrets: [SECRET] } },
        cluster: CLUSTER,
        ...(logger === undefined ? {} : { logger }),
        ...options,
      });
      hubs.push(hub);
      await hub.herald.hub.whenReady();
      return hub;
    }),
  );
  await sleep(SETTLED_MS);
  return started;
}

/** Streams opened by a test, closed after it whatever happened. */
const streams: SseStream[] = [];
afterEach(() => {
  for (const open of streams.splice(0)) open.close();
});

async function open(hub: TestHub, jwt: string, topic = 'things/1'): Promise<SseStream> {
  const opened = await hub.subscribe(`topic=${encodeURIComponent(topic)}`, { headers: bearer(jwt) });
  streams.push(opened);
  return opened;
}

/** Until `condition` holds (a stream's close takes a moment to reach the broker). */
async function until(condition: () => Promise<boolean> | boolean, what: string, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

const streamOf = (tenant: string, sub?: string) =>
  token({ tenant, subscribe: ['things/{id}'], ...(sub === undefined ? {} : { sub }) });

describe('keys on the broker', () => {
  test('no tenant or subject string can spell another key', () => {
    const names = ['a', 'b', 'a:b', 'a"b', '["a","b"]', 'a\\', '', ':', 'a,b', 'streams:tenant:a'];
    const keys = new Set<string>();
    let made = 0;
    for (const tenant of names) {
      keys.add(tenantStreamsKey(tenant));
      keys.add(publishesKey({ tenant }));
      keys.add(publishesKey(tenant));
      made += 3;
      for (const subject of names) {
        keys.add(subjectStreamsKey(tenant, subject));
        keys.add(publishesKey({ tenant, subject }));
        made += 2;
      }
    }
    assert.equal(keys.size, made, 'every (kind, tenant, subject) has a key of its own');
    assert.notEqual(tenantStreamsKey('a:b'), subjectStreamsKey('a', 'b'));
  });
});

describe('streams per tenant and per subject across nodes (Redis)', () => {
  test('a tenant capped at 2 gets its third refused on whichever node, and one more once one closes', async () => {
    const cluster = await nodes(3, REDIS_URL, stream(), { limits: { streamsPerTenant: 2 } });
    const [a, b, c] = cluster as [TestHub, TestHub, TestHub];
    const jwt = await streamOf('acme', 'alice');
    const first = await open(a, jwt);
    assert.equal((await open(b, jwt)).status, 200);
    assert.equal(first.status, 200);
    for (const node of [a, b, c]) {
      const refused = await open(node, jwt);
      assert.equal(refused.status, 429);
      await refused.until((s) => s.ended, 5_000, 'the refusal to end');
      const problem = JSON.parse(refused.raw) as { code: string; detail: string };
      assert.equal(problem.code, 'too-many-streams');
      assert.match(problem.detail, /this tenant already has 2 open streams across all nodes; the limit is 2/);
      assert.equal(refused.headers['retry-after'], '5');
    }
    // Another tenant is not counted with it.
    assert.equal((await open(c, await streamOf('globex', 'alice'))).status, 200);
    first.close();
    await until(async () => {
      const next = await open(c, jwt);
      return next.status === 200;
    }, 'a slot freed by the close');
    assert.equal((await open(a, jwt)).status, 429);
  });

  test('a subject capped at 1 likewise; another tenant’s subject of the same name is another subject', async () => {
    const [a, b] = (await nodes(2, REDIS_URL, stream(), { limits: { streamsPerSubject: 1 } })) as [
      TestHub,
      TestHub,
    ];
    const alice = await streamOf('acme', 'alice');
    const held = await open(a, alice);
    assert.equal(held.status, 200);
    assert.equal((await open(b, alice)).status, 429);
    assert.equal((await open(b, await streamOf('globex', 'alice'))).status, 200);
    // Tenant `a:b` holds a stream; tenant `a` with subject `b` is not it, nor is the reverse.
    assert.equal((await open(a, await streamOf('a:b', 'x'))).status, 200);
    assert.equal((await open(b, await streamOf('a', 'b'))).status, 200);
    assert.equal((await open(b, await streamOf('a', 'b:x'))).status, 200);
    held.close();
    await until(async () => (await open(b, alice)).status === 200, 'the subject’s slot to free');
  });

  test('a tenant "a:b" at its limit does not count against tenant "a" or its subject "b"', async () => {
    const [a, b] = (await nodes(2, REDIS_URL, stream(), {
      limits: { streamsPerTenant: 1, streamsPerSubject: 1 },
    })) as [TestHub, TestHub];
    assert.equal((await open(a, await streamOf('a:b', 'c'))).status, 200);
    assert.equal((await open(b, await streamOf('a:b', 'd'))).status, 429);
    assert.equal((await open(b, await streamOf('a', 'b'))).status, 200);
    assert.equal((await open(a, await streamOf('a', 'b:c'))).status, 429, 'tenant a is at its limit of 1');
  });

  test('a mux stream and its channels count as streams across nodes; a channel replaced at the limit keeps its slot', async () => {
    const [a, b] = (await nodes(2, REDIS_URL, stream(), { limits: { streamsPerSubject: 2 } })) as [
      TestHub,
      TestHub,
    ];
    const jwt = await streamOf('acme', 'alice');
    const mux = await a.subscribe('mux=1', { headers: bearer(jwt) });
    streams.push(mux);
    assert.equal(mux.status, 200);
    await mux.until((s) => s.connectionId !== undefined, 10_000, 'the mux’s herald.connected');
    const { connectionId, secret } = JSON.parse(
      mux.events.find((event) => event.type === 'herald.connected')?.data ?? '{}',
    ) as { connectionId: string; secret: string };
    const channel = (name: string) =>
      fetch(`${a.url}/v1/channels`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...bearer(jwt) },
        body: JSON.stringify({ connectionId, secret, action: 'open', channel: name, topics: ['things/1'] }),
      }).then(async (response) => ({ status: response.status, body: await response.text() }));
    assert.equal((await channel('one')).status, 200);
    assert.equal((await open(b, jwt)).status, 429, 'the mux and its channel hold both slots');
    const refused = await channel('two');
    assert.equal(refused.status, 429, refused.body);
    assert.match(refused.body, /too-many-streams/);
    assert.equal((await channel('one')).status, 200, 'replacing a channel frees its slot first');
    mux.close();
    await until(async () => (await open(b, jwt)).status === 200, 'the mux’s slots to free');
  });

  test('a node restarted under the same id does not inherit what its previous run held', async () => {
    const name = stream();
    // What a previous run of node "pod-1" held when it was killed: a slot of tenant acme's one.
    const previous = await brokerFor({ url: REDIS_URL, stream: name });
    const counter = sharedCounterOf(previous) as SharedCounting;
    assert.equal(await counter.acquire(tenantStreamsKey('acme'), 'pod-1@1000', 1, ['pod-1@1000']), true);
    await previous.close();
    const [node] = (await nodes(1, REDIS_URL, name, {
      nodeId: 'pod-1',
      limits: { streamsPerTenant: 1 },
    })) as [TestHub];
    const jwt = await streamOf('acme', 'alice');
    assert.equal((await open(node, jwt)).status, 200, 'the previous run’s slot is not this run’s');
    assert.equal((await open(node, jwt)).status, 429);
  });

  test('for a heartbeat after it starts, a node checks stream limits alone, with no broker round trip', async () => {
    const broker = await brokerFor({ url: REDIS_URL, stream: stream() });
    const hub = await startHub({
      broker,
      cluster: { heartbeatMs: 2_000, leaseMs: 5_000 },
      limits: { streamsPerTenant: 1 },
    });
    hubs.push(hub);
    const limits = hub.herald.limits;
    assert.equal(limits.scope, 'cluster');
    assert.equal(limits.snapshot().countingOnNode, true);
    const release = limits.reserveStream('ip', 'alice', 'acme');
    assert.equal(typeof release, 'function', 'decided on the node');
    (release as () => void)();
    await until(() => limits.snapshot().countingOnNode === false, 'a heartbeat and its slack to pass');
    const counted = limits.reserveStream('ip', 'alice', 'acme');
    assert.ok(counted instanceof Promise, 'asked of the broker from then on');
    (await counted)();
  });

  test('with scope node each node counts alone, as before', async () => {
    const [a, b] = (await nodes(2, REDIS_URL, stream(), {
      limits: { scope: 'node', streamsPerTenant: 1 },
    })) as [TestHub, TestHub];
    const jwt = await streamOf('acme', 'alice');
    assert.equal((await open(a, jwt)).status, 200);
    assert.equal((await open(b, jwt)).status, 200);
    assert.equal((await open(a, jwt)).status, 429);
    assert.equal(a.herald.limits.scope, 'node');
  });

  test('the memory broker counts on its node, with no promise: it is the whole cluster', async () => {
    const hub = await startHub({ auth: { jwt: { secrets: [SECRET] } }, limits: { streamsPerTenant: 1 } });
    hubs.push(hub);
    assert.equal(hub.herald.limits.scope, 'node');
    const jwt = await streamOf('acme', 'alice');
    const reserved = hub.herald.limits.reserveStream('ip', 'alice', 'acme');
    assert.equal(typeof reserved, 'function', 'no promise on the memory broker');
    assert.equal((await open(hub, jwt)).status, 429);
    (reserved as () => void)();
    assert.equal(hub.herald.limits.reservePublish({ tenant: 'acme' }, 1), undefined);
  });
});

describe('publish rates per credential across nodes (Redis)', () => {
  test('three nodes together stay within the allowance plus a chunk per node per window', async () => {
    // Rate 40/s, burst 40: windows of 1 s admitting 40, leased 4 at a time.
    const cluster = await nodes(3, REDIS_URL, stream(), {
      limits: { publishesPerSecondPerSubject: 40, publishBurstPerSubject: 40 },
    });
    const jwt = await token({ tenant: 'acme', sub: 'billing', publish: ['things/{id}'] });
    const headers = bearer(jwt);
    let accepted = 0;
    let refused = 0;
    let otherStatus = 0;
    const started = Date.now();
    const runMs = 2_500;
    await Promise.all(
      cluster.map(async (node) => {
        while (Date.now() - started < runMs) {
          const answer = await node.publish({ topic: 'things/1', data: {} }, headers);
          if (answer.status === 202) accepted++;
          else if (answer.status === 429) {
            refused++;
            assert.equal(answer.body.code, 'publish-rate-exceeded');
            assert.ok(Number(answer.headers.get('retry-after')) >= 1);
          } else otherStatus++;
        }
      }),
    );
    assert.equal(otherStatus, 0);
    // 2.5 s touch at most 4 windows of 1 s (the first starts with the first publish).
    const windows = Math.ceil(runMs / 1_000) + 1;
    assert.ok(accepted <= windows * (40 + 3 * 4), `accepted ${accepted} in ${windows} windows`);
    assert.ok(accepted >= 2 * (40 - 3 * 4), `accepted ${accepted}: the rate is usable`);
    assert.ok(refused > 0, 'the nodes together were refused');
  });

  test('a publish that its lease covers costs no broker round trip', async () => {
    const [node] = (await nodes(1, REDIS_URL, stream(), {
      limits: { publishesPerSecondPerSubject: 1_000, publishBurstPerSubject: 1_000 },
    })) as [TestHub];
    const limits = node.herald.limits;
    const credential = { tenant: 'acme', subject: 'billing' };
    const first = limits.reservePublish(credential, 1);
    assert.ok(first instanceof Promise, 'the first publish leases a chunk');
    await first;
    let synchronous = 0;
    for (let i = 0; i < 99; i++) if (limits.reservePublish(credential, 1) === undefined) synchronous++;
    assert.equal(synchronous, 99, 'the other 99 of the chunk of 100 are spent locally');
    assert.ok(limits.reservePublish(credential, 1) instanceof Promise, 'the 101st leases again');
  });
});

/** Until the node asks the broker again: it answered a probe, and the roster had a heartbeat's time. */
async function countingAcrossNodes(hub: TestHub): Promise<void> {
  await until(async () => {
    await hub.herald.limits.reservePublish({ tenant: 'probe' }, 1);
    return hub.herald.limits.snapshot().countingOnNode === false;
  }, 'the node to count across nodes again');
}

/** The pid of a private redis-server, for SIGSTOP/SIGCONT: a broker that hangs rather than dies. */
function redisPid(redis: PrivateRedis): number {
  const info = execFileSync('redis-cli', ['-p', String(redis.port), 'INFO', 'server'], { encoding: 'utf8' });
  return Number(/process_id:(\d+)/.exec(info)?.[1]);
}

describe('when the broker cannot answer (private Redis)', () => {
  test('killed: streams still open, limited per node; one warning, counted in the metric; one line when it is back', async () => {
    const redis = await startPrivateRedis();
    privates.push(redis);
    const lines = new Lines();
    const [a, b] = (await nodes(2, redis.url, stream(), { limits: { streamsPerTenant: 2 } }, lines)) as [
      TestHub,
      TestHub,
    ];
    const jwt = await streamOf('acme', 'alice');
    await redis.kill();
    const startedAt = Date.now();
    for (const node of [a, b]) {
      assert.equal((await open(node, jwt)).status, 200);
      assert.equal((await open(node, jwt)).status, 200);
      assert.equal((await open(node, jwt)).status, 429, 'the limit holds on each node');
    }
    // Six opens, none held for long by a broker that is gone (250 ms at most, then not asked).
    assert.ok(Date.now() - startedAt < 5_000, `took ${Date.now() - startedAt} ms`);
    assert.equal(lines.about('warn', /cannot count streams and publishes across nodes/), 2, 'one per node');
    assert.ok(a.herald.limits.fallbacks >= 3);
    // Publishes are decided by the node's bucket at once, with no promise to wait on.
    assert.equal(a.herald.limits.reservePublish({ tenant: 'acme', subject: 'billing' }, 1), undefined);
    await redis.restart();
    await countingAcrossNodes(a);
    await countingAcrossNodes(b);
    assert.equal(lines.about('info', /counts streams and publishes across nodes again/), 2);
    assert.equal(lines.about('warn', /cannot count streams/), 2, 'no more warnings');
    // Scraped once the broker is back: the scrape asks it for the log's figures.
    const metrics = await metricsOf(a.herald).render();
    const value = Number(/^herald_limits_fallback_total (\d+)/m.exec(metrics)?.[1]);
    assert.ok(value >= 3, metrics);
  });

  test('a slot given back while the broker was down is given back once it is up again', async () => {
    const redis = await startPrivateRedis({ persistent: true });
    privates.push(redis);
    const [a, b] = (await nodes(2, redis.url, stream(), { limits: { streamsPerTenant: 1 } })) as [
      TestHub,
      TestHub,
    ];
    const jwt = await streamOf('acme', 'alice');
    const held = await open(a, jwt);
    assert.equal(held.status, 200);
    assert.equal((await open(b, jwt)).status, 429);
    await redis.kill();
    held.close();
    await until(() => a.herald.limits.snapshot().openStreams === 0, 'the stream to close on its node');
    await redis.restart();
    await countingAcrossNodes(a);
    await countingAcrossNodes(b);
    await until(async () => {
      const next = await open(b, jwt);
      if (next.status === 200) return true;
      next.close();
      return false;
    }, 'the slot to be given back on the broker');
    assert.equal((await open(a, jwt)).status, 429);
  });

  test('hung: a stream is decided on its node within the timeout; a count that lands later is given back', async () => {
    const redis = await startPrivateRedis();
    privates.push(redis);
    const [a, b] = (await nodes(2, redis.url, stream(), { limits: { streamsPerTenant: 1 } })) as [
      TestHub,
      TestHub,
    ];
    const jwt = await streamOf('acme', 'alice');
    const pid = redisPid(redis);
    process.kill(pid, 'SIGSTOP');
    let resumed = false;
    try {
      const startedAt = Date.now();
      const held = await open(a, jwt);
      assert.equal(held.status, 200, 'decided on the node: 0 of 1 open there');
      assert.ok(Date.now() - startedAt < 3_000, `took ${Date.now() - startedAt} ms`);
      // A client that leaves before its stream was decided.
      const leaving = new AbortController();
      const gone = fetch(`${b.url}/v1/events?topic=things/2`, {
        headers: bearer(jwt),
        signal: leaving.signal,
      }).catch(() => undefined);
      await sleep(50);
      leaving.abort();
      await gone;
      held.close();
      await until(() => a.herald.limits.snapshot().openStreams === 0, 'the stream to close on its node');
      process.kill(pid, 'SIGCONT');
      resumed = true;
      await countingAcrossNodes(a);
      await countingAcrossNodes(b);
      // The acquires Redis ran late were given back: the tenant's one slot is free, and taken now.
      assert.equal((await open(b, jwt)).status, 200, 'no count leaked');
      assert.equal((await open(a, jwt)).status, 429, 'counted across nodes again');
      assert.equal(b.herald.limits.snapshot().openStreams, 1, 'the aborted stream holds nothing');
    } finally {
      if (!resumed) process.kill(pid, 'SIGCONT');
    }
  });
});
