import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { HeraldError } from '../../src/core/errors.ts';
import type { EventDraft, HeraldEvent } from '../../src/core/event.ts';
import { type Broker, backwardReaderOf, latestKeeperOf } from '../../src/core/log.ts';

/**
 * What every broker promises the hub, as one suite each implementation runs against a real
 * backend. A log is a fresh namespace on that backend; `node()` gives another broker on the same
 * log, as another Herald node would have.
 */
export interface Backend {
  readonly name: string;
  /** Whether several nodes can share one log (false for the in-process memory broker). */
  readonly shared: boolean;
  newLog(options?: { maxEvents?: number; maxAgeMs?: number; latestMaxKeys?: number }): Promise<Log>;
}

export interface Log {
  node(): Broker;
  /** Closes every node made and removes what the log left on the backend. */
  cleanup(): Promise<void>;
}

export const draft = (data: string, extra: Partial<EventDraft> = {}): EventDraft => ({
  topics: ['t'],
  data,
  tenant: '',
  priority: 'normal',
  time: Date.now(),
  ...extra,
});

const ids = (events: readonly HeraldEvent[]) => events.map((event) => event.id);
const datas = (events: readonly HeraldEvent[]) => events.map((event) => event.data);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A started node and everything its feed has delivered. */
async function feeding(log: Log): Promise<{ broker: Broker; fed: HeraldEvent[]; head: string }> {
  const broker = log.node();
  const fed: HeraldEvent[] = [];
  const head = await broker.start((events) => fed.push(...events));
  return { broker, fed, head };
}

/** The broker's backward reading: every built-in backend has it. */
function back(broker: Broker) {
  const reader = backwardReaderOf(broker);
  assert.ok(reader, 'the broker reads backwards');
  return reader;
}

/** The broker's latest values per key, started with them on. */
function keeper(broker: Broker) {
  const latest = latestKeeperOf(broker);
  assert.ok(latest, 'the broker keeps latest values');
  return latest;
}

/** A tenant's latest values as `topic key data`, sorted. */
async function slots(broker: Broker, tenant: string, limit = 100): Promise<string[]> {
  const { events, complete } = await keeper(broker).latest(tenant, limit);
  assert.equal(complete, true);
  return events.map((event) => `${event.topics[0]} ${event.key} ${event.data}`).sort();
}

async function until(condition: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

export function brokerContract(backend: Backend): void {
  describe(`${backend.name} broker contract`, () => {
    const withLog = (
      name: string,
      options: Parameters<Backend['newLog']>[0],
      body: (log: Log) => Promise<void>,
    ) =>
      test(name, async () => {
        const log = await backend.newLog(options);
        try {
          await body(log);
        } finally {
          await log.cleanup();
        }
      });

    withLog('appends get ids in log order, and the feed gives each one once, in order', {}, async (log) => {
      const { broker, fed, head } = await feeding(log);
      const first = await broker.append([draft('a'), draft('b')]);
      const second = await broker.append([draft('c')]);
      const all = [...first, ...second];
      assert.equal(new Set(ids(all)).size, 3);
      for (let i = 1; i < all.length; i++) {
        assert.ok(
          broker.compare((all[i - 1] as HeraldEvent).pos, (all[i] as HeraldEvent).pos) < 0,
          'increasing',
        );
      }
      assert.ok(broker.compare(head, (all[0] as HeraldEvent).pos) < 0, 'the head precedes what follows');
      await until(() => fed.length >= 3, 'the feed');
      await sleep(50);
      assert.deepEqual(ids(fed), ids(all));
      assert.deepEqual(datas(fed), ['a', 'b', 'c']);
    });

    withLog('every field of an event survives the log', {}, async (log) => {
      const { broker, fed } = await feeding(log);
      const full = draft('line 1\nline 2 · Zürich 🎉', {
        topics: ['orders/1', 'alt'],
        type: 'ai-score',
        tenant: 'acme',
        private: true,
        tags: { vin: '1ABC', dealerId: 'S1' },
        key: 'tile-1',
        priority: 'high',
        retry: 2500,
        id: 'urn:chosen:1',
        redact: { '/card': 'billing' },
        time: Date.now() - 1234,
      });
      const [appended] = await broker.append([full]);
      await until(() => fed.length >= 1, 'the feed');
      const [read] = await broker.read(null, appended?.pos ?? '', 10);
      for (const event of [appended, fed[0], read]) {
        assert.ok(event);
        assert.equal(event.id, 'urn:chosen:1');
        const { id: _id, ...rest } = full;
        for (const [field, value] of Object.entries(rest)) {
          assert.deepEqual((event as unknown as Record<string, unknown>)[field], value, field);
        }
      }
      const [plain] = await broker.append([draft('plain')]);
      assert.equal(plain?.priority, 'normal');
      assert.equal(plain?.type, undefined);
      assert.equal(plain?.id, plain?.pos);
    });

    withLog('read returns what follows a position, up to until and a limit', {}, async (log) => {
      const { broker, head } = await feeding(log);
      const events = await broker.append(['1', '2', '3', '4', '5'].map((d) => draft(d)));
      const pos = (i: number) => (events[i] as HeraldEvent).pos;
      assert.deepEqual(ids(await broker.read(head, pos(4), 10)), ids(events));
      assert.deepEqual(ids(await broker.read(pos(1), pos(4), 2)), ids(events.slice(2, 4)));
      assert.deepEqual(ids(await broker.read(head, pos(2), 10)), ids(events.slice(0, 3)));
      assert.deepEqual(ids(await broker.read(null, pos(4), 10)), ids(events));
      assert.deepEqual(ids(await broker.read(pos(4), pos(4), 10)), []);
    });

    withLog('locate: found for what the log has, unknown for what it never had', {}, async (log) => {
      const { broker, head } = await feeding(log);
      const events = await broker.append([draft('a'), draft('b', { id: 'chosen-b' })]);
      assert.deepEqual(await broker.locate((events[0] as HeraldEvent).id, ''), {
        kind: 'found',
        pos: events[0]?.pos,
      });
      assert.deepEqual(await broker.locate('chosen-b', ''), { kind: 'found', pos: events[1]?.pos });
      assert.deepEqual(await broker.locate(head, ''), { kind: 'found', pos: head });
      for (const id of ['', 'garbage', 'never-issued', '99999999999999-0', '123456789']) {
        const location = await broker.locate(id, '');
        assert.notEqual(location.kind, 'found', JSON.stringify(id));
      }
    });

    withLog(
      'history is bounded by count: what fell out is expired, the rest is replayable',
      { maxEvents: 3 },
      async (log) => {
        const { broker, head } = await feeding(log);
        const events: HeraldEvent[] = [];
        for (const d of ['1', '2', '3', '4', '5', '6']) events.push(...(await broker.append([draft(d)])));
        const last = events.at(-1) as HeraldEvent;
        const kept = await broker.read(null, last.pos, 100);
        // Brokers may trim lazily (Redis MAXLEN ~, JetStream): at least the bound is kept, and the oldest are gone.
        assert.ok(kept.length >= 3 && kept.length < 6, `kept ${kept.length}`);
        assert.deepEqual(ids(kept), ids(events.slice(6 - kept.length)));
        assert.equal((await broker.locate(head, '')).kind, 'expired');
        assert.equal((await broker.locate((events[0] as HeraldEvent).id, '')).kind, 'expired');
        const lastKeptPredecessor = events[6 - kept.length - 1] as HeraldEvent;
        assert.deepEqual(await broker.locate(lastKeptPredecessor.id, ''), {
          kind: 'found',
          pos: lastKeptPredecessor.pos,
        });
        const stats = await broker.history();
        assert.equal(stats.size, kept.length);
        assert.equal(stats.maxSize, 3);
        assert.equal(stats.oldestId, kept[0]?.id);
        assert.equal(stats.newestId, last.id);
      },
    );

    withLog('history is bounded by age', { maxAgeMs: 1000 }, async (log) => {
      const { broker } = await feeding(log);
      const [old] = await broker.append([draft('old')]);
      await sleep(1600);
      const [fresh] = await broker.append([draft('fresh')]);
      let kept: HeraldEvent[] = [];
      for (let i = 0; i < 40; i++) {
        kept = await broker.read(null, fresh?.pos ?? '', 10);
        if (kept.length === 1) break;
        await sleep(100);
      }
      assert.deepEqual(ids(kept), [fresh?.id]);
      assert.deepEqual(
        await broker.locate(old?.id ?? '', ''),
        { kind: 'found', pos: old?.pos },
        'replay after old: fresh is all there is',
      );
    });

    withLog('a publisher-chosen id is unique: a duplicate is 409 and appends nothing', {}, async (log) => {
      const { broker, fed } = await feeding(log);
      await broker.append([draft('a', { id: 'dup' })]);
      await assert.rejects(
        broker.append([draft('b'), draft('c', { id: 'dup' })]),
        (error: unknown) =>
          error instanceof HeraldError && error.status === 409 && /"dup"/.test(error.detail),
      );
      await assert.rejects(broker.append([draft('d', { id: 'x' }), draft('e', { id: 'x' })]), /already/);
      await sleep(100);
      assert.deepEqual(datas(fed), ['a']);
      const stats = await broker.history();
      assert.equal(stats.size, 1);
    });

    withLog(
      "chosen ids live in their tenant's namespace: one id in two tenants names two events, each tenant's own",
      {},
      async (log) => {
        const { broker, fed } = await feeding(log);
        const [acme] = await broker.append([draft('a', { tenant: 'acme', id: 'urn:shared' })]);
        const [globex] = await broker.append([draft('b', { tenant: 'globex', id: 'urn:shared' })]);
        // In one batch too, and with tenant and id split differently around a separator.
        const pair = await broker.append([
          draft('c', { tenant: 'acme', id: 'urn:pair' }),
          draft('d', { tenant: 'globex', id: 'urn:pair' }),
          draft('e', { tenant: 'x', id: 'y:z' }),
          draft('f', { tenant: 'x:y', id: 'z' }),
        ]);
        assert.deepEqual(await broker.locate('urn:shared', 'acme'), { kind: 'found', pos: acme?.pos });
        assert.deepEqual(await broker.locate('urn:shared', 'globex'), { kind: 'found', pos: globex?.pos });
        assert.deepEqual(await broker.locate('urn:pair', 'acme'), { kind: 'found', pos: pair[0]?.pos });
        assert.deepEqual(await broker.locate('urn:pair', 'globex'), { kind: 'found', pos: pair[1]?.pos });
        assert.deepEqual(await broker.locate('y:z', 'x'), { kind: 'found', pos: pair[2]?.pos });
        assert.deepEqual(await broker.locate('z', 'x:y'), { kind: 'found', pos: pair[3]?.pos });
        // Still unique within a tenant.
        await assert.rejects(
          broker.append([draft('again', { tenant: 'acme', id: 'urn:shared' })]),
          (error: unknown) => error instanceof HeraldError && error.status === 409,
        );
        await assert.rejects(
          broker.append([
            draft('g', { tenant: 'initech', id: 'urn:twice' }),
            draft('h', { tenant: 'initech', id: 'urn:twice' }),
          ]),
          (error: unknown) => error instanceof HeraldError && error.status === 409,
        );
        await until(() => fed.length >= 6, 'the feed');
        await sleep(50);
        assert.deepEqual(
          fed.map((event) => [event.tenant, event.id, event.data]),
          [
            ['acme', 'urn:shared', 'a'],
            ['globex', 'urn:shared', 'b'],
            ['acme', 'urn:pair', 'c'],
            ['globex', 'urn:pair', 'd'],
            ['x', 'y:z', 'e'],
            ['x:y', 'z', 'f'],
          ],
        );
      },
    );

    withLog(
      "another tenant's chosen id is unknown, exactly as an id never issued; a position answers the same to all",
      {},
      async (log) => {
        const { broker } = await feeding(log);
        const [secret] = await broker.append([
          draft('secret', { tenant: 'acme', id: 'urn:acme-secret', private: true }),
        ]);
        const never = await broker.locate('urn:never-issued', 'globex');
        assert.deepEqual(never, { kind: 'unknown' });
        assert.deepEqual(await broker.locate('urn:acme-secret', 'globex'), never);
        assert.deepEqual(await broker.locate('urn:acme-secret', ''), never);
        assert.deepEqual(await broker.locate('urn:acme-secret', 'acme'), { kind: 'found', pos: secret?.pos });
        // Positions are points of the shared log, not events: the same answer whoever asks.
        const pos = secret?.pos ?? '';
        assert.deepEqual(await broker.locate(pos, 'globex'), await broker.locate(pos, 'acme'));
        assert.deepEqual(await broker.locate(pos, 'globex'), { kind: 'found', pos });
      },
    );

    withLog(
      "reusing an id moves only the reusing tenant's id; another tenant's stays on its event",
      {},
      async (log) => {
        const { broker } = await feeding(log);
        const [acme] = await broker.append([draft('a', { tenant: 'acme', id: 'urn:x' })]);
        const [, globex] = await broker.append([
          draft('b1', { tenant: 'globex', id: 'urn:x', reuseId: true }),
          draft('b2', { tenant: 'globex', id: 'urn:x', reuseId: true }),
        ]);
        assert.deepEqual(await broker.locate('urn:x', 'acme'), { kind: 'found', pos: acme?.pos });
        assert.deepEqual(await broker.locate('urn:x', 'globex'), { kind: 'found', pos: globex?.pos });
        const [acme2] = await broker.append([draft('a2', { tenant: 'acme', id: 'urn:x', reuseId: true })]);
        assert.deepEqual(await broker.locate('urn:x', 'acme'), { kind: 'found', pos: acme2?.pos });
        assert.deepEqual(await broker.locate('urn:x', 'globex'), { kind: 'found', pos: globex?.pos });
        assert.deepEqual(await broker.locate('urn:x', 'initech'), { kind: 'unknown' });
      },
    );

    withLog('close stops the feed', {}, async (log) => {
      const { broker, fed } = await feeding(log);
      await broker.append([draft('before')]);
      await until(() => fed.length === 1, 'the feed');
      await broker.close();
      const other = log.node();
      await other.start(() => {});
      await other.append([draft('after')]).catch(() => {});
      await sleep(200);
      assert.deepEqual(datas(fed), ['before']);
    });

    withLog('readBack gives what precedes a position, newest first, up to a limit', {}, async (log) => {
      const { broker } = await feeding(log);
      const events = await broker.append(['1', '2', '3', '4', '5'].map((d) => draft(d)));
      const pos = (i: number) => (events[i] as HeraldEvent).pos;
      const reader = back(broker);
      assert.deepEqual(datas(await reader.readBack(pos(4), 10, false)), ['5', '4', '3', '2', '1']);
      assert.deepEqual(datas(await reader.readBack(pos(4), 2, false)), ['5', '4']);
      assert.deepEqual(datas(await reader.readBack(pos(4), 2, true)), ['4', '3']);
      assert.deepEqual(datas(await reader.readBack(pos(2), 10, true)), ['2', '1']);
      assert.deepEqual(datas(await reader.readBack(pos(0), 10, true)), []);
      assert.deepEqual(datas(await reader.readBack(pos(0), 10, false)), ['1']);
      // Paging down from a page's last event, as a rewind does, meets every event once.
      const paged: HeraldEvent[] = [];
      let page = await reader.readBack(pos(4), 2, false);
      while (page.length > 0) {
        paged.push(...page);
        page = await reader.readBack((page.at(-1) as HeraldEvent).pos, 2, true);
      }
      assert.deepEqual(ids(paged), ids(events).reverse());
      const [full] = await reader.readBack(pos(4), 1, false);
      assert.equal(full?.id, events[4]?.id);
      assert.equal(full?.tenant, '');
    });

    withLog('readBack on an empty log gives nothing', {}, async (log) => {
      const { broker, head } = await feeding(log);
      assert.deepEqual(await back(broker).readBack(head, 10, false), []);
      assert.deepEqual(await back(broker).readBack(head, 10, true), []);
    });

    withLog('readBack never goes past the oldest event retained by count', { maxEvents: 3 }, async (log) => {
      const { broker } = await feeding(log);
      const events: HeraldEvent[] = [];
      for (const d of ['1', '2', '3', '4', '5', '6']) events.push(...(await broker.append([draft(d)])));
      const last = events.at(-1) as HeraldEvent;
      const kept = await broker.read(null, last.pos, 100);
      assert.ok(kept.length >= 3 && kept.length < 6, `kept ${kept.length}`);
      assert.deepEqual(ids(await back(broker).readBack(last.pos, 100, false)), ids(kept).reverse());
      const oldest = kept[0] as HeraldEvent;
      assert.deepEqual(await back(broker).readBack(oldest.pos, 100, true), []);
    });

    withLog('readBack never goes past the oldest event retained by age', { maxAgeMs: 1000 }, async (log) => {
      const { broker } = await feeding(log);
      await broker.append([draft('old')]);
      await sleep(1600);
      const [fresh] = await broker.append([draft('fresh')]);
      let back1: HeraldEvent[] = [];
      for (let i = 0; i < 40; i++) {
        back1 = await back(broker).readBack(fresh?.pos ?? '', 10, false);
        if (back1.length === 1) break;
        await sleep(100);
      }
      assert.deepEqual(datas(back1), ['fresh']);
    });

    withLog(
      'latest: one event per (tenant, topic, key), the newest, with every field and its position',
      {},
      async (log) => {
        const { broker } = await feeding(log);
        assert.ok(backwardReaderOf(broker));
        assert.deepEqual(await keeper(broker).latest('acme', 10), { events: [], complete: true });
        await broker.append([
          draft('a1', { tenant: 'acme', topics: ['tiles/1'], key: 'score' }),
          draft('x', { tenant: 'acme', topics: ['tiles/1'] }),
          draft('b1', { tenant: 'acme', topics: ['tiles/2', 'tiles/1'], key: 'score' }),
        ]);
        await broker.append([draft('a2', { tenant: 'acme', topics: ['tiles/1'], key: 'score' })]);
        // The same key on another topic is another slot; another tenant's identical slot is its own.
        await broker.append([draft('m1', { tenant: 'acme', topics: ['tiles/1'], key: 'msrp' })]);
        await broker.append([draft('g1', { tenant: 'globex', topics: ['tiles/1'], key: 'score' })]);
        const [last] = await broker.append([
          draft('a3', {
            tenant: 'acme',
            topics: ['tiles/1', 'alt'],
            key: 'score',
            type: 'ai-score',
            id: 'urn:a3',
            tags: { vin: '1ABC' },
            private: true,
            redact: { '/card': 'billing' },
          }),
        ]);
        // Same bytes split differently between tenant, topic and key: other slots.
        await broker.append([
          draft('s1', { tenant: 'x', topics: ['y:z'], key: 'k' }),
          draft('s2', { tenant: 'x:y', topics: ['z'], key: 'k' }),
          draft('s3', { tenant: 'x', topics: ['y'], key: 'z:k' }),
        ]);
        assert.deepEqual(await slots(broker, 'acme'), [
          'tiles/1 msrp m1',
          'tiles/1 score a3',
          'tiles/2 score b1',
        ]);
        assert.deepEqual(await slots(broker, 'globex'), ['tiles/1 score g1']);
        assert.deepEqual(await slots(broker, 'x'), ['y z:k s3', 'y:z k s1']);
        assert.deepEqual(await slots(broker, 'x:y'), ['z k s2']);
        assert.deepEqual(await slots(broker, 'initech'), []);
        const stored = (await keeper(broker).latest('acme', 10)).events.find((event) => event.data === 'a3');
        assert.ok(stored && last);
        for (const field of [
          'id',
          'pos',
          'topics',
          'type',
          'tags',
          'private',
          'redact',
          'tenant',
          'key',
          'time',
        ]) {
          assert.deepEqual(
            (stored as unknown as Record<string, unknown>)[field],
            (last as unknown as Record<string, unknown>)[field],
            field,
          );
        }
        assert.equal(stored.frame, undefined);
        const some = await keeper(broker).latest('acme', 2);
        assert.equal(some.events.length, 2);
        assert.equal(some.complete, false);
      },
    );

    withLog(
      'latest: past latestMaxKeys the slot updated longest ago is evicted, whichever tenant it is',
      { latestMaxKeys: 3 },
      async (log) => {
        const { broker } = await feeding(log);
        assert.equal(keeper(broker).latestMaxKeys, 3);
        await broker.append([draft('1', { tenant: 'acme', key: 'k1' })]);
        await broker.append([draft('2', { tenant: 'globex', key: 'k2' })]);
        await broker.append([draft('3', { tenant: 'acme', key: 'k3' })]);
        await broker.append([draft('1b', { tenant: 'acme', key: 'k1' })]);
        await broker.append([draft('4', { tenant: 'acme', key: 'k4' })]);
        assert.deepEqual(await slots(broker, 'acme'), ['t k1 1b', 't k3 3', 't k4 4']);
        assert.deepEqual(await slots(broker, 'globex'), []);
        // In one batch too: the batch's last write of a slot wins, and the bound holds.
        await broker.append([
          draft('5', { tenant: 'acme', key: 'k5' }),
          draft('6', { tenant: 'acme', key: 'k6' }),
          draft('5b', { tenant: 'acme', key: 'k5' }),
        ]);
        assert.deepEqual(await slots(broker, 'acme'), ['t k4 4', 't k5 5b', 't k6 6']);
      },
    );

    withLog('latest: the value outlives the log that held its event', { maxEvents: 5 }, async (log) => {
      const { broker } = await feeding(log);
      const [kept] = await broker.append([draft('tile', { key: 'k' })]);
      for (let i = 0; i < 10; i++) await broker.append([draft(`other ${i}`)]);
      const last = (await broker.read(null, (await broker.history()).newestId ?? '', 100)).at(-1);
      assert.ok(last);
      assert.ok(
        !ids(await broker.read(null, last.pos, 100)).includes(kept?.id ?? ''),
        'trimmed from the log',
      );
      const { events } = await keeper(broker).latest('', 10);
      assert.deepEqual(ids(events), [kept?.id]);
      assert.equal(events[0]?.pos, kept?.pos);
    });

    withLog(
      'latestMaxKeys 0: no latest values, and no ability to ask for them',
      { latestMaxKeys: 0 },
      async (log) => {
        const { broker } = await feeding(log);
        await broker.append([draft('a', { key: 'k' })]);
        assert.equal(latestKeeperOf(broker), undefined);
        assert.ok(backwardReaderOf(broker), 'reading backwards is not affected');
      },
    );

    withLog('latest: appends racing on one key keep the one latest in the log', {}, async (log) => {
      const nodes = backend.shared ? [await feeding(log), await feeding(log)] : [await feeding(log)];
      const appended: HeraldEvent[] = [];
      await Promise.all(
        Array.from({ length: 50 }, async (_, i) => {
          const node = nodes[i % nodes.length] as (typeof nodes)[number];
          appended.push(...(await node.broker.append([draft(`v${i}`, { key: 'race' })])));
        }),
      );
      const newest = appended.reduce((a, b) =>
        (nodes[0] as (typeof nodes)[number]).broker.compare(a.pos, b.pos) < 0 ? b : a,
      );
      for (const node of nodes) {
        const { events } = await keeper(node.broker).latest('', 10);
        assert.deepEqual(
          events.map((event) => [event.pos, event.data]),
          [[newest.pos, newest.data]],
        );
      }
    });

    if (!backend.shared) return;

    withLog(
      'every node is fed every event of the log once, in the same order, whoever appended it',
      {},
      async (log) => {
        const a = await feeding(log);
        const b = await feeding(log);
        const c = await feeding(log);
        const appended: HeraldEvent[] = [];
        await Promise.all(
          [a, b, c].map(async (node, n) => {
            for (let i = 0; i < 20; i++) appended.push(...(await node.broker.append([draft(`n${n}-${i}`)])));
          }),
        );
        await until(() => [a, b, c].every((node) => node.fed.length >= 60), 'all feeds', 10_000);
        await sleep(100);
        const order = ids(a.fed);
        assert.equal(new Set(order).size, 60);
        assert.deepEqual(ids(b.fed), order);
        assert.deepEqual(ids(c.fed), order);
        assert.deepEqual([...order].sort(), ids(appended).sort());
        for (let i = 1; i < a.fed.length; i++) {
          assert.ok(a.broker.compare((a.fed[i - 1] as HeraldEvent).pos, (a.fed[i] as HeraldEvent).pos) < 0);
        }
        // What one node appended, another locates and replays.
        const some = appended[7] as HeraldEvent;
        assert.deepEqual(await c.broker.locate(some.id, ''), { kind: 'found', pos: some.pos });
      },
    );

    withLog(
      'a node started later reads what came before it, and is fed only what comes after',
      {},
      async (log) => {
        const early = await feeding(log);
        const before = await early.broker.append([draft('before')]);
        const late = await feeding(log);
        await late.broker.append([draft('after')]);
        await until(() => late.fed.length >= 1 && early.fed.length >= 2, 'the feeds');
        await sleep(50);
        assert.deepEqual(datas(late.fed), ['after']);
        assert.deepEqual(ids(await late.broker.read(null, late.head, 10)), ids(before));
      },
    );
  });
}
