import assert from 'node:assert/strict';
import { after, before, describe, mock, test } from 'node:test';
import { createClient } from '../../src/client/index.ts';
import { sleep, startHub } from '../helpers/server.ts';
import { record, recordingFetch, until, untilStatus } from './helpers.ts';

/**
 * A browser's window events without a browser: `online`, `offline` and `visibilitychange` on a
 * global EventTarget that counts its listeners, and `navigator.onLine`.
 */
const global = globalThis as unknown as Record<string, unknown>;
const window = new EventTarget();
const document = new EventTarget();
const listeners = new Map<string, number>();
let onLine = true;

before(() => {
  global.addEventListener = (type: string, listener: EventListener) => {
    listeners.set(type, (listeners.get(type) ?? 0) + 1);
    window.addEventListener(type, listener);
  };
  global.removeEventListener = (type: string, listener: EventListener) => {
    listeners.set(type, (listeners.get(type) ?? 0) - 1);
    window.removeEventListener(type, listener);
  };
  global.document = document;
  Object.defineProperty(navigator, 'onLine', { configurable: true, get: () => onLine });
});
after(() => {
  delete global.addEventListener;
  delete global.removeEventListener;
  delete global.document;
  delete (navigator as unknown as Record<string, unknown>).onLine;
});

const setOnline = (value: boolean) => {
  onLine = value;
  window.dispatchEvent(new Event(value ? 'online' : 'offline'));
};

describe('herald/client and the browser window', () => {
  test('offline pauses reconnection; online reconnects at once; a tab switch does nothing', async () => {
    // The hub's retry hint of 30 s and the top of the jitter range: a reconnection by the backoff
    // would come about 30 s after the stream ended, so one within the 10 s waited below came
    // from `online` (a bound that holds on any machine, however busy).
    const random = Math.random;
    Math.random = () => 0.999;
    const hub = await startHub({ maxLifetimeMs: 400, retryMs: 30_000 });
    const fetcher = recordingFetch();
    const client = createClient({ url: hub.url, topics: ['t'], store: null, fetch: fetcher.fetch });
    const seen = record(client);
    try {
      assert.equal(listeners.get('online'), 1);
      assert.equal(listeners.get('offline'), 1);
      assert.equal(listeners.get('visibilitychange') ?? 0, 0, 'no visibilitychange listener');
      await untilStatus(client, 'open');

      // A tab switch: nothing happens to the stream.
      document.dispatchEvent(new Event('visibilitychange'));
      window.dispatchEvent(new Event('visibilitychange'));
      await sleep(50);
      assert.equal(fetcher.streams().length, 1);

      setOnline(false);
      // The hub ends the stream (its lifetime): offline, the client waits instead of retrying.
      await untilStatus(client, 'reconnecting', 10_000);
      await hub.publish({ topic: 't', data: 'while offline' });
      await sleep(600);
      assert.equal(fetcher.streams().length, 1, 'no attempt while offline');

      setOnline(true);
      await untilStatus(client, 'open', 10_000); // at once: not after the ~30 s backoff
      await until(() => seen.messages.length === 1, 10_000);
      assert.deepEqual(seen.data(), ['while offline']);
    } finally {
      client.close();
      await hub.close();
      Math.random = random;
    }
    assert.equal(listeners.get('online'), 0, 'close() removed its listeners');
    assert.equal(listeners.get('offline'), 0);
  });

  test('offline while waiting to retry: the pending attempt is dropped until online', async () => {
    // Fake timers: "dropped" is a retry that never comes however long the wait, and "at once" is
    // an attempt before any time passes; neither depends on how fast the machine is.
    const random = Math.random;
    Math.random = () => 0.999; // the retry is due 300 ms after the failure
    mock.timers.enable({ apis: ['setTimeout'] });
    const settle = async () => {
      for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve));
    };
    let n = 0;
    const fetcher = recordingFetch(() => {
      n++;
      return Promise.reject(new TypeError('network down'));
    });
    const client = createClient({
      url: 'http://hub.invalid',
      topics: ['t'],
      store: null,
      fetch: fetcher.fetch,
      backoff: { initialMs: 300, maxMs: 300 },
    });
    try {
      await settle();
      assert.equal(n, 1);
      setOnline(false);
      mock.timers.tick(60_000);
      await settle();
      assert.equal(n, 1, 'no attempt while offline, a minute after the retry was due');
      setOnline(true);
      await settle();
      assert.equal(n, 2, 'an attempt as soon as the browser is online');
    } finally {
      client.close();
      mock.timers.reset();
      Math.random = random;
    }
  });
});
