import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { createClient, HeraldClientError } from '../../src/client/index.ts';
import { sleep, startHub, type TestHub } from '../helpers/server.ts';
import { problem, type Recorder, record, recordingFetch, until, untilStatus } from './helpers.ts';

/** One event of each type a, b, c with tag d = S1, then one of type a with d = S2 and one untagged. */
const publishEach = (hub: TestHub, round: number) =>
  hub.publish([
    ...['a', 'b', 'c'].map((type) => ({ topic: 'f', type, data: `${type}${round}`, tags: { d: 'S1' } })),
    { topic: 'f', type: 'a', data: `S2-${round}`, tags: { d: 'S2' } },
    { topic: 'f', type: 'a', data: `none-${round}` },
  ]);

/** Publishes one round and asserts that exactly `expected` arrives of it. */
async function round(hub: TestHub, seen: Recorder, n: number, expected: string[]): Promise<void> {
  const from = seen.messages.length;
  await publishEach(hub, n);
  await until(() => seen.messages.length >= from + expected.length, 5000, `round ${n}`);
  await sleep(50);
  assert.deepEqual(seen.data().slice(from), expected, `round ${n}`);
}

describe('herald/client changing types and tags live', () => {
  const cleanups: (() => unknown)[] = [];
  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  const start = async (options: { types?: string[]; tags?: Record<string, string | string[]> }) => {
    const hub = await startHub({ maxLifetimeMs: 60_000 });
    cleanups.push(() => hub.close());
    const bodies: unknown[] = [];
    const fetcher = recordingFetch((_url, init) => {
      if (init?.method === 'POST') bodies.push(JSON.parse(String(init.body)));
      return undefined;
    });
    const client = createClient({
      url: hub.url,
      topics: ['f'],
      types: options.types,
      tags: options.tags,
      store: null,
      fetch: fetcher.fetch,
    });
    cleanups.push(() => client.close());
    const seen = record(client);
    await untilStatus(client, 'open');
    return { hub, client, seen, fetcher, bodies };
  };

  test('types: subscribe, unsubscribe and setFilter change one open stream, and post what they change', async () => {
    const { hub, client, seen, fetcher, bodies } = await start({ types: ['a'], tags: { d: 'S1' } });
    const connectionId = client.connectionId;
    await round(hub, seen, 0, ['a0']);

    await client.subscribe({ types: ['b'] });
    assert.deepEqual(client.types, ['a', 'b']);
    await round(hub, seen, 1, ['a1', 'b1']);

    await client.unsubscribe({ types: 'a' });
    assert.deepEqual(client.types, ['b']);
    await round(hub, seen, 2, ['b2']);

    await client.setFilter({ types: [] });
    assert.deepEqual(client.types, []);
    await round(hub, seen, 3, ['a3', 'b3', 'c3']);

    assert.deepEqual(
      bodies.map((body) => {
        const { connectionId: _id, secret: _secret, ...rest } = body as Record<string, unknown>;
        return rest;
      }),
      [
        { action: 'subscribe', types: ['b'] },
        { action: 'unsubscribe', types: ['a'] },
        { action: 'set', types: [] },
      ],
    );
    assert.equal(client.connectionId, connectionId, 'the same stream throughout');
    assert.equal(fetcher.streams().length, 1);
  });

  test('tags: subscribe adds values, setFilter replaces the map ({} for any tag)', async () => {
    const { hub, client, seen, bodies } = await start({ tags: { d: 'S1' } });
    await round(hub, seen, 0, ['a0', 'b0', 'c0']);

    await client.subscribe({ tags: { d: 'S2' } });
    assert.deepEqual(client.tags, { d: ['S1', 'S2'] });
    await round(hub, seen, 1, ['a1', 'b1', 'c1', 'S2-1']);

    await client.unsubscribe({ tags: { d: ['S1'] } });
    await round(hub, seen, 2, ['S2-2']);

    await client.setFilter({ tags: {} });
    assert.deepEqual(client.tags, {});
    await round(hub, seen, 3, ['a3', 'b3', 'c3', 'S2-3', 'none-3']);
    assert.deepEqual(
      bodies.map((body) => (body as { tags: unknown }).tags),
      [{ d: ['S2'] }, { d: ['S1'] }, {}],
    );
  });

  test('topics, types and tags in one change, kept by the next connection', async () => {
    const hub = await startHub({ maxLifetimeMs: 500, retryMs: 30 });
    cleanups.push(() => hub.close());
    const fetcher = recordingFetch();
    const client = createClient({
      url: hub.url,
      topics: ['f'],
      types: ['a'],
      tags: { d: 'S1' },
      store: null,
      fetch: fetcher.fetch,
    });
    cleanups.push(() => client.close());
    const seen = record(client);
    await untilStatus(client, 'open');
    await client.subscribe({ topics: 'g', types: ['b'], tags: { d: ['S2'] } });
    await until(() => fetcher.streams().length >= 2, 3000, 'a reconnection');
    const url = new URL(fetcher.streams().at(-1)?.url as string);
    assert.deepEqual(url.searchParams.getAll('topic'), ['f', 'g']);
    assert.deepEqual(url.searchParams.getAll('type'), ['a', 'b']);
    assert.deepEqual(url.searchParams.getAll('tag.d'), ['S1', 'S2']);
    await untilStatus(client, 'open');
    await hub.publish([
      { topic: 'g', type: 'b', data: 'kept', tags: { d: 'S2' } },
      { topic: 'g', type: 'c', data: 'not kept', tags: { d: 'S2' } },
    ]);
    await until(() => seen.messages.length === 1);
    await sleep(50);
    assert.deepEqual(seen.data(), ['kept']);
  });

  test('a 400 from the hub rolls the change back; the next connection asks for what was there', async () => {
    const hub = await startHub({ maxLifetimeMs: 500, retryMs: 30 });
    cleanups.push(() => hub.close());
    const fetcher = recordingFetch();
    const client = createClient({
      url: hub.url,
      topics: ['f'],
      types: ['a'],
      tags: { d: 'S1' },
      store: null,
      fetch: fetcher.fetch,
    });
    cleanups.push(() => client.close());
    await untilStatus(client, 'open');
    const refusal = await client.subscribe({ types: ['herald.x'] }).then(
      () => undefined,
      (error: unknown) => error,
    );
    assert.ok(refusal instanceof HeraldClientError);
    assert.equal(refusal.status, 400);
    assert.equal(refusal.code, 'invalid-type');
    assert.deepEqual(client.types, ['a']);
    const tagRefusal = await client.setFilter({ tags: { d: [] } }).catch((error: unknown) => error);
    assert.equal((tagRefusal as HeraldClientError).code, 'invalid-tag');
    assert.deepEqual(client.tags, { d: ['S1'] });
    await until(() => fetcher.streams().length >= 2, 3000, 'a reconnection');
    const url = new URL(fetcher.streams().at(-1)?.url as string);
    assert.deepEqual(url.searchParams.getAll('type'), ['a']);
    assert.deepEqual(url.searchParams.getAll('tag.d'), ['S1']);
  });

  test('what the hub would refuse is refused before asking: removing the last type, or from every type', async () => {
    const { client, fetcher } = await start({ types: ['a'] });
    for (const [change, code] of [
      [() => client.unsubscribe({ types: ['a'] }), 'invalid-type'],
      [() => client.unsubscribe({ tags: { d: 'S1' } }), 'invalid-tag'],
    ] as const) {
      const refusal = await change().catch((error: unknown) => error);
      assert.ok(refusal instanceof HeraldClientError);
      assert.equal(refusal.status, 400);
      assert.equal(refusal.code, code);
    }
    assert.deepEqual(client.types, ['a']);
    assert.deepEqual(client.tags, {});
    assert.equal(fetcher.calls.filter((call) => call.method === 'POST').length, 0);
  });

  test('404 (the stream is gone or on another node): a stream with the new types replaces it', async () => {
    const hub = await startHub();
    cleanups.push(() => hub.close());
    const fetcher = recordingFetch((url, init) =>
      init?.method === 'POST' && url.endsWith('/v1/subscriptions')
        ? problem(404, 'connection-not-found', 'no stream with this id on this node')
        : undefined,
    );
    const client = createClient({
      url: hub.url,
      topics: ['f'],
      types: ['a'],
      store: null,
      fetch: fetcher.fetch,
    });
    cleanups.push(() => client.close());
    const seen = record(client);
    await untilStatus(client, 'open');
    const first = client.connectionId;
    await client.subscribe({ types: 'b' });
    await until(
      () => client.connectionId !== undefined && client.connectionId !== first,
      5000,
      'the new stream',
    );
    const url = new URL(fetcher.streams().at(-1)?.url as string);
    assert.deepEqual(url.searchParams.getAll('type'), ['a', 'b']);
    await hub.publish([
      { topic: 'f', type: 'b', data: 'b1' },
      { topic: 'f', type: 'c', data: 'c1' },
    ]);
    await until(() => seen.messages.length === 1);
    await sleep(50);
    assert.deepEqual(seen.data(), ['b1']);
  });
});
