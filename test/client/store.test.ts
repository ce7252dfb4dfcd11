import assert from 'node:assert/strict';
import { afterEach, describe, test } from 'node:test';
import { defaultStore, memoryStore } from '../../src/client/store.ts';

const global = globalThis as { sessionStorage?: unknown };

describe('last event id stores', () => {
  afterEach(() => {
    delete global.sessionStorage;
  });

  test('memory: what was set is read back, per key', () => {
    const store = memoryStore();
    assert.equal(store.get('a'), undefined);
    store.set('a', 'e-1');
    store.set('b', 'e-9');
    assert.equal(store.get('a'), 'e-1');
    assert.equal(store.get('b'), 'e-9');
  });

  test('the default store is sessionStorage when the page has one', () => {
    const items = new Map<string, string>();
    global.sessionStorage = {
      getItem: (key: string) => items.get(key) ?? null,
      setItem: (key: string, value: string) => void items.set(key, value),
    };
    defaultStore().set('herald:x', 'e-3');
    assert.equal(items.get('herald:x'), 'e-3');
    assert.equal(defaultStore().get('herald:x'), 'e-3');
  });

  test('blocked storage (it throws) and Node fall back to one memory store shared by the process', () => {
    global.sessionStorage = {
      getItem() {
        throw new Error('SecurityError');
      },
    };
    const first = defaultStore();
    first.set('k', 'e-5');
    delete global.sessionStorage;
    assert.equal(defaultStore().get('k'), 'e-5', 'a client created again resumes');
  });
});
