import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { RedisBroker, type RedisBrokerOptions } from '../../src/brokers/redis.ts';
import { HeraldError } from '../../src/core/errors.ts';
import type { HeraldEvent } from '../../src/core/event.ts';
import { adminClient, type PrivateRedis, startPrivateRedis, startRelay } from '../helpers/redis-server.ts';
import { draft } from './contract.ts';

/**
 * What only the Redis broker has to get right: losing Redis, or one node's link to it, and
 * trimming by age. Each test runs its own redis-server, so it can kill it.
 */

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const ids = (events: readonly HeraldEvent[]) => events.map((event) => event.id);

async function until(
  condition: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
}

const unavailable = (error: unknown) =>
  error instanceof HeraldError && error.status === 503 && error.code === 'broker-unavailable';

interface Node {
  readonly broker: RedisBroker;
  readonly fed: HeraldEvent[];
  readonly errors: string[];
}

/** Brokers made by a test, closed at its end whatever happened. */
class Nodes {
  private readonly all: RedisBroker[] = [];

  make(options: RedisBrokerOptions): { broker: RedisBroker; errors: string[] } {
    const errors: string[] = [];
    const broker = new RedisBroker({ onError: (_error, context) => errors.push(context), ...options });
    this.all.push(broker);
    return { broker, errors };
  }

  async feeding(options: RedisBrokerOptions): Promise<Node> {
    const { broker, errors } = this.make(options);
    const fed: HeraldEvent[] = [];
    await broker.start((events) => fed.push(...events));
    return { broker, fed, errors };
  }

  async close(): Promise<void> {
    await Promise.all(this.all.map((broker) => broker.close()));
  }
}

/** Runs `body` with a private redis-server and a node registry; stops both even when it fails. */
async function withRedis(
  options: { persistent?: boolean },
  body: (server: PrivateRedis, nodes: Nodes) => Promise<void>,
): Promise<void> {
  const server = await startPrivateRedis(options);
  const nodes = new Nodes();
  try {
    await body(server, nodes);
  } finally {
    await nodes.close();
    await server.stop();
  }
}

describe('RedisBroker', () => {
  test('compare orders entry ids by milliseconds then sequence, beyond 2^53, ignoring leading zeros', () => {
    const broker = new RedisBroker({ url: 'redis://127.0.0.1:1' });
    const max = '18446744073709551615';
    assert.ok(broker.compare('1-0', '1-1') < 0);
    assert.ok(broker.compare('2-0', '1-99') > 0);
    assert.ok(broker.compare('10-0', '9-0') > 0, 'numeric, not lexicographic');
    assert.ok(broker.compare(`${max}-0`, '18446744073709551614-18446744073709551615') > 0);
    assert.ok(broker.compare(`9007199254740993-${max}`, `9007199254740993-18446744073709551614`) > 0);
    assert.equal(broker.compare('0001-02', '1-2'), 0);
    assert.equal(broker.compare('0-0', '0-0'), 0);
    assert.ok(broker.compare('garbage', '1-0') < 0, 'a malformed position sorts first');
  });

  test('Redis restarted mid-stream: appends get 503 while it is down, the feeds resume by themselves, nothing accepted is lost or repeated', async () => {
    await withRedis({ persistent: true }, async (server, nodes) => {
      const a = await nodes.feeding({ url: server.url, stream: 'restart' });
      const b = await nodes.feeding({ url: server.url, stream: 'restart' });
      const accepted: HeraldEvent[] = [];
      for (let i = 0; i < 10; i++)
        accepted.push(...(await (i % 2 === 0 ? a : b).broker.append([draft(`before-${i}`)])));
      await until(() => a.fed.length === 10 && b.fed.length === 10, 'the feeds before the outage');

      await server.kill();
      for (const node of [a, b]) {
        const startedAt = Date.now();
        await assert.rejects(node.broker.append([draft('during')]), unavailable);
        const elapsed = Date.now() - startedAt;
        assert.ok(elapsed < 2000, `the append failed after ${elapsed} ms`);
        const health = await node.broker.health();
        assert.equal(health.ok, false);
        assert.match(health.detail ?? '', /redis/);
      }
      await sleep(300);

      await server.restart();
      // Nobody tells the brokers: they reconnect by themselves (backoff capped at 1 s).
      await until(
        async () => (await a.broker.health()).ok && (await b.broker.health()).ok,
        'both nodes to reconnect',
      );
      for (let i = 0; i < 10; i++)
        accepted.push(...(await (i % 2 === 0 ? a : b).broker.append([draft(`after-${i}`)])));
      await until(() => a.fed.length >= 20 && b.fed.length >= 20, 'the feeds after the outage');
      await sleep(200);
      assert.deepEqual(ids(a.fed), ids(accepted));
      assert.deepEqual(ids(b.fed), ids(accepted));
      assert.deepEqual(
        a.fed.map((event) => event.data),
        [
          ...Array.from({ length: 10 }, (_, i) => `before-${i}`),
          ...Array.from({ length: 10 }, (_, i) => `after-${i}`),
        ],
      );
      assert.ok(a.errors.length > 0, 'the outage was reported through onError');
    });
  });

  test('a node whose link to Redis was down catches up with what others appended meanwhile, once each, in order', async () => {
    await withRedis({}, async (server, nodes) => {
      const relay = await startRelay(server.port);
      try {
        const a = await nodes.feeding({ url: server.url, stream: 'cut' });
        const b = await nodes.feeding({ url: relay.url, stream: 'cut' });
        const accepted: HeraldEvent[] = [];
        accepted.push(...(await a.broker.append([draft('0'), draft('1')])));
        await until(() => b.fed.length === 2, "b's feed");

        await relay.cut();
        for (let i = 0; i < 40; i++) {
          accepted.push(
            ...(await a.broker.append([draft(`cut-${i}-a`), draft(`cut-${i}-b`), draft(`cut-${i}-c`)])),
          );
        }
        await assert.rejects(b.broker.append([draft('from b')]), unavailable);
        assert.equal((await b.broker.health()).ok, false);
        await sleep(1500);
        assert.equal(b.fed.length, 2, 'nothing reaches b while its link is down');

        await relay.restore();
        accepted.push(...(await a.broker.append([draft('last')])));
        await until(() => b.fed.length >= accepted.length, 'b to catch up');
        await sleep(200);
        assert.equal(accepted.length, 123);
        assert.deepEqual(ids(b.fed), ids(accepted));
        assert.deepEqual(ids(a.fed), ids(accepted));
        assert.ok(b.errors.length > 0, 'the lost link was reported through onError');
      } finally {
        await relay.close();
      }
    });
  });

  test('a node away longer than the history reports the gap and carries on with what is retained', async () => {
    await withRedis({}, async (server, nodes) => {
      const relay = await startRelay(server.port);
      try {
        // `a` only appends: a batch larger than the history is trimmed before any feed can read it.
        const a = nodes.make({ url: server.url, stream: 'gap', maxEvents: 5 });
        const b = await nodes.feeding({ url: relay.url, stream: 'gap', maxEvents: 5 });
        await a.broker.append([draft('seen')]);
        await until(() => b.fed.length === 1, "b's feed");
        await relay.cut();
        const missed = await a.broker.append(Array.from({ length: 20 }, (_, i) => draft(`${i}`)));
        await relay.restore();
        await until(() => b.fed.length === 6, 'b to be fed what is retained');
        assert.deepEqual(ids(b.fed.slice(1)), ids(missed.slice(-5)));
        assert.ok(b.errors.includes('feed gap'), `reported: ${b.errors.join(', ')}`);
      } finally {
        await relay.close();
      }
    });
  });

  test('killing the feed connection while events pour in loses and repeats nothing', async () => {
    await withRedis({}, async (server, nodes) => {
      const a = await nodes.feeding({ url: server.url, stream: 'kill' });
      const b = await nodes.feeding({ url: server.url, stream: 'kill' });
      const admin = await adminClient(server.url);
      try {
        const accepted: HeraldEvent[] = [];
        let appending = true;
        const appender = (async () => {
          for (let i = 0; appending && i < 5000; i++) {
            accepted.push(...(await a.broker.append([draft(`${i}-x`), draft(`${i}-y`)])));
          }
        })();
        let killed = 0;
        for (let round = 0; round < 6; round++) {
          await sleep(80);
          // The feed connections are those blocked in XREAD; a's is the oldest (lowest id), keep it.
          const list = String(await admin.sendCommand(['CLIENT', 'LIST', 'TYPE', 'normal']));
          const feeds = [...list.matchAll(/^id=(\d+) .*cmd=xread/gm)].map((match) => Number(match[1]));
          feeds.sort((x, y) => x - y);
          for (const id of feeds.slice(1)) {
            killed += Number(await admin.sendCommand(['CLIENT', 'KILL', 'ID', String(id)]));
          }
        }
        appending = false;
        await appender;
        assert.ok(killed >= 3, `killed ${killed} feed connections`);
        await until(() => a.fed.length >= accepted.length && b.fed.length >= accepted.length, 'the feeds');
        await sleep(200);
        assert.ok(accepted.length > 50, `appended ${accepted.length}`);
        assert.deepEqual(ids(a.fed), ids(accepted));
        assert.deepEqual(ids(b.fed), ids(accepted));
      } finally {
        admin.destroy();
      }
    });
  });

  test('age retention trims the stream on a timer, without any append to trigger it', async () => {
    await withRedis({}, async (server, nodes) => {
      const admin = await adminClient(server.url);
      try {
        const { broker, fed } = await nodes.feeding({ url: server.url, stream: 'age', maxAgeMs: 400 });
        const head = await broker.locate('0-0');
        assert.deepEqual(head, { kind: 'found', pos: '0-0' });
        const events = await broker.append([draft('1'), draft('2'), draft('3')]);
        assert.equal(await admin.xLen('age:log'), 3);
        await until(async () => (await admin.xLen('age:log')) === 0, 'the timer to trim', 3000);
        assert.equal(fed.length, 3);
        assert.equal((await broker.history()).size, 0);
        // Nothing after the last event was lost: replay after it is complete. After the first, it is not.
        const last = events[2] as HeraldEvent;
        assert.deepEqual(await broker.locate(last.id), { kind: 'found', pos: last.pos });
        assert.equal((await broker.locate((events[0] as HeraldEvent).id)).kind, 'expired');
        assert.equal((await broker.locate('0-0')).kind, 'expired');
        // The next entry knows what came before it, even though the stream was empty.
        const [next] = await broker.append([draft('4')]);
        assert.deepEqual(await broker.locate(last.id), { kind: 'found', pos: last.pos });
        assert.deepEqual(await broker.read(last.pos, next?.pos ?? '', 10), [next]);
      } finally {
        admin.destroy();
      }
    });
  });

  test('an append trims by age too, at most once a second, and a chosen id is forgotten with its event', async () => {
    await withRedis({}, async (server, nodes) => {
      const admin = await adminClient(server.url);
      try {
        // Not started: no timer, so only the append can have trimmed.
        const { broker } = nodes.make({ url: server.url, stream: 'lazy', maxAgeMs: 1000 });
        const [old] = await broker.append([draft('old', { id: 'chosen-old' })]);
        const ttl = await admin.pTTL('lazy:id:chosen-old');
        assert.ok(ttl > 0 && ttl <= 1000, `the chosen id expires with the history (pttl ${ttl})`);
        await sleep(1200);
        const [fresh] = await broker.append([draft('fresh')]);
        assert.equal(await admin.xLen('lazy:log'), 1);
        assert.deepEqual(await broker.read(null, fresh?.pos ?? '', 10), [fresh]);
        assert.deepEqual(await broker.locate(old?.pos ?? ''), { kind: 'found', pos: old?.pos });
        assert.deepEqual(await broker.locate('chosen-old'), { kind: 'unknown' });
        await broker.append([draft('again', { id: 'chosen-old' })]);
      } finally {
        admin.destroy();
      }
    });
  });

  test('start fails fast with a 503 naming the server when Redis is unreachable; so do appends', async () => {
    const server = await startPrivateRedis();
    const url = server.url;
    await server.stop();
    const nodes = new Nodes();
    try {
      const { broker } = nodes.make({ url });
      let startedAt = Date.now();
      await assert.rejects(
        broker.start(() => {}),
        (error: unknown) =>
          unavailable(error) && (error as HeraldError).detail.includes(`127.0.0.1:${server.port}`),
      );
      assert.ok(Date.now() - startedAt < 2500, `start failed after ${Date.now() - startedAt} ms`);
      startedAt = Date.now();
      await assert.rejects(broker.append([draft('x')]), unavailable);
      assert.ok(Date.now() - startedAt < 2500);
      assert.equal((await broker.health()).ok, false);
    } finally {
      await nodes.close();
    }
  });

  test('locate never throws on ids Redis could choke on, and a password never reaches a message', async () => {
    await withRedis({}, async (server, nodes) => {
      const { broker } = await nodes.feeding({ url: server.url, stream: 'odd' });
      const [event] = await broker.append([draft('a')]);
      for (const id of [
        '-',
        '+',
        '(1-0',
        '$',
        '>',
        '1-',
        '-1',
        '1-0-0',
        'a b',
        '\r\n',
        '*',
        'x'.repeat(300),
        '18446744073709551616-0',
      ]) {
        assert.notEqual((await broker.locate(id)).kind, 'found', JSON.stringify(id));
      }
      assert.deepEqual(await broker.locate(`0000${event?.pos}`), { kind: 'found', pos: event?.pos });
      const secret = new RedisBroker({ url: 'redis://user:hunter2@127.0.0.1:1/0' });
      const health = await secret.health();
      await secret.close();
      assert.equal(health.ok, false);
      assert.doesNotMatch(health.detail ?? '', /hunter2/);
    });
  });
});
