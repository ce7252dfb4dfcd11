import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { ClientOptions, HeraldClient, HeraldMessage, StatusChange } from '../../src/client/index.ts';
import { shareClient } from '../../src/client/shared.ts';

type Any = Record<string, unknown>;

/** A client double: records what it was created with, lets the test emit events and statuses. */
function fakeFactory() {
  const created: {
    options: ClientOptions;
    closed: boolean;
    emit: (type: string, data: unknown) => void;
    status: (s: StatusChange) => void;
    subscribed: string[][];
  }[] = [];
  const create = (options: ClientOptions): HeraldClient<Any> => {
    const handlers = new Map<string, Set<(m: HeraldMessage) => void>>();
    const statusHandlers = new Set<(s: StatusChange) => void>();
    let status: StatusChange['status'] = 'connecting';
    let topics = [...options.topics];
    const record = {
      options,
      closed: false,
      subscribed: [] as string[][],
      emit(type: string, data: unknown) {
        const message = { id: String(Math.random()), type, data, raw: JSON.stringify(data) };
        for (const handler of handlers.get(type) ?? []) handler(message);
      },
      status(change: StatusChange) {
        status = change.status;
        for (const handler of statusHandlers) handler(change);
      },
    };
    created.push(record);
    return {
      get status() {
        return status;
      },
      lastEventId: undefined,
      connectionId: undefined,
      mode: 'stream',
      get topics() {
        return topics;
      },
      on(type: string, handler: (m: HeraldMessage) => void) {
        const set = handlers.get(type) ?? new Set();
        handlers.set(type, set);
        set.add(handler);
        return () => void set.delete(handler);
      },
      onStatus(handler: (s: StatusChange) => void) {
        statusHandlers.add(handler);
        return () => void statusHandlers.delete(handler);
      },
      onGap: () => () => {},
      async subscribe(list: string | readonly string[]) {
        record.subscribed.push([...list]);
        topics = [...new Set([...topics, ...list])];
      },
      async unsubscribe() {},
      close() {
        record.closed = true;
        record.status({ status: 'closed', reason: 'closed by the application' });
      },
    } as HeraldClient<Any>;
  };
  return { create, created };
}

const tick = () => new Promise<void>((resolve) => queueMicrotask(resolve));
const options: ClientOptions = { url: 'http://hub.invalid', topics: ['a'] };

describe('the provider store (no DOM)', () => {
  test('rendering never connects: the client is created by the first retain', () => {
    const { create, created } = fakeFactory();
    const shared = shareClient(options, create);
    assert.equal(created.length, 0);
    assert.equal(shared.client.status, 'connecting');
    shared.retain();
    assert.equal(created.length, 1);
  });

  test("StrictMode's mount, unmount, mount keeps one client", async () => {
    const { create, created } = fakeFactory();
    const shared = shareClient(options, create);
    const release = shared.retain();
    release();
    const releaseAgain = shared.retain();
    await tick();
    assert.equal(created.length, 1);
    assert.equal(created[0]?.closed, false);
    releaseAgain();
    releaseAgain(); // idempotent
    await tick();
    assert.equal(created[0]?.closed, true, 'the last release closes it');
    assert.equal(shared.client.status, 'closed');
  });

  test('handlers given before the client exists, and across clients, are attached to it', async () => {
    const { create, created } = fakeFactory();
    const shared = shareClient(options, create);
    const got: unknown[] = [];
    const statuses: string[] = [];
    shared.client.on('score', (m) => got.push(m.data));
    shared.client.onStatus((s) => statuses.push(s.status));
    const release = shared.retain();
    created[0]?.emit('score', 1);
    created[0]?.status({ status: 'open' });
    release();
    await tick();
    shared.retain(); // mounted again later: a new client, the same handlers
    created[1]?.emit('score', 2);
    created[0]?.emit('score', 'from the closed one');
    assert.deepEqual(got, [1, 2]);
    assert.deepEqual(statuses, ['connecting', 'open', 'closed', 'connecting']);
  });

  test('topics changed before the connection are the ones it opens with; later ones go to the client', async () => {
    const { create, created } = fakeFactory();
    const shared = shareClient(options, create);
    await shared.client.subscribe(['b', 'c']);
    await shared.client.unsubscribe('c');
    assert.deepEqual(shared.client.topics, ['a', 'b']);
    shared.retain();
    assert.deepEqual(created[0]?.options.topics, ['a', 'b']);
    await shared.client.subscribe('d');
    assert.deepEqual(created[0]?.subscribed, [['d']]);
    assert.deepEqual(shared.client.topics, ['a', 'b', 'd']);
  });

  test('latest values: tracked from the first watcher on, one stable value per event', () => {
    const { create, created } = fakeFactory();
    const shared = shareClient(options, create);
    shared.retain();
    let changes = 0;
    const stop = shared.watch('score', () => changes++);
    assert.equal(shared.latest('score'), undefined);
    created[0]?.emit('score', { avi: 1 });
    const first = shared.latest('score');
    assert.deepEqual(first?.data, { avi: 1 });
    assert.equal(shared.latest('score'), first, 'the same object until the next event');
    stop();
    created[0]?.emit('score', { avi: 2 });
    assert.equal(changes, 1);
    assert.deepEqual(shared.latest('score')?.data, { avi: 2 }, 'still tracked for later watchers');
  });

  test('status snapshots are stable objects between changes', () => {
    const { create, created } = fakeFactory();
    const shared = shareClient(options, create);
    shared.retain();
    let changes = 0;
    shared.watchStatus(() => changes++);
    const a = shared.status();
    assert.equal(a, shared.status());
    created[0]?.status({ status: 'closed', reason: 'token refused' });
    assert.deepEqual(shared.status(), { status: 'closed', reason: 'token refused' });
    assert.equal(changes, 1);
  });

  test("an application's client is used as it is, never closed by the provider", async () => {
    const { create, created } = fakeFactory();
    const own = create(options);
    const shared = shareClient(own);
    const release = shared.retain();
    release();
    await tick();
    assert.equal(shared.client, own);
    assert.equal(created[0]?.closed, false);
  });
});
