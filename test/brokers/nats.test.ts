import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import { jetstreamManager, StorageType } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { NatsBroker, type NatsBrokerOptions } from '../../src/backends/nats/broker.ts';
import { HeraldError } from '../../src/core/errors.ts';
import type { HeraldEvent } from '../../src/core/event.ts';
import { type PrivateNats, startPrivateNats, startProxy, type TcpProxy } from '../helpers/nats-server.ts';
import { draft } from './contract.ts';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const ids = (events: readonly HeraldEvent[]) => events.map((event) => event.id);

async function until(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(10);
  }
}

/** Retries `attempt` until it resolves, for at most `timeoutMs`. */
async function eventually<T>(attempt: () => Promise<T>, what: string, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await attempt();
    } catch (error) {
      if (Date.now() > deadline) throw new Error(`${what} still failing after ${timeoutMs} ms: ${error}`);
      await sleep(100);
    }
  }
}

const unavailable = (error: unknown) =>
  error instanceof HeraldError && error.status === 503 && error.code === 'broker-unavailable';

interface Node {
  readonly broker: NatsBroker;
  readonly fed: HeraldEvent[];
  readonly errors: unknown[];
  /** The context of every onError call. */
  readonly contexts: string[];
  /** Every position the node's `onReset` was called with. */
  readonly resets: string[];
  /** What the node passed on, in order: event ids, and `reset` where it left a log. */
  readonly timeline: string[];
}

/**
 * A private nats-server (its own port and store, killed at the end whatever happens) and a fresh
 * stream on it; `node()` makes a started broker on that stream, closed at the end.
 */
function withNats(
  name: string,
  body: (
    nats: PrivateNats,
    node: (options?: Partial<NatsBrokerOptions>) => Promise<Node>,
    stream: string,
  ) => Promise<void>,
  timeout = 60_000,
) {
  return test(name, { timeout }, async () => {
    const nats = await startPrivateNats();
    const stream = `HERALD_${randomBytes(4).toString('hex').toUpperCase()}`;
    const nodes: Node[] = [];
    try {
      await body(
        nats,
        async (options = {}) => {
          const errors: unknown[] = [];
          const contexts: string[] = [];
          const broker = new NatsBroker({
            servers: nats.url,
            stream,
            onError: (error, context) => {
              errors.push(error);
              contexts.push(context);
            },
            ...options,
          });
          const fed: HeraldEvent[] = [];
          const resets: string[] = [];
          const timeline: string[] = [];
          const node = { broker, fed, errors, contexts, resets, timeline };
          nodes.push(node);
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
          return node;
        },
        stream,
      );
    } finally {
      await Promise.all(nodes.map((node) => node.broker.close()));
      await nats.dispose();
    }
  });
}

/** Asserts each node was fed exactly `expected`, in that order: nothing lost, nothing twice. */
async function fedExactly(
  nodes: readonly Node[],
  expected: readonly HeraldEvent[],
  timeoutMs = 10_000,
): Promise<void> {
  await until(
    () => nodes.every((node) => node.fed.length >= expected.length),
    'every node to be fed',
    timeoutMs,
  );
  await sleep(200); // anything extra (a duplicate) would arrive now
  for (const node of nodes) {
    assert.deepEqual(ids(node.fed), ids(expected));
    assert.deepEqual(
      node.fed.map((event) => event.data),
      expected.map((event) => event.data),
    );
  }
}

describe('NATS broker on a private nats-server', () => {
  withNats(
    'NATS restarted mid-stream: appends answer 503 meanwhile, and the feeds resume by themselves',
    async (nats, node) => {
      const a = await node();
      const b = await node();
      const accepted: HeraldEvent[] = [];
      for (let i = 0; i < 10; i++)
        accepted.push(...(await (i % 2 ? a : b).broker.append([draft(`before-${i}`)])));
      accepted.push(...(await a.broker.append([draft('chosen-before', { id: 'urn:before' })])));
      await fedExactly([a, b], accepted);

      await nats.kill();
      const started = Date.now();
      await assert.rejects(a.broker.append([draft('during')]), unavailable);
      await assert.rejects(b.broker.append([draft('during', { id: 'urn:during' })]), unavailable);
      assert.ok(Date.now() - started < 3000, `503 after ${Date.now() - started} ms`);
      const health = await a.broker.health();
      assert.equal(health.ok, false);
      assert.match(health.detail ?? '', /^nats unreachable: /);
      assert.ok(Date.now() - started < 4000, 'health answers promptly');

      await nats.start();
      // Appends succeed again on each node once its client is back, without anyone restarting anything.
      accepted.push(
        ...(await eventually(() => b.broker.append([draft('after-0')]), 'appending after the restart')),
      );
      accepted.push(
        ...(await eventually(() => a.broker.append([draft('after-1')]), 'appending after the restart')),
      );
      for (let i = 2; i < 10; i++)
        accepted.push(...(await (i % 2 ? a : b).broker.append([draft(`after-${i}`)])));
      accepted.push(...(await b.broker.append([draft('chosen-after', { id: 'urn:after' }), draft('last')])));
      // Promptly: a recreated consumer that waits for missed heartbeats would take ~7 s here.
      await fedExactly([a, b], accepted, 3000);
      assert.deepEqual((await a.broker.health()).ok, true);

      // The log and the id mapping survived the restart; what was refused is not in it.
      const all = await a.broker.read(null, accepted.at(-1)?.pos ?? '', 1000);
      assert.deepEqual(ids(all), ids(accepted));
      assert.deepEqual(await b.broker.locate('urn:before', ''), { kind: 'found', pos: accepted[10]?.pos });
      assert.deepEqual(await a.broker.locate('urn:during', ''), { kind: 'unknown' });
      await a.broker.append([draft('reuse', { id: 'urn:during' })]);
      assert.ok(a.errors.length > 0, 'the lost connection was reported through onError');
    },
  );

  withNats('MaxAge retention drops old messages, and their chosen ids with them', async (_nats, node) => {
    const a = await node({ maxAgeMs: 1000 });
    const old = await a.broker.append([draft('old-1'), draft('old-2', { id: 'urn:old' }), draft('old-3')]);
    assert.equal((await a.broker.history()).size, 3);
    await eventually(
      async () => assert.equal((await a.broker.history()).size, 0),
      'the stream to drop messages older than 1 s',
      5000,
    );
    const last = old.at(-1) as HeraldEvent;
    assert.deepEqual(await a.broker.read(null, last.pos, 10), []);
    assert.equal((await a.broker.locate(old[0]?.pos ?? '', '')).kind, 'expired');
    // Nothing followed the last one: resuming after it loses nothing.
    assert.deepEqual(await a.broker.locate(last.pos, ''), { kind: 'found', pos: last.pos });
    await eventually(
      async () => assert.equal((await a.broker.locate('urn:old', '')).kind, 'unknown'),
      'the chosen id to expire with its event',
      5000,
    );
    const [again] = await a.broker.append([draft('new', { id: 'urn:old' })]);
    assert.equal(again?.id, 'urn:old');
    assert.deepEqual(await a.broker.locate('urn:old', ''), { kind: 'found', pos: again?.pos });
    const stats = await a.broker.history();
    assert.equal(stats.size, 1);
    assert.equal(stats.maxAgeMs, 1000);
    assert.equal(stats.oldestId, 'urn:old');
    assert.equal(stats.newestId, 'urn:old');
  });

  withNats(
    'the ordered consumer resumes after its connection drops, without duplicates or gaps',
    async (nats, node) => {
      let proxy: TcpProxy | undefined;
      try {
        proxy = await startProxy(nats.port);
        const cutOff = await node({ servers: proxy.url });
        const direct = await node();
        const accepted: HeraldEvent[] = [];
        for (let i = 0; i < 5; i++) accepted.push(...(await direct.broker.append([draft(`first-${i}`)])));
        await fedExactly([cutOff, direct], accepted);

        // Cut while events keep coming from the other node, then again in the middle of a burst.
        proxy.cut();
        await until(() => cutOff.errors.length > 0, 'the cut to be noticed', 5000);
        await assert.rejects(cutOff.broker.append([draft('refused')]), unavailable);
        for (let i = 0; i < 20; i++)
          accepted.push(...(await direct.broker.append([draft(`while-cut-${i}`)])));
        assert.equal(cutOff.fed.length, 5, 'nothing reaches a node that is cut off');
        proxy.restore();
        const burst = (async () => {
          for (let i = 0; i < 200; i++) accepted.push(...(await direct.broker.append([draft(`burst-${i}`)])));
        })();
        await until(() => cutOff.fed.length >= 30, 'the cut-off node to catch up');
        proxy.cut();
        await sleep(300);
        proxy.restore();
        await burst;
        accepted.push(
          ...(await eventually(() => cutOff.broker.append([draft('from the cut-off node')]), 'appending')),
        );
        await fedExactly([cutOff, direct], accepted);
      } finally {
        await proxy?.close();
      }
    },
  );

  withNats('a page of 500 is read in one go', async (_nats, node) => {
    const a = await node();
    const events: HeraldEvent[] = [];
    for (let i = 0; i < 6; i++) {
      events.push(
        ...(await a.broker.append(Array.from({ length: 100 }, (_, j) => draft(`e${i * 100 + j}`)))),
      );
    }
    const last = events.at(-1) as HeraldEvent;
    await a.broker.read(null, last.pos, 500); // warm up
    const started = performance.now();
    const page = await a.broker.read(events[49]?.pos ?? '', last.pos, 500);
    const elapsed = performance.now() - started;
    assert.deepEqual(ids(page), ids(events.slice(50, 550)));
    // Its speed is the bench's to measure (S5); here only a bound no busy machine misses, which
    // one round trip per message (500 of them) on a busy machine would still exceed.
    assert.ok(elapsed < 2000, `a page of 500 took ${elapsed.toFixed(1)} ms`);
    assert.deepEqual(ids(await a.broker.read(events[549]?.pos ?? '', last.pos, 500)), ids(events.slice(550)));
  });

  withNats('read skips deleted sequences, and locate never throws on a malformed id', async (nats, node) => {
    const a = await node();
    const events = await a.broker.append(['1', '2', '3', '4', '5'].map((d) => draft(d)));
    const admin = await connect({ servers: nats.url });
    try {
      const jsm = await jetstreamManager(admin);
      const stream = (await jsm.streams.list().next()).find((info) => !info.config.name.startsWith('KV_'));
      await jsm.streams.deleteMessage(stream?.config.name ?? '', Number(events[2]?.pos));
      await jsm.streams.deleteMessage(stream?.config.name ?? '', Number(events[4]?.pos));
    } finally {
      await admin.close();
    }
    const last = events[4] as HeraldEvent;
    const started = Date.now();
    assert.deepEqual(
      ids(await a.broker.read(null, last.pos, 10)),
      ids([events[0], events[1], events[3]] as HeraldEvent[]),
    );
    assert.deepEqual(ids(await a.broker.read(events[1]?.pos ?? '', events[2]?.pos ?? '', 10)), []);
    assert.ok(Date.now() - started < 500, 'no read waits for messages that will not come');
    for (const id of [
      '',
      ' ',
      '-1',
      '1.5',
      '007',
      'a.b.*',
      '>',
      'ünï cødé',
      'x'.repeat(5000),
      '9'.repeat(40),
    ]) {
      assert.notEqual((await a.broker.locate(id, '')).kind, 'found', JSON.stringify(id));
    }
  });

  withNats(
    'chosen ids: a number is refused, an id survives any character, duplicates are 409',
    async (_nats, node) => {
      const a = await node();
      await assert.rejects(
        a.broker.append([draft('x', { id: '42' })]),
        (error: unknown) =>
          error instanceof HeraldError && error.status === 400 && error.code === 'invalid-id',
      );
      const odd = 'urn:a.b>*/ é 🎉';
      const [event] = await a.broker.append([draft('odd', { id: odd })]);
      assert.equal(event?.id, odd);
      assert.deepEqual(await a.broker.locate(odd, ''), { kind: 'found', pos: event?.pos });
      const b = await node();
      await assert.rejects(
        b.broker.append([draft('again', { id: odd })]),
        (error: unknown) => error instanceof HeraldError && error.status === 409,
      );
      // Two nodes racing for one id: exactly one wins.
      const results = await Promise.allSettled([
        a.broker.append([draft('race-a', { id: 'urn:race' })]),
        b.broker.append([draft('race-b', { id: 'urn:race' })]),
      ]);
      assert.equal(results.filter((result) => result.status === 'fulfilled').length, 1);
      assert.equal((await a.broker.history()).size, 2);
    },
  );

  withNats('an id evicted by count can be chosen again', async (_nats, node) => {
    const a = await node({ maxEvents: 2 });
    await a.broker.append([draft('first', { id: 'urn:reused' })]);
    await a.broker.append([draft('2'), draft('3'), draft('4')]);
    assert.equal((await a.broker.locate('urn:reused', '')).kind, 'expired');
    const [again] = await a.broker.append([draft('again', { id: 'urn:reused' })]);
    assert.deepEqual(await a.broker.locate('urn:reused', ''), { kind: 'found', pos: again?.pos });
  });
});

test('start fails fast with 503 when NATS is unreachable, and close still works', async () => {
  const broker = new NatsBroker({ servers: 'nats://127.0.0.1:1', stream: 'NOWHERE' });
  const started = Date.now();
  await assert.rejects(
    broker.start(() => {}),
    (error: unknown) => {
      assert.ok(unavailable(error));
      assert.match((error as HeraldError).detail, /^nats unreachable: /);
      return true;
    },
  );
  assert.ok(Date.now() - started < 3000);
  assert.equal((await broker.health()).ok, false);
  await broker.close();
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
    'every node',
    15_000,
  ).catch(() => {});
  await sleep(200); // anything extra (a duplicate) would arrive now
  for (const node of nodes) assert.deepEqual(node.timeline, timeline);
}

async function admin<T>(
  nats: PrivateNats,
  body: (jsm: Awaited<ReturnType<typeof jetstreamManager>>) => Promise<T>,
) {
  const nc = await connect({ servers: nats.url });
  try {
    return await body(await jetstreamManager(nc));
  } finally {
    await nc.close();
  }
}

describe('NATS broker: a log lost or made again is a new epoch, and every node follows it', () => {
  withNats(
    'the stream deleted: every node notices and makes it anew; resumes from before answer reset; the feeds go on with the new log once',
    async (nats, node, stream) => {
      const all = [await node(), await node(), await node()];
      const [a, b, c] = all as [Node, Node, Node];
      const before = await appendEach(all, 'before', 9);
      before.push(...(await a.broker.append([draft('chosen', { tenant: 'acme', id: 'urn:before' })])));
      await fedExactly(all, before);

      await admin(nats, (jsm) => jsm.streams.delete(stream));
      // Nobody appends: the nodes' consumers lose the stream, and the first to look makes it anew.
      await until(() => all.every((n) => n.resets.length === 1), 'every node to notice the reset', 20_000);
      const from = a.resets[0] as string;
      assert.deepEqual([b.resets, c.resets], [[from], [from]], 'every node names the same new start');
      assert.ok(Number(from) > Number(before.at(-1)?.pos), 'the new log starts past the old');
      for (const n of all)
        assert.equal(n.contexts.filter((x) => x === 'log reset').length, 1, 'reported once');
      for (const event of before) {
        assert.deepEqual(await c.broker.locate(event.pos, ''), { kind: 'reset', from }, event.pos);
      }
      // The bucket of chosen ids outlived the stream: its id names a position of the old log.
      assert.deepEqual(await b.broker.locate('urn:before', 'acme'), { kind: 'reset', from });
      assert.deepEqual(await b.broker.locate('urn:before', 'globex'), { kind: 'unknown' });

      const after = await appendEach(all, 'after', 9);
      after.push(...(await b.broker.append([draft('chosen again', { tenant: 'acme', id: 'urn:before' })])));
      await timelines(all, [...ids(before), 'reset', ...ids(after)]);
      assert.equal(Number(after[0]?.pos), Number(from) + 1);
      assert.deepEqual(ids(await a.broker.read(from, after.at(-1)?.pos ?? '', 100)), ids(after));
      assert.deepEqual(await a.broker.locate(from, ''), { kind: 'found', pos: from });
      assert.deepEqual(await c.broker.locate('urn:before', 'acme'), {
        kind: 'found',
        pos: after.at(-1)?.pos,
      });
    },
  );

  withNats(
    'the stream deleted under traffic: the next append makes it anew, is accepted, and every node feeds it once',
    async (nats, node, stream) => {
      const all = [await node(), await node()];
      const [a, b] = all as [Node, Node];
      const before = await appendEach(all, 'before', 5);
      await fedExactly(all, before);
      await admin(nats, (jsm) => jsm.streams.delete(stream));
      const after = await appendEach(all, 'after', 8);
      await timelines(all, [...ids(before), 'reset', ...ids(after)]);
      assert.deepEqual(b.resets, a.resets);
    },
  );

  withNats(
    'nats-server restarted with its store lost: every node makes the log and its ids anew and follows it',
    async (nats, node) => {
      const all = [await node(), await node()];
      const [a, b] = all as [Node, Node];
      const before = await appendEach(all, 'before', 5);
      before.push(...(await a.broker.append([draft('chosen', { tenant: 'acme', id: 'urn:x' })])));
      await fedExactly(all, before);

      await nats.restartEmpty();
      await until(() => all.every((n) => n.resets.length === 1), 'every node to notice the reset', 30_000);
      const from = a.resets[0] as string;
      assert.deepEqual(b.resets, [from]);
      assert.deepEqual(await b.broker.locate(before[2]?.pos ?? '', ''), { kind: 'reset', from });
      // The ids went with the store: the chosen id is unknown, and free again.
      assert.deepEqual(await b.broker.locate('urn:x', 'acme'), { kind: 'unknown' });
      const after = await eventually(
        () => b.broker.append([draft('chosen again', { tenant: 'acme', id: 'urn:x' })]),
        'appending',
      );
      after.push(...(await appendEach(all, 'after', 6)));
      await timelines(all, [...ids(before), 'reset', ...ids(after)]);
      assert.deepEqual(await a.broker.locate('urn:x', 'acme'), { kind: 'found', pos: after[0]?.pos });
    },
  );

  withNats(
    'a stream made again by hand from sequence 1: the feeds notice the repeated sequences and follow it from its start',
    async (nats, node, stream) => {
      // Through a proxy, cut while the stream is replaced: otherwise the nodes make it anew first.
      const proxy = await startProxy(nats.port);
      try {
        const all = [await node({ servers: proxy.url }), await node({ servers: proxy.url })];
        const [a, b] = all as [Node, Node];
        const before = await appendEach(all, 'before', 6);
        await fedExactly(all, before);
        proxy.cut();
        await admin(nats, async (jsm) => {
          await jsm.streams.delete(stream);
          // nats-server 2.9 removes the deleted stream's files after answering: not at once.
          await sleep(1000);
          await jsm.streams.add({
            name: stream,
            subjects: [`${stream.toLowerCase()}.events`],
            storage: StorageType.File,
          });
        });
        proxy.restore();
        const after = await eventually(() => appendEach(all.slice(0, 1), 'after', 1), 'appending');
        // The other node's connection through the proxy may still be coming back: until it is,
        // its appends answer 503 (as they should), so it too is waited for.
        after.push(...(await eventually(() => appendEach(all.slice(1, 2), 'after-b', 1), 'appending on b')));
        after.push(...(await appendEach(all, 'more', 4)));
        assert.equal(after[0]?.pos, '1');
        await timelines(all, [...ids(before), 'reset', ...ids(after)]);
        assert.deepEqual(a.resets, ['0']);
        assert.deepEqual(b.resets, ['0']);
      } finally {
        await proxy.close();
      }
    },
  );
});
