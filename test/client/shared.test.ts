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
    let lastEventId: string | undefined;
    const record = {
      options,
      closed: false,
      subscribed: [] as string[][],
      emit(type: string, data: unknown) {
        const message = { id: String(Math.random()), type, data, raw: JSON.stringify(data) };
        lastEventId = message.id;
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
      get lastEventId() {
        return lastEventId;
      },
      connectionId: undefined,
      mode: 'stream',
      get topics() {
        return topics;
      },
      get types() {
        return options.types ?? [];
      },
      tags: {},
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
      onHistory: () => () => {},
      async setFilter() {},
      async presence(topic: string) {
        return { topic, connections: 0, subjects: 0, incomplete: [] };
      },
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

  test('reconnect(): a new client resuming from the last id, with every handler, and no `closed` heard', async () => {
    const { create, created } = fakeFactory();
    const shared = shareClient(options, create);
    shared.reconnect(); // not mounted: nothing to renew
    assert.equal(created.length, 0);
    const got: unknown[] = [];
    const statuses: string[] = [];
    shared.client.on('score', (m) => got.push(m.data));
    shared.client.onStatus((s) => statuses.push(s.status));
    shared.watch('score', () => {});
    shared.retain();
    await shared.client.subscribe('b');
    created[0]?.status({ status: 'open' });
    created[0]?.emit('score', 1);
    const last = shared.client.lastEventId;
    shared.reconnect();
    assert.equal(created.length, 2);
    assert.equal(created[0]?.closed, true);
    assert.equal(created[1]?.options.store?.get('any key'), last, 'it resumes where the last one was');
    assert.deepEqual(created[1]?.options.topics, ['a', 'b']);
    created[1]?.emit('score', 2);
    created[0]?.emit('score', 'from the closed one');
    assert.deepEqual(got, [1, 2]);
    assert.deepEqual(shared.latest('score')?.data, 2);
    assert.deepEqual(statuses, ['connecting', 'open', 'connecting']);
  });

  test("reconnect() with an application's client: its own reconnect(), or a clear refusal", () => {
    const { create } = fakeFactory();
    assert.throws(() => shareClient(create(options)).reconnect(), /owns the client/);
    let reconnects = 0;
    const own = Object.assign(create(options), { reconnect: () => void reconnects++ });
    shareClient(own).reconnect();
    assert.equal(reconnects, 1);
  });

  test('types and tags changed before the connection are the ones it opens with, by the rules of the client', async () => {
    const { create, created } = fakeFactory();
    const shared = shareClient({ ...options, tags: { dealerId: 'S1' } }, create);
    await shared.client.subscribe({ types: 'score' }); // every type already: unchanged
    assert.deepEqual(shared.client.types, []);
    await shared.client.setFilter({ types: ['score', 'msrp'] });
    await shared.client.subscribe({ tags: { dealerId: ['S2'], vin: 'V1' } }); // any vin already
    await assert.rejects(shared.client.unsubscribe({ types: ['score', 'msrp'] }), /no filter/);
    await shared.client.unsubscribe({ types: 'msrp' });
    assert.deepEqual(shared.client.types, ['score']);
    assert.deepEqual(shared.client.tags, { dealerId: ['S1', 'S2'] });
    shared.retain();
    assert.deepEqual(created[0]?.options.types, ['score']);
    assert.deepEqual(created[0]?.options.tags, { dealerId: ['S1', 'S2'] });
  });
});
