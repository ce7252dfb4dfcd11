import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { BACKENDS, hubOn } from '../helpers/backends.ts';
import type { TestHub } from '../helpers/server.ts';
import type { SseStream } from '../helpers/sse-client.ts';
import { bearer, SECRET, token } from '../helpers/tokens.ts';

/**
 * `POST /v1/subscriptions` changes an open stream's types and tags, not only its topics (seed
 * 004 changes its event types on the fly), on real sockets over memory and Redis. After every
 * change, and after every refused one, one event of each kind is published and the stream must
 * receive exactly the ones its filter now lets through.
 */

/** Every kind of event the streams are tested with: a type and a `d` tag (or none). */
const KINDS = [
  ['a', 'S1'],
  ['b', 'S1'],
  ['c', 'S1'],
  ['a', 'S2'],
  ['b', 'S2'],
  ['a', undefined],
] as const;
type Kind = (typeof KINDS)[number];
const label = ([type, d]: Kind) => `${type}/${d ?? '-'}`;
const ALL = KINDS.map(label);

const eventOf = (topic: string, kind: Kind, data: string) => ({
  topic,
  type: kind[0],
  data,
  ...(kind[1] === undefined ? {} : { tags: { d: kind[1] } }),
});

interface Answer {
  status: number;
  contentType: string | null;
  body: Record<string, unknown>;
}

const LIVE_BACKENDS = BACKENDS.filter((backend) => backend.name !== 'nats');

for (const backend of LIVE_BACKENDS) {
  describe(`live type and tag filters (${backend.name})`, () => {
    let hub: TestHub;
    before(async () => {
      // Small replay pages, so a change lands between pages of a long replay.
      hub = await hubOn(backend, { replayPageSize: 20 });
    });
    after(() => hub.close());

    let rounds = 0;

    /**
     * Publishes one event of each kind on `topic`, then a fence of the first expected kind: once
     * the fence is here, every event of the batch has gone by (dispatch is in log order), so the
     * stream has received exactly what it will of them.
     */
    async function receives(stream: SseStream, topic: string, expected: readonly string[]): Promise<void> {
      const round = ++rounds;
      const from = stream.data.length;
      const batch = await hub.publish(KINDS.map((kind) => eventOf(topic, kind, `${round} ${label(kind)}`)));
      assert.equal(batch.status, 202);
      const fence = KINDS.find((kind) => label(kind) === expected[0]);
      assert.ok(fence, 'the fence is a kind the stream receives');
      await hub.publish(eventOf(topic, fence, `${round} fence`));
      await stream.until(
        (s) => s.data.some((e) => e.data === `${round} fence`),
        5000,
        `round ${round}'s fence`,
      );
      assert.deepEqual(
        stream.data.slice(from).map((e) => e.data),
        [...expected.map((kind) => `${round} ${kind}`), `${round} fence`],
      );
    }

    async function change(body: unknown, headers: Record<string, string> = {}): Promise<Answer> {
      const response = await fetch(`${hub.url}/v1/subscriptions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: JSON.stringify(body),
      });
      return {
        status: response.status,
        contentType: response.headers.get('content-type'),
        body: (await response.json()) as Record<string, unknown>,
      };
    }

    async function open(query: string): Promise<{ stream: SseStream; connectionId: string; secret: string }> {
      const stream = await hub.subscribe(query);
      assert.equal(stream.status, 200);
      await stream.untilConnected();
      const { connectionId, secret } = JSON.parse(stream.events[0]?.data ?? '{}');
      return { stream, connectionId, secret };
    }

    test('types and tags are added, removed and replaced on an open stream', async () => {
      const topic = 'live/walk';
      const { stream, connectionId, secret } = await open(`topic=${topic}&type=a&tag.d=S1`);
      await receives(stream, topic, ['a/S1']);

      const steps: [body: Record<string, unknown>, types: string[], tags: object, expected: string[]][] = [
        [{ action: 'subscribe', types: ['b'] }, ['a', 'b'], { d: ['S1'] }, ['a/S1', 'b/S1']],
        [{ action: 'unsubscribe', types: ['a'] }, ['b'], { d: ['S1'] }, ['b/S1']],
        [{ action: 'set', types: [] }, [], { d: ['S1'] }, ['a/S1', 'b/S1', 'c/S1']],
        [
          { action: 'subscribe', tags: { d: 'S2' } },
          [],
          { d: ['S1', 'S2'] },
          ['a/S1', 'b/S1', 'c/S1', 'a/S2', 'b/S2'],
        ],
        [{ action: 'set', tags: {} }, [], {}, ALL],
      ];
      for (const [body, types, tags, expected] of steps) {
        const answer = await change({ connectionId, secret, ...body });
        assert.equal(answer.status, 200, JSON.stringify(answer.body));
        assert.deepEqual(answer.body, { connectionId, topics: [topic], types, tags }, JSON.stringify(body));
        await receives(stream, topic, expected);
      }
      stream.close();
    });

    test("seed 004's eventTypes names the types too", async () => {
      const topic = 'live/seed-004';
      const { stream, connectionId, secret } = await open(`topic=${topic}&type=a`);
      const added = await change({ connectionId, secret, action: 'subscribe', eventTypes: ['b'] });
      assert.equal(added.status, 200);
      assert.deepEqual(added.body.types, ['a', 'b']);
      await receives(stream, topic, ['a/S1', 'b/S1', 'a/S2', 'b/S2', 'a/-']);
      const removed = await change({ connectionId, secret, action: 'unsubscribe', eventTypes: 'a' });
      assert.deepEqual(removed.body.types, ['b']);
      await receives(stream, topic, ['b/S1', 'b/S2']);
      stream.close();
    });

    test('topics, types and tags change in one request', async () => {
      const { stream, connectionId, secret } = await open('topic=live/one&type=a');
      const answer = await change({
        connectionId,
        secret,
        action: 'set',
        topics: ['live/two'],
        types: ['b'],
        tags: { d: ['S2'] },
      });
      assert.deepEqual(answer.body, {
        connectionId,
        topics: ['live/two'],
        types: ['b'],
        tags: { d: ['S2'] },
      });
      await receives(stream, 'live/two', ['b/S2']);
      stream.close();
    });

    test('a refused change is 400 naming the parameter, and leaves the stream exactly as it was', async () => {
      const topic = 'live/refused';
      const filtered = await open(`topic=${topic}&type=a&tag.d=S1`);
      const unfiltered = await open(`topic=${topic}-all`);
      const cases: [
        what: string,
        on: typeof filtered,
        body: Record<string, unknown>,
        code: string,
        detail: RegExp,
      ][] = [
        [
          'a herald. type',
          filtered,
          { action: 'subscribe', types: ['herald.x'] },
          'invalid-type',
          /types\[0\] "herald\.x"/,
        ],
        [
          'a control character',
          filtered,
          { action: 'subscribe', types: ['x\ny'] },
          'invalid-type',
          /types\[0\].*control/,
        ],
        [
          '129 characters',
          filtered,
          { action: 'set', types: ['t'.repeat(129)] },
          'invalid-type',
          /types\[0\].*1–128/,
        ],
        [
          '65 types',
          filtered,
          { action: 'set', types: Array.from({ length: 65 }, (_, i) => `t${i}`) },
          'invalid-type',
          /types has 65 values; the limit is 64/,
        ],
        [
          'an object as types',
          filtered,
          { action: 'subscribe', types: { b: true } },
          'invalid-type',
          /types must be an array/,
        ],
        ['an empty types', filtered, { action: 'subscribe', types: [] }, 'invalid-type', /types is empty/],
        [
          'removing the last type',
          filtered,
          { action: 'unsubscribe', types: ['a'] },
          'invalid-type',
          /last type/,
        ],
        [
          'removing types from an unfiltered stream',
          unfiltered,
          { action: 'unsubscribe', types: ['a'] },
          'invalid-type',
          /every type; use action "set"/,
        ],
        [
          'types and eventTypes',
          filtered,
          { action: 'subscribe', types: ['b'], eventTypes: ['c'] },
          'invalid-type',
          /types or eventTypes/,
        ],
        [
          'a bad eventTypes',
          filtered,
          { action: 'subscribe', eventTypes: ['herald.connected'] },
          'invalid-type',
          /eventTypes\[0\]/,
        ],
        [
          'a number as tag value',
          filtered,
          { action: 'subscribe', tags: { d: 5 } },
          'invalid-tag',
          /tags\.d must be a string or an array of strings/,
        ],
        [
          'an empty tag name',
          filtered,
          { action: 'subscribe', tags: { '': 'x' } },
          'invalid-tag',
          /needs a name/,
        ],
        [
          'set with no values',
          filtered,
          { action: 'set', tags: { d: [] } },
          'invalid-tag',
          /tags\.d is empty/,
        ],
        [
          'a 257-character value',
          filtered,
          { action: 'set', tags: { d: 'v'.repeat(257) } },
          'invalid-tag',
          /tags\.d: a tag value is at most 256/,
        ],
        [
          'an array as tags',
          filtered,
          { action: 'set', tags: ['d'] },
          'invalid-tag',
          /tags must be an object/,
        ],
        [
          'removing the last value',
          filtered,
          { action: 'unsubscribe', tags: { d: 'S1' } },
          'invalid-tag',
          /last value of tag "d"/,
        ],
        [
          'removing values of a tag it does not filter on',
          unfiltered,
          { action: 'unsubscribe', tags: { d: 'S1' } },
          'invalid-tag',
          /every value of tag "d"/,
        ],
        // All or nothing: the valid part of a refused change is not applied either.
        [
          'valid types with bad tags',
          filtered,
          { action: 'subscribe', types: ['b'], tags: { d: 5 } },
          'invalid-tag',
          /tags\.d/,
        ],
        [
          'valid topics with a refused type change',
          filtered,
          { action: 'unsubscribe', topics: topic, types: ['a'] },
          'invalid-type',
          /last type/,
        ],
        [
          'valid types with bad topics',
          unfiltered,
          { action: 'set', topics: [], types: ['a'] },
          'topic-required',
          /topics must be/,
        ],
        [
          'nothing to change',
          filtered,
          { action: 'subscribe' },
          'topic-required',
          /give topics, types or tags/,
        ],
        [
          'an unknown action',
          filtered,
          { action: 'replace', types: ['b'] },
          'invalid-action',
          /"subscribe", "unsubscribe" or "set"/,
        ],
      ];
      for (const [what, on, body, code, detail] of cases) {
        const answer = await change({ connectionId: on.connectionId, secret: on.secret, ...body });
        assert.equal(answer.status, 400, what);
        assert.match(answer.contentType ?? '', /^application\/problem\+json/, what);
        assert.equal(answer.body.code, code, what);
        assert.match(String(answer.body.detail), detail, what);
        await receives(filtered.stream, topic, ['a/S1']);
        await receives(unfiltered.stream, `${topic}-all`, ALL);
      }
      // Still changeable after all that.
      const answer = await change({
        connectionId: filtered.connectionId,
        secret: filtered.secret,
        action: 'subscribe',
        types: ['b'],
      });
      assert.equal(answer.status, 200);
      await receives(filtered.stream, topic, ['a/S1', 'b/S1']);
      filtered.stream.close();
      unfiltered.stream.close();
    });

    test('a change during a long replay does not break it; what follows the change follows the new filter', async (t) => {
      const topic = 'live/replay';
      const start = await hub.publish({ topic, data: 'start' });
      const COUNT = 500;
      const padding = 'x'.repeat(1000);
      for (let i = 0; i < COUNT; i += 100) {
        const batch = Array.from({ length: 100 }, (_, j) => {
          const n = i + j;
          return { topic, type: n % 2 === 0 ? 'a' : 'b', data: `${n} ${padding}` };
        });
        assert.equal((await hub.publish(batch)).status, 202);
      }
      const stream = await hub.subscribe(`topic=${topic}&type=a`, { lastEventId: String(start.body.id) });
      await stream.untilConnected();
      const { connectionId, secret } = JSON.parse(stream.events[0]?.data ?? '{}');
      const answer = await change({ connectionId, secret, action: 'set', types: ['b'] });
      assert.equal(answer.status, 200);
      await hub.publish([
        { topic, type: 'a', data: 'live a' },
        { topic, type: 'b', data: 'live b' },
      ]);
      await stream.until((s) => s.data.some((e) => e.data === 'live b'), 20_000, 'the live event');
      assert.equal(stream.ended, false);
      const data = stream.data.map((e) => e.data);
      assert.equal(data.at(-1), 'live b', 'the live a does not pass the new filter');
      const replayed = data.slice(0, -1).map((d) => Number(d.split(' ', 1)[0]));
      // Each event met the old filter or the new one: a's before the change, b's after it.
      const split = [...Array(COUNT + 1).keys()].find((k) => {
        const expected = [...Array(COUNT).keys()].filter((n) => (n < k ? n % 2 === 0 : n % 2 === 1));
        return expected.length === replayed.length && expected.every((n, i) => replayed[i] === n);
      });
      assert.notEqual(
        split,
        undefined,
        `replayed in order, the old filter then the new: ${replayed.join(',')}`,
      );
      t.diagnostic(`the change took effect at event ${split} of ${COUNT}`);
      stream.close();
    });
  });
}

describe('who may change a stream’s filters', () => {
  let hub: TestHub;
  const memory = BACKENDS.find((backend) => backend.name === 'memory');
  before(async () => {
    assert.ok(memory);
    hub = await hubOn(memory, { auth: { jwt: { secrets: [SECRET] } } });
  });
  after(() => hub.close());

  test('another credential is 403 and a wrong secret 404, as for topics; the stream is unchanged', async () => {
    const owner = bearer(await token({ tenant: 'shop', sub: 'owner' }));
    const publisher = bearer(await token({ tenant: 'shop', sub: 'pub', publish: ['*'] }));
    const stream = await hub.subscribe('topic=orders&type=a', { headers: owner });
    await stream.untilConnected();
    const { connectionId, secret } = JSON.parse(stream.events[0]?.data ?? '{}');
    const change = async (headers: Record<string, string>, body: Record<string, unknown> = {}) => {
      const response = await fetch(`${hub.url}/v1/subscriptions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: JSON.stringify({ connectionId, secret, action: 'set', types: ['b'], ...body }),
      });
      return { status: response.status, code: ((await response.json()) as { code?: string }).code };
    };
    let round = 0;
    const receivesOnly = async (expected: string) => {
      round++;
      await hub.publish(
        ['a', 'b'].map((type) => ({ topic: 'orders', type, data: `${round} ${type}` })),
        publisher,
      );
      await hub.publish({ topic: 'orders', type: expected, data: `${round} fence` }, publisher);
      await stream.until((s) => s.data.some((e) => e.data === `${round} fence`));
      assert.deepEqual(
        stream.data.filter((e) => e.data.startsWith(`${round} `)).map((e) => e.data),
        [`${round} ${expected}`, `${round} fence`],
      );
    };

    const intruder = bearer(await token({ tenant: 'shop', sub: 'intruder' }));
    assert.deepEqual(await change(intruder), { status: 403, code: 'not-your-stream' });
    await receivesOnly('a');
    const otherTenant = bearer(await token({ tenant: 'other', sub: 'owner' }));
    assert.deepEqual(await change(otherTenant), { status: 403, code: 'not-your-stream' });
    await receivesOnly('a');
    assert.deepEqual(await change(owner, { secret: 'not-the-secret' }), {
      status: 404,
      code: 'connection-not-found',
    });
    await receivesOnly('a');
    assert.equal((await change({})).status, 401);
    await receivesOnly('a');
    assert.deepEqual(await change(owner), { status: 200, code: undefined });
    await receivesOnly('b');
    stream.close();
  });
});
