import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { MemoryBroker } from '../../src/backends/memory/broker.ts';
import type { PublishInput } from '../../src/core/event.ts';
import type { Log } from '../../src/core/log.ts';
import { OPEN_PRINCIPAL } from '../../src/core/principal.ts';
import type { HeraldEvent } from '../../src/core/protocol/fields.ts';
import { BACKENDS, hubOn } from '../helpers/backends.ts';
import { sleep, startHub, type TestHub } from '../helpers/server.ts';
import { bearer, SECRET, token } from '../helpers/tokens.ts';

/**
 * `GET /v1/history`: an admin browses a topic's history, newest first, page by page, on every
 * backend. Following `next` lists it once (no gap, no duplicate); `before` takes a chosen id;
 * templates select as on a stream; an admin sees its own tenant unless it names another; anyone
 * else is refused; a scan that reaches the hub's bound says so and gives where to go on from.
 */

interface Entry {
  id: string;
  type: string;
  data: string;
  topics: string[];
  key?: string;
  tags?: Record<string, string>;
  private?: true;
  tenant?: string;
  time: string;
}

interface Page {
  events: Entry[];
  next?: string;
  complete: boolean;
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => String(from + i));

/** Publishes as the app would, and waits until the hub's node has the events from its log. */
async function publishTo(hub: TestHub, events: readonly PublishInput[]): Promise<HeraldEvent[]> {
  const core = hub.herald.hub;
  const accepted = await core.publish(events, OPEN_PRINCIPAL);
  const last = accepted.at(-1) as HeraldEvent;
  const deadline = Date.now() + 10_000;
  while (core.broker.compare(core.position, last.pos) < 0) {
    assert.ok(Date.now() < deadline, 'the hub never received what it published');
    await sleep(5);
  }
  return accepted;
}

async function get(hub: TestHub, query: Record<string, string | string[]>, headers: Record<string, string>) {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query)) {
    for (const each of Array.isArray(value) ? value : [value]) params.append(name, each);
  }
  const response = await fetch(`${hub.url}/v1/history?${params}`, { headers });
  return {
    status: response.status,
    headers: response.headers,
    body: (await response.json()) as Record<string, unknown>,
  };
}

for (const backend of BACKENDS) {
  describe(`browsing a topic's history (${backend.name})`, () => {
    let hub: TestHub;
    let admin: Record<string, string>;
    before(async () => {
      hub = await hubOn(backend, { auth: { jwt: { secrets: [SECRET] } }, replayPageSize: 16 });
      admin = bearer(await token({ tenant: 'T1', sub: 'ops', admin: true }));
    });
    after(() => hub.close());

    const publish = (events: readonly PublishInput[]) => publishTo(hub, events);
    const page = async (query: Record<string, string | string[]>, headers = admin) => {
      const answer = await get(hub, query, headers);
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
      assert.equal(answer.headers.get('cache-control'), 'no-store');
      return answer.body as unknown as Page;
    };

    test('newest first, every field, private events shown, redacted fields hidden without the permission', async () => {
      const accepted = await publish([
        { topic: 'shape', tenant: 'T1', data: { n: 1 } },
        {
          topic: ['shape', 'shape-alt'],
          tenant: 'T1',
          type: 'order',
          key: 'k1',
          tags: { region: 'eu' },
          data: 'two',
        },
        { topic: 'shape', tenant: 'T1', private: true, data: { n: 3 } },
        { topic: 'shape', tenant: 'T1', data: { n: 4, card: '4242' }, redact: { '/card': 'billing:read' } },
        { topic: 'elsewhere', tenant: 'T1', data: 'not this topic' },
      ]);
      const { events, next, complete } = await page({ topic: 'shape' });
      assert.deepEqual(
        events.map((e) => e.id),
        accepted
          .slice(0, 4)
          .map((e) => e.id)
          .reverse(),
      );
      assert.equal(next, undefined, 'nothing older');
      assert.equal(complete, true);
      const [redacted, hidden, keyed, plain] = events as [Entry, Entry, Entry, Entry];
      assert.deepEqual(JSON.parse(redacted.data), { n: 4 });
      assert.equal(hidden.private, true);
      assert.deepEqual(keyed, {
        id: accepted[1]?.id,
        type: 'order',
        data: 'two',
        topics: ['shape', 'shape-alt'],
        key: 'k1',
        tags: { region: 'eu' },
        time: new Date(accepted[1]?.time as number).toISOString(),
      });
      assert.deepEqual(Object.keys(plain).sort(), ['data', 'id', 'time', 'topics', 'type']);
      assert.equal(plain.type, 'message');

      const withPermission = bearer(
        await token({ tenant: 'T1', admin: true, permissions: ['billing:read'] }),
      );
      const [seen] = (await page({ topic: 'shape', limit: '1' }, withPermission)).events;
      assert.deepEqual(JSON.parse(seen?.data as string), { n: 4, card: '4242' });
    });

    test('paging with next until it is absent: every event once, in order, with other events between', async () => {
      const mine: string[] = [];
      for (let round = 0; round < 5; round++) {
        const accepted = await publish([
          ...range(1, 11).map((d) => ({ topic: 'paged', tenant: 'T1', data: `${round}.${d}` })),
          { topic: 'paged-noise', tenant: 'T1', data: 'other topic' },
          { topic: 'paged', tenant: 'T2', data: 'other tenant' },
        ]);
        mine.push(...accepted.filter((e) => e.topics[0] === 'paged' && e.tenant === 'T1').map((e) => e.id));
      }
      const seen: string[] = [];
      let before: string | undefined;
      let pages = 0;
      do {
        const answer = await page({
          topic: 'paged',
          limit: '10',
          ...(before === undefined ? {} : { before }),
        });
        assert.ok(answer.events.length <= 10);
        assert.equal(answer.complete, true);
        seen.push(...answer.events.map((e) => e.id));
        before = answer.next;
        assert.ok(++pages <= 7, 'paging ends');
      } while (before !== undefined);
      assert.deepEqual(seen, [...mine].reverse());
      assert.ok(pages >= 6, `pages: ${pages}`);
    });

    test('before a publisher-chosen id: only what is older; an id that is not there is 400 naming before', async () => {
      await publish([
        ...range(1, 3).map((d) => ({ topic: 'chosen', tenant: 'T1', data: d })),
        { topic: 'chosen', tenant: 'T1', id: 'urn:order:4', data: '4' },
        ...range(5, 6).map((d) => ({ topic: 'chosen', tenant: 'T1', data: d })),
      ]);
      const older = await page({ topic: 'chosen', before: 'urn:order:4' });
      assert.deepEqual(
        older.events.map((e) => e.data),
        ['3', '2', '1'],
      );
      const upToIt = await page({ topic: 'chosen', limit: '3' });
      assert.deepEqual(upToIt.events.map((e) => e.id).at(-1), 'urn:order:4');
      // Another tenant's chosen id is not one of T1's.
      await publish([{ topic: 'chosen', tenant: 'T2', id: 'urn:t2-only', data: 'x' }]);
      for (const unknown of ['nonexistent', 'urn:t2-only']) {
        const refused = await get(hub, { topic: 'chosen', before: unknown }, admin);
        assert.equal(refused.status, 400);
        assert.equal(refused.body.code, 'invalid-before');
        assert.equal(refused.body.parameter, 'before');
        assert.match(String(refused.body.detail), /^before /);
      }
    });

    test('a URI template selects as on a stream', async () => {
      await publish([
        { topic: 'fleet/1/position', tenant: 'T1', data: 'a' },
        { topic: 'fleet/2/position', tenant: 'T1', data: 'b' },
        { topic: 'fleet/2/fuel', tenant: 'T1', data: 'not a position' },
        { topic: 'fleet/3/position', tenant: 'T2', data: 'another tenant' },
        { topic: 'fleet/3/position', tenant: 'T1', data: 'c' },
      ]);
      const { events } = await page({ topic: 'fleet/{id}/position' });
      assert.deepEqual(
        events.map((e) => e.data),
        ['c', 'b', 'a'],
      );
      const two = await page({ topic: ['fleet/1/position', 'fleet/2/fuel'] });
      assert.deepEqual(
        two.events.map((e) => e.data),
        ['not a position', 'a'],
      );
    });

    test("an admin browses its own tenant, another with tenant=, every one with *; never another's by default", async () => {
      await publish([
        { topic: 'tenants', tenant: 'T1', data: 't1 first' },
        { topic: 'tenants', tenant: 'T2', data: 't2 private', private: true },
        { topic: 'tenants', tenant: 'T1', data: 't1 second' },
      ]);
      const own = await page({ topic: 'tenants' });
      assert.deepEqual(
        own.events.map((e) => e.data),
        ['t1 second', 't1 first'],
      );
      assert.ok(own.events.every((e) => e.tenant === undefined));
      const other = await page({ topic: 'tenants', tenant: 'T2' });
      assert.deepEqual(
        other.events.map((e) => [e.data, e.private]),
        [['t2 private', true]],
      );
      const every = await page({ topic: 'tenants', tenant: '*' });
      assert.deepEqual(
        every.events.map((e) => [e.data, e.tenant]),
        [
          ['t1 second', 'T1'],
          ['t2 private', 'T2'],
          ['t1 first', 'T1'],
        ],
      );
      // Paging every tenant goes by positions.
      const first = await page({ topic: 'tenants', tenant: '*', limit: '1' });
      const rest = await page({ topic: 'tenants', tenant: '*', before: first.next as string });
      assert.deepEqual(
        rest.events.map((e) => e.data),
        ['t2 private', 't1 first'],
      );
    });

    test('anyone but an admin is refused, its own tenant included', async () => {
      await publish([{ topic: 'guarded', tenant: 'T1', data: 'x', private: true }]);
      const tenantWide = bearer(await token({ tenant: 'T1', subscribe: ['*'], publish: ['*'], sub: 'app' }));
      const refused = await get(hub, { topic: 'guarded' }, tenantWide);
      assert.equal(refused.status, 403);
      assert.equal(refused.body.code, 'admin-required');
      const other = await get(hub, { topic: 'guarded', tenant: 'T1' }, bearer(await token({ tenant: 'T2' })));
      assert.equal(other.status, 403);
      const anonymous = await get(hub, { topic: 'guarded' }, {});
      assert.equal(anonymous.status, 401);
    });

    test('a limit out of 1..1000 and a missing topic are 400, naming the parameter', async () => {
      for (const limit of ['0', '1001', 'ten', '1.5']) {
        const refused = await get(hub, { topic: 'x', limit }, admin);
        assert.equal(refused.status, 400, limit);
        assert.equal(refused.body.code, 'invalid-limit');
        assert.match(String(refused.body.detail), /^limit must be a whole number from 1 to 1000/);
      }
      const atMost = await get(hub, { topic: 'x', limit: '1000' }, admin);
      assert.equal(atMost.status, 200);
      const noTopic = await get(hub, {}, admin);
      assert.equal(noTopic.status, 400);
      assert.equal(noTopic.body.code, 'topic-required');
      const tooLong = await get(hub, { topic: 'x', before: 'x'.repeat(1025) }, admin);
      assert.equal(tooLong.status, 400);
      assert.equal(tooLong.body.code, 'invalid-before');
    });
  });

  describe(`browsing a topic's history: the scan bound (${backend.name})`, () => {
    let hub: TestHub;
    before(async () => {
      hub = await hubOn(backend, { rewind: { maxScan: 40 }, replayPageSize: 8 });
    });
    after(() => hub.close());

    test('complete:false with a next past the entries examined; following it finds the rest', async () => {
      const [rare] = await publishTo(hub, [{ topic: 'rare', data: 'far back' }]);
      await publishTo(
        hub,
        range(1, 60).map((d) => ({ topic: 'common', data: d })),
      );
      // Open development mode: this machine is admin.
      const first = (await get(hub, { topic: 'rare' }, {})).body as unknown as Page;
      assert.deepEqual(first.events, []);
      assert.equal(first.complete, false);
      assert.equal(typeof first.next, 'string');
      const second = (await get(hub, { topic: 'rare', before: first.next as string }, {}))
        .body as unknown as Page;
      assert.deepEqual(
        second.events.map((e) => e.id),
        [rare?.id],
      );
      assert.equal(second.complete, true);
      assert.equal(second.next, undefined);
    });
  });
}

describe("browsing a topic's history: a log that reads forwards only", () => {
  let hub: TestHub;
  before(async () => {
    const memory = new MemoryBroker();
    // The seven members every log has, and nothing else.
    const forwardsOnly: Log = {
      kind: 'forwards-only',
      start: (feed) => memory.start(feed),
      append: (drafts) => memory.append(drafts),
      locate: (id, tenant) => memory.locate(id, tenant),
      read: (after, until, limit) => memory.read(after, until, limit),
      compare: (a, b) => memory.compare(a, b),
      close: () => memory.close(),
    };
    hub = await startHub({ broker: forwardsOnly });
  });
  after(() => hub.close());

  test('501 history-unsupported', async () => {
    const answer = await get(hub, { topic: 'any' }, {});
    assert.equal(answer.status, 501);
    assert.equal(answer.body.code, 'history-unsupported');
    assert.match(String(answer.body.detail), /forwards-only/);
  });
});
