import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { createClient } from '../../src/client/index.ts';
import { createParser, type SseEvent } from '../../src/client/sse-parser.ts';
import { type MuxHub, startMuxHub } from './fixtures/mux-hub.ts';
import { LockServer } from './fixtures/tab-locks.ts';

/**
 * Tab sharing, in Node: each tab is a worker thread (real BroadcastChannel between them, Web
 * Locks kept by this thread), against a small hub that speaks the shared-stream protocol.
 */

interface Tab {
  readonly worker: Worker;
  call<T = unknown>(call: string, ...args: unknown[]): Promise<T>;
  received(): Promise<{ id: string; n: number }[]>;
}

const locks = new LockServer();
const hubs: MuxHub[] = [];
const tabs: Tab[] = [];

after(async () => {
  await Promise.all(tabs.map((tab) => tab.worker.terminate()));
  await Promise.all(hubs.map((hub) => hub.close()));
});

async function openTab(url: string, topics: string[], shareTabs = true): Promise<Tab> {
  const worker = new Worker(new URL('./fixtures/tab.ts', import.meta.url), {
    workerData: { url, topics, shareTabs },
  });
  locks.serve(worker);
  const waiting = new Map<string, (reply: { value?: unknown; error?: string }) => void>();
  worker.on('message', (reply: { call?: string; value?: unknown; error?: string }) => {
    if (reply.call === undefined) return;
    waiting.get(reply.call)?.(reply);
    waiting.delete(reply.call);
  });
  await new Promise<void>((resolve) => waiting.set('ready', () => resolve()));
  const tab: Tab = {
    worker,
    call: (call, ...args) =>
      new Promise((resolve, reject) => {
        waiting.set(call, (reply) =>
          reply.error ? reject(new Error(reply.error)) : resolve(reply.value as never),
        );
        worker.postMessage({ call, args });
      }),
    received: async () => (await tab.call<{ received: { id: string; n: number }[] }>('state')).received,
  };
  tabs.push(tab);
  return tab;
}

async function until(
  check: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

const isOpen = async (tab: Tab) => (await tab.call<{ status: string }>('state')).status === 'open';
const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);
const numbers = async (tab: Tab) => (await tab.received()).map((event) => event.n);

describe('one stream for all tabs (tab sharing, worker threads as tabs)', () => {
  test('4 tabs with different topics hold 1 stream; each gets exactly its events, once', async () => {
    const hub = await startMuxHub();
    hubs.push(hub);
    const topics = ['a', 'b', 'c', 'd'];
    const open: Tab[] = [];
    for (const topic of topics) open.push(await openTab(hub.url, [topic]));
    await until(async () => (await Promise.all(open.map(isOpen))).every(Boolean), 'every tab open');
    assert.equal(hub.streams(), 1, 'one stream at the hub');
    assert.equal(hub.muxes(), 1);
    assert.equal(hub.channels(), 4);
    for (const [i, topic] of topics.entries()) hub.publish(topic, range(i * 10, i * 10 + 5));
    await until(
      async () => (await Promise.all(open.map(numbers))).every((seen) => seen.length >= 5),
      'the events',
    );
    await new Promise((resolve) => setTimeout(resolve, 100));
    for (const [i, tab] of open.entries()) assert.deepEqual(await numbers(tab), range(i * 10, i * 10 + 5));
    await Promise.all(open.map((tab) => tab.worker.terminate()));
  });

  test('the leader tab crashes, then the next one closes, mid-stream: every other tab has every event once, in order', async () => {
    const hub = await startMuxHub();
    hubs.push(hub);
    // The first tab is open before the others start: it holds the lock.
    const first = await openTab(hub.url, ['x']);
    await until(() => isOpen(first), 'the first tab open');
    const [leader, second, ...others] = [
      first,
      await openTab(hub.url, ['y']),
      await openTab(hub.url, ['x']),
      await openTab(hub.url, ['y', 'z']),
    ];
    const all = [leader, second, ...others] as Tab[];
    await until(async () => (await Promise.all(all.map(isOpen))).every(Boolean), 'every tab open');
    let n = 0;
    const published = { x: [] as number[], y: [] as number[], z: [] as number[] };
    const publishing = setInterval(() => {
      for (const topic of ['x', 'y', 'z'] as const) {
        hub.publish(topic, [n]);
        published[topic].push(n++);
      }
    }, 5);
    await new Promise((resolve) => setTimeout(resolve, 150));
    await leader?.worker.terminate(); // a crash: no goodbye, the lock is released
    await new Promise((resolve) => setTimeout(resolve, 300));
    await second?.call('close'); // the next leader closes its client: its tab keeps the stream for the others
    await new Promise((resolve) => setTimeout(resolve, 300));
    clearInterval(publishing);
    const [x, yz] = others as [Tab, Tab];
    const expectX = published.x;
    const expectYZ = [...published.y, ...published.z].sort((a, b) => a - b);
    await until(async () => (await numbers(x)).length >= expectX.length, 'every x event');
    await until(async () => (await numbers(yz)).length >= expectYZ.length, 'every y and z event');
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.deepEqual(await numbers(x), expectX);
    assert.deepEqual(await numbers(yz), expectYZ);
    await until(() => hub.streams() === 1, 'one stream again');
    const shared = hub.requests.filter((request) => request.startsWith('GET /v1/events?mux=1'));
    assert.ok(shared.length >= 2, `another tab took the stream over (${shared.length} opened)`);
    assert.equal(hub.channels(), 2, 'the channels of the tabs that went are closed');
    await Promise.all(others.map((tab) => tab.worker.terminate()));
  });

  test("a tab's unsubscribe and close change only its own channel", async () => {
    const hub = await startMuxHub();
    hubs.push(hub);
    const one = await openTab(hub.url, ['p', 'q']);
    const two = await openTab(hub.url, ['p', 'q']);
    const three = await openTab(hub.url, ['p']);
    await until(async () => (await Promise.all([one, two, three].map(isOpen))).every(Boolean), 'open');
    await two.call('unsubscribe', 'q');
    hub.publish('p', [1]);
    hub.publish('q', [2]);
    await until(async () => (await numbers(one)).length >= 2, 'p and q in the first tab');
    await until(async () => (await numbers(two)).length >= 1 && (await numbers(three)).length >= 1, 'p');
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.deepEqual(await numbers(one), [1, 2]);
    assert.deepEqual(await numbers(two), [1]);
    assert.deepEqual(await numbers(three), [1]);
    await three.call('close');
    await until(() => hub.channels() === 2, 'its channel closed');
    hub.publish('p', [3]);
    await until(async () => (await numbers(two)).length >= 2, 'the next event in the second tab');
    assert.deepEqual(await numbers(one), [1, 2, 3]);
    assert.equal(hub.streams(), 1);
    await Promise.all([one, two, three].map((tab) => tab.worker.terminate()));
  });

  test('a hub without shared streams: each tab streams on its own', async () => {
    const hub = await startMuxHub({ mux: false });
    hubs.push(hub);
    const open = [await openTab(hub.url, ['a']), await openTab(hub.url, ['b'])];
    await until(async () => (await Promise.all(open.map(isOpen))).every(Boolean), 'open');
    assert.equal(hub.streams(), 2);
    hub.publish('a', [1]);
    hub.publish('b', [2]);
    await until(
      async () => (await Promise.all(open.map(numbers))).every((seen) => seen.length >= 1),
      'events',
    );
    assert.deepEqual(await Promise.all(open.map(numbers)), [[1], [2]]);
    await Promise.all(open.map((tab) => tab.worker.terminate()));
  });

  test('off in Node unless asked for, and with shareTabs: false', async () => {
    const hub = await startMuxHub();
    hubs.push(hub);
    const plain = createClient({ url: hub.url, topics: ['a'], store: null });
    const off = await openTab(hub.url, ['a'], false);
    await until(async () => plain.status === 'open' && (await isOpen(off)), 'open');
    assert.equal(hub.muxes(), 0);
    assert.equal(hub.streams(), 2);
    plain.close();
    await off.worker.terminate();
  });
});

describe('the parser and `channel:`', () => {
  const parse = (text: string): SseEvent[] => {
    const events: SseEvent[] = [];
    createParser((event) => events.push(event)).feed(new TextEncoder().encode(text));
    return events;
  };

  test('a labelled event carries its channel; an unlabelled one none', () => {
    assert.deepEqual(parse('id: 1\ndata: a\n\nchannel: c1\nid: 2\ndata: b\n\n'), [
      { id: '1', type: 'message', data: 'a' },
      { id: '2', type: 'message', data: 'b', channel: 'c1' },
    ]);
  });

  test("each channel has its own last event id, apart from the stream's", () => {
    const text =
      'channel: c1\nid: 5\ndata: a\n\n' +
      'id: 7\nchannel: c2\ndata: b\n\n' +
      'channel: c1\nevent: herald.history\ndata: {}\n\n' +
      'channel: c3\nevent: herald.connected\ndata: {}\n\n' +
      'data: mux\n\n';
    assert.deepEqual(
      parse(text).map(({ id, channel }) => [channel, id]),
      [
        ['c1', '5'],
        ['c2', '7'],
        ['c1', '5'],
        ['c3', ''],
        [undefined, ''],
      ],
    );
  });
});
