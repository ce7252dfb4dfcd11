import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { createClient } from '../../src/client/index.ts';
import { sleep, startHub } from '../helpers/server.ts';
import { SECRET, token } from '../helpers/tokens.ts';
import { problem, record, recordingFetch, until, untilStatus } from './helpers.ts';

describe('herald/client live subscription changes', () => {
  const cleanups: (() => unknown)[] = [];
  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  test('subscribe and unsubscribe change what one open connection receives', async () => {
    const hub = await startHub();
    cleanups.push(() => hub.close());
    const fetcher = recordingFetch();
    const client = createClient({ url: hub.url, topics: ['page/a'], store: null, fetch: fetcher.fetch });
    cleanups.push(() => client.close());
    const seen = record(client);
    await untilStatus(client, 'open');
    const connectionId = client.connectionId;

    await client.subscribe(['page/b', 'page/{x}/c']);
    assert.deepEqual(client.topics, ['page/a', 'page/b', 'page/{x}/c']);
    await hub.publish([
      { topic: 'page/a', data: 'a1' },
      { topic: 'page/b', data: 'b1' },
      { topic: 'page/1/c', data: 'c1' },
    ]);
    await until(() => seen.messages.length === 3);

    await client.unsubscribe('page/a');
    assert.deepEqual(client.topics, ['page/b', 'page/{x}/c']);
    await hub.publish([
      { topic: 'page/a', data: 'a2' },
      { topic: 'page/b', data: 'b2' },
    ]);
    await until(() => seen.messages.length === 4);
    await sleep(50);
    assert.deepEqual(seen.data(), ['a1', 'b1', 'c1', 'b2']);
    assert.equal(client.connectionId, connectionId, 'the same connection throughout');
    assert.equal(fetcher.streams().length, 1);
    assert.equal((await hub.herald.stats()).connections.total, 1);
    const posts = fetcher.calls.filter((c) => c.method === 'POST');
    assert.equal(posts.length, 2);
  });

  test('a reconnection asks for the changed list', async () => {
    const hub = await startHub({ maxLifetimeMs: 400, retryMs: 30 });
    cleanups.push(() => hub.close());
    const fetcher = recordingFetch();
    const client = createClient({ url: hub.url, topics: ['x'], store: null, fetch: fetcher.fetch });
    cleanups.push(() => client.close());
    const seen = record(client);
    await untilStatus(client, 'open');
    await client.subscribe('y');
    await until(() => fetcher.streams().length >= 2, 3000, 'a reconnection');
    const url = new URL(fetcher.streams().at(-1)?.url as string);
    assert.deepEqual(url.searchParams.getAll('topic'), ['x', 'y']);
    await untilStatus(client, 'open');
    await hub.publish({ topic: 'y', data: 'y after the reconnection' });
    await until(() => seen.messages.length === 1);
  });

  test('404 (the stream is on another node, or gone): reconnects with the new list and Last-Event-ID, nothing missed', async () => {
    const hub = await startHub();
    cleanups.push(() => hub.close());
    const fetcher = recordingFetch((url, init) =>
      init?.method === 'POST' && url.endsWith('/v1/subscriptions')
        ? problem(404, 'connection-not-found', 'no stream with this id on this node')
        : undefined,
    );
    const client = createClient({ url: hub.url, topics: ['a'], store: null, fetch: fetcher.fetch });
    cleanups.push(() => client.close());
    const seen = record(client);
    await untilStatus(client, 'open');
    await hub.publish({ topic: 'a', data: 'a1' });
    await until(() => seen.messages.length === 1);
    const first = client.connectionId;

    await client.subscribe('b');
    // Published before the new stream is open: Last-Event-ID brings it.
    await hub.publish([
      { topic: 'b', data: 'b1' },
      { topic: 'a', data: 'a2' },
    ]);
    await until(() => seen.messages.length === 3, 5000);
    assert.deepEqual(seen.data(), ['a1', 'b1', 'a2']);
    assert.notEqual(client.connectionId, first);
    const streams = fetcher.streams();
    assert.equal(streams.length, 2);
    assert.deepEqual(new URL(streams[1]?.url as string).searchParams.getAll('topic'), ['a', 'b']);
    assert.equal(streams[1]?.headers.get('last-event-id'), seen.messages[0]?.id);
    await sleep(100);
    assert.equal((await hub.herald.stats()).connections.total, 1, 'the old stream was dropped');
  });

  test('403 (another credential): the change is refused with the detail and the list is what it was', async () => {
    const hub = await startHub({ auth: { jwt: { secrets: [SECRET] } } });
    cleanups.push(() => hub.close());
    const mine = await token({ sub: 'alice' });
    const theirs = await token({ sub: 'bob' });
    const fetcher = recordingFetch((url, init) => {
      if (init?.method !== 'POST') return undefined;
      // Another credential posts the change.
      return fetch(url, {
        ...init,
        headers: { ...(init.headers as object), authorization: `Bearer ${theirs}` },
      });
    });
    const client = createClient({
      url: hub.url,
      topics: ['a'],
      token: mine,
      store: null,
      fetch: fetcher.fetch,
    });
    cleanups.push(() => client.close());
    await untilStatus(client, 'open');
    await assert.rejects(client.subscribe(['b']), (error: Error & { status?: number }) => {
      assert.equal(error.status, 403);
      assert.match(error.message, /.+/);
      return true;
    });
    assert.deepEqual(client.topics, ['a']);
    assert.equal(client.status, 'open', 'a refused change does not close the stream');
  });

  test('no topic, no connection: the first subscribe() opens it', async () => {
    const hub = await startHub();
    cleanups.push(() => hub.close());
    const fetcher = recordingFetch();
    const client = createClient({ url: hub.url, topics: [], store: null, fetch: fetcher.fetch });
    cleanups.push(() => client.close());
    const seen = record(client);
    await sleep(100);
    assert.equal(fetcher.calls.length, 0);
    assert.equal(client.status, 'connecting');
    await client.subscribe('first');
    await untilStatus(client, 'open');
    await hub.publish({ topic: 'first', data: 1 });
    await until(() => seen.messages.length === 1);
    assert.equal(fetcher.streams().length, 1);
  });

  test('changes made while connecting are used by the stream', async () => {
    const hub = await startHub();
    cleanups.push(() => hub.close());
    const client = createClient({ url: hub.url, topics: ['a'], store: null });
    cleanups.push(() => client.close());
    const seen = record(client);
    await client.subscribe('b'); // before herald.connected
    await untilStatus(client, 'open');
    await until(() => client.connectionId !== undefined);
    await sleep(100);
    await hub.publish({ topic: 'b', data: 'b' });
    await until(() => seen.messages.length === 1, 3000);
    assert.equal((await hub.herald.stats()).connections.total, 1);
  });
});
