import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { RedisBroker, type RedisBrokerOptions } from '../../src/backends/redis/broker.ts';
import { persistenceWarning } from '../../src/backends/redis/persistence.ts';
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
  /** Every position the node's `onReset` was called with. */
  readonly resets: string[];
  /** What the node passed on, in order: event ids, and `reset` where it left a log. */
  readonly timeline: string[];
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
    const resets: string[] = [];
    const timeline: string[] = [];
    await broker.start(
      (events) => {
        fed.push(...events);
        timeline.push(...ids(events));
      },
      (from) => {
        resets.push(from);
        timeline.push('reset');
      },
    );
    return { broker, fed, errors, resets, timeline };
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
        // A new log starts after its epoch's start, past Redis's clock: its head, not the origin.
        const head = await broker.locate('0-0', '');
        assert.equal(head.kind, 'reset');
        const start = head.kind === 'reset' ? (head.from as string) : '';
        assert.deepEqual(await broker.locate(start, ''), { kind: 'found', pos: start });
        const events = await broker.append([draft('1'), draft('2'), draft('3')]);
        assert.equal(await admin.xLen('age:log'), 3);
        await until(async () => (await admin.xLen('age:log')) === 0, 'the timer to trim', 3000);
        assert.equal(fed.length, 3);
        assert.equal((await broker.history()).size, 0);
        // Nothing after the last event was lost: replay after it is complete. After the first, it is not.
        const last = events[2] as HeraldEvent;
        assert.deepEqual(await broker.locate(last.id, ''), { kind: 'found', pos: last.pos });
        assert.equal((await broker.locate((events[0] as HeraldEvent).id, '')).kind, 'expired');
        assert.equal((await broker.locate(start, '')).kind, 'expired');
        // The next entry knows what came before it, even though the stream was empty.
        const [next] = await broker.append([draft('4')]);
        assert.deepEqual(await broker.locate(last.id, ''), { kind: 'found', pos: last.pos });
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
        // In the tenant's namespace (chosenIdKey('', 'chosen-old')).
        const ttl = await admin.pTTL('lazy:id:0::chosen-old');
        assert.ok(ttl > 0 && ttl <= 1000, `the chosen id expires with the history (pttl ${ttl})`);
        await sleep(1200);
        const [fresh] = await broker.append([draft('fresh')]);
        assert.equal(await admin.xLen('lazy:log'), 1);
        assert.deepEqual(await broker.read(null, fresh?.pos ?? '', 10), [fresh]);
        assert.deepEqual(await broker.locate(old?.pos ?? '', ''), { kind: 'found', pos: old?.pos });
        assert.deepEqual(await broker.locate('chosen-old', ''), { kind: 'unknown' });
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
        assert.notEqual((await broker.locate(id, '')).kind, 'found', JSON.stringify(id));
      }
      assert.deepEqual(await broker.locate(`0000${event?.pos}`, ''), { kind: 'found', pos: event?.pos });
      const secret = new RedisBroker({ url: 'redis://user:hunter2@127.0.0.1:1/0' });
      const health = await secret.health();
      await secret.close();
      assert.equal(health.ok, false);
      assert.doesNotMatch(health.detail ?? '', /hunter2/);
    });
  });
});

/** `count` events, one append each, from the nodes in turn. */
async function appendEach(nodes: readonly Node[], label: string, count: number): Promise<HeraldEvent[]> {
  const appended: HeraldEvent[] = [];
  for (let i = 0; i < count; i++) {
    appended.push(...(await (nodes[i % nodes.length] as Node).broker.append([draft(`${label}-${i}`)])));
  }
  return appended;
}

/** Each node passed on exactly `timeline`: nothing lost, nothing twice, the reset where expected. */
async function timelines(nodes: readonly Node[], timeline: readonly string[]): Promise<void> {
  await until(
    () => nodes.every((node) => node.timeline.length >= timeline.length),
    'every node to pass everything on',
    15_000,
  ).catch(() => {});
  await sleep(200); // anything extra (a duplicate) would arrive now
  for (const node of nodes) assert.deepEqual(node.timeline, timeline);
}

describe('RedisBroker: a log lost or gone back is a new epoch, and every node follows it', () => {
  test('Redis restarted without persistence: every node notices without an append, resumes from before answer reset, the feeds go on with the new log once', async () => {
    await withRedis({}, async (server, nodes) => {
      const options = { url: server.url, stream: 'wiped' };
      const all = [await nodes.feeding(options), await nodes.feeding(options), await nodes.feeding(options)];
      const [a, b, c] = all as [Node, Node, Node];
      const before = await appendEach(all, 'before', 9);
      before.push(...(await a.broker.append([draft('chosen', { tenant: 'acme', id: 'urn:before' })])));
      await until(() => all.every((node) => node.fed.length === 10), 'the feeds before the restart');

      await server.restart();
      // Nobody appends: each node notices on its own (its feed reconnects and checks the epoch).
      await until(
        () => all.every((node) => node.resets.length === 1),
        'every node to notice the reset',
        15_000,
      );
      const from = a.resets[0] as string;
      assert.deepEqual([b.resets, c.resets], [[from], [from]], 'every node names the same new start');
      assert.ok(
        a.broker.compare(from, (before.at(-1) as HeraldEvent).pos) > 0,
        'the new log starts past the old',
      );
      for (const node of all) {
        assert.equal(node.errors.filter((context) => context === 'log reset').length, 1, 'reported once');
      }
      for (const event of before) {
        assert.deepEqual(await c.broker.locate(event.pos, ''), { kind: 'reset', from }, event.pos);
      }
      // The chosen id was lost with the rest: it answers as one never issued, and is free again.
      assert.deepEqual(await b.broker.locate('urn:before', 'acme'), { kind: 'unknown' });

      const after = await appendEach(all, 'after', 9);
      after.push(...(await b.broker.append([draft('chosen again', { tenant: 'acme', id: 'urn:before' })])));
      await timelines(all, [...ids(before), 'reset', ...ids(after)]);
      assert.ok(a.broker.compare((after[0] as HeraldEvent).pos, from) > 0);
      assert.deepEqual(ids(await a.broker.read(from, (after.at(-1) as HeraldEvent).pos, 100)), ids(after));
      assert.deepEqual(await a.broker.locate(from, ''), { kind: 'found', pos: from });
      assert.deepEqual(await a.broker.locate('urn:before', 'acme'), {
        kind: 'found',
        pos: after.at(-1)?.pos,
      });
      for (const node of all) assert.equal(node.resets.length, 1, 'one reset, one report');
    });
  });

  test('the stream deleted under traffic: nodes notice at its first new entry; chosen ids of the old log answer reset and are free again', async () => {
    await withRedis({}, async (server, nodes) => {
      const admin = await adminClient(server.url);
      try {
        const options = { url: server.url, stream: 'deleted' };
        const all = [await nodes.feeding(options), await nodes.feeding(options)];
        const [a, b] = all as [Node, Node];
        const before = await appendEach(all, 'before', 5);
        const [chosen] = await a.broker.append([draft('chosen', { tenant: 'acme', id: 'urn:old' })]);
        before.push(chosen as HeraldEvent);
        await until(() => all.every((node) => node.fed.length === 6), 'the feeds');
        await admin.del('deleted:log');
        // At once, before any check: the append itself makes the new epoch.
        const after = await appendEach(all, 'after', 6);
        await timelines(all, [...ids(before), 'reset', ...ids(after)]);
        const from = a.resets[0] as string;
        assert.deepEqual(b.resets, [from]);
        // The chosen id's key outlived the stream: it names a position of the old log.
        assert.deepEqual(await b.broker.locate('urn:old', 'acme'), { kind: 'reset', from });
        assert.deepEqual(await b.broker.locate('urn:old', 'globex'), { kind: 'unknown' });
        const [again] = await b.broker.append([draft('again', { tenant: 'acme', id: 'urn:old' })]);
        assert.deepEqual(await a.broker.locate('urn:old', 'acme'), { kind: 'found', pos: again?.pos });
        await assert.rejects(
          a.broker.append([draft('twice', { tenant: 'acme', id: 'urn:old' })]),
          (error: unknown) => error instanceof HeraldError && error.status === 409,
        );
      } finally {
        admin.destroy();
      }
    });
  });

  test('FLUSHALL on a quiet log: every node notices within a few seconds, without an append', async () => {
    await withRedis({}, async (server, nodes) => {
      const admin = await adminClient(server.url);
      try {
        const options = { url: server.url, stream: 'flushed' };
        const all = [await nodes.feeding(options), await nodes.feeding(options)];
        const before = await appendEach(all, 'before', 4);
        await until(() => all.every((node) => node.fed.length === 4), 'the feeds');
        await admin.flushAll();
        await until(() => all.every((node) => node.resets.length === 1), 'every node to notice', 15_000);
        const after = await appendEach(all, 'after', 4);
        await timelines(all, [...ids(before), 'reset', ...ids(after)]);
      } finally {
        admin.destroy();
      }
    });
  });

  test('the log went back (an older snapshot restored): a new epoch; every node feeds the same entries after it, once', async () => {
    await withRedis({}, async (server, nodes) => {
      const admin = await adminClient(server.url);
      try {
        const options = { url: server.url, stream: 'back' };
        const all = [await nodes.feeding(options), await nodes.feeding(options)];
        const [a, b] = all as [Node, Node];
        // Appends only, never started: it knows no epoch, so it cannot tell the log went back.
        const { broker: unaware } = nodes.make(options);
        const kept = await appendEach(all, 'kept', 5);
        await admin.sendCommand(['COPY', 'back:log', 'snapshot']);
        const lost = await appendEach(all, 'lost', 5);
        await until(() => all.every((node) => node.fed.length === 10), 'the feeds');
        // Restored as Redis would load an older RDB file: the stream goes back, its epoch record is the same.
        await admin.sendCommand(['RENAME', 'snapshot', 'back:log']);
        // Whoever comes first (this append, or a node's check of a quiet second) finds it out.
        const after = await unaware.append([draft('after-0')]);
        after.push(...(await appendEach(all, 'after', 5)));
        // Whichever way it was found out (the append, a check, or a feed meeting an entry whose
        // predecessor is before what it fed), every node leaves the log at the same point.
        await timelines(all, [...ids(kept), ...ids(lost), 'reset', ...ids(after)]);
        const from = a.resets[0] as string;
        assert.deepEqual(b.resets, [from]);
        for (const event of lost)
          assert.deepEqual(await a.broker.locate(event.pos, ''), { kind: 'reset', from });
        const later = await appendEach(all, 'later', 3);
        await timelines(all, [...ids(kept), ...ids(lost), 'reset', ...ids(after), ...ids(later)]);
        assert.ok(b.broker.compare((later[0] as HeraldEvent).pos, from) > 0);
        assert.deepEqual(await b.broker.locate((later[0] as HeraldEvent).pos, ''), {
          kind: 'found',
          pos: later[0]?.pos,
        });
      } finally {
        admin.destroy();
      }
    });
  });

  test('a log written before epochs is adopted as it is: no reset, every entry still found', async () => {
    await withRedis({}, async (server, nodes) => {
      const admin = await adminClient(server.url);
      try {
        // As Herald wrote it before epochs: entries with `e` and `p`, no `z`, no epoch record.
        const first = String(
          await admin.sendCommand([
            'XADD',
            'old:log',
            '*',
            'e',
            '{"t":["t"],"d":"1","n":"","m":1}',
            'p',
            '0-0',
          ]),
        );
        const second = String(
          await admin.sendCommand([
            'XADD',
            'old:log',
            '*',
            'e',
            '{"t":["t"],"d":"2","n":"","m":1}',
            'p',
            first,
          ]),
        );
        const node = await nodes.feeding({ url: server.url, stream: 'old' });
        assert.deepEqual(await node.broker.locate(first, ''), { kind: 'found', pos: first });
        assert.deepEqual(await node.broker.locate('0-0', ''), { kind: 'found', pos: '0-0' });
        const [third] = await node.broker.append([draft('3')]);
        await until(() => node.fed.length === 1, 'the feed');
        assert.deepEqual(ids(await node.broker.read(null, third?.pos ?? '', 10)).slice(0, 2), [
          first,
          second,
        ]);
        assert.deepEqual(node.resets, []);
        assert.deepEqual(ids(node.fed), [third?.id]);
      } finally {
        admin.destroy();
      }
    });
  });
});

describe('persistenceWarning', () => {
  test('says what a Redis without persistence, or with RDB snapshots only, loses; nothing with an append-only file', async () => {
    await withRedis({}, async (server, nodes) => {
      const admin = await adminClient(server.url);
      try {
        assert.match(
          (await persistenceWarning(server.url)) ?? '',
          /keeps no persistence.*whole event history.*appendfsync always/s,
        );
        await admin.configSet('save', '3600 1');
        assert.match(
          (await persistenceWarning(server.url)) ?? '',
          /only RDB snapshots \(appendonly no, save "3600 1"\)/,
        );
        await admin.configSet('appendonly', 'yes');
        assert.equal(await persistenceWarning(server.url), undefined);
        const { broker } = nodes.make({ url: server.url });
        assert.equal(await broker.persistenceWarning(), undefined);
        await admin.configSet('appendonly', 'no');
        assert.match((await broker.persistenceWarning()) ?? '', /only RDB snapshots/);
      } finally {
        admin.destroy();
      }
    });
  });

  test('tolerates CONFIG being disabled (managed Redis): INFO tells the append-only file is off', async () => {
    const server = await startPrivateRedis({ args: ['--rename-command', 'CONFIG', ''] });
    try {
      assert.match(
        (await persistenceWarning(server.url)) ?? '',
        /keeps no append-only file \(INFO persistence/,
      );
    } finally {
      await server.stop();
    }
  });

  test('rejects when Redis cannot be reached, naming no password', async () => {
    await assert.rejects(persistenceWarning('redis://user:hunter2@127.0.0.1:1/0'), (error: unknown) => {
      assert.doesNotMatch(String(error), /hunter2/);
      return true;
    });
  });
});
