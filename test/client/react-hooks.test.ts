import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { createElement, type ReactNode, StrictMode, useEffect } from 'react';
import { createRoot } from 'react-dom/client';
import type { ClientOptions, HeraldMessage, StatusChange } from '../../src/client/index.ts';
import {
  HeraldProvider,
  type RecentEvents,
  useHerald,
  useHeraldEvents,
  useHeraldStatus,
  useLatest,
  useReconnect,
} from '../../src/client/react.ts';
import { sleep, startHub, type TestHub } from '../helpers/server.ts';
import { fakeContainer } from './fake-dom.ts';
import { recordingFetch, until } from './helpers.ts';

/**
 * The hooks a real page needs beyond the latest value: a bounded list of recent events, a
 * reconnect, and the history a connection starts with reaching the hooks of its first render.
 * Real hub, real client, React's real renderer (on the minimal DOM of fake-dom.ts).
 */

interface Item {
  n: number;
}

/** What the components rendered last (they render nothing: they report it). */
const seen = {
  feed: undefined as RecentEvents<HeraldMessage<Item>> | undefined,
  statuses: [] as StatusChange[],
  reconnect: (() => {}) as () => void,
  connectionId: undefined as string | undefined,
  latest: undefined as unknown,
  order: [] as string[],
};

function Feed({ limit }: { limit: number }): ReactNode {
  seen.feed = useHeraldEvents<Item>('x', { limit });
  const status = useHeraldStatus();
  const last = seen.statuses.at(-1);
  if (last?.status !== status.status || last.reason !== status.reason) seen.statuses.push(status);
  seen.reconnect = useReconnect();
  seen.connectionId = useHerald().connectionId;
  return null;
}

function Seeded(): ReactNode {
  seen.latest = useLatest('msrp');
  seen.feed = useHeraldEvents<Item>('x', { limit: 10 });
  useEffect(() => void seen.order.push('hooks registered'), []);
  return null;
}

const data = (feed = seen.feed) => feed?.events.map((message) => message.data.n);

describe('herald/react: hooks for real pages', () => {
  const cleanups: (() => unknown)[] = [];
  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  const stats = async (hub: TestHub) => {
    const figures = await hub.herald.stats();
    return { open: figures.connections.total, opened: figures.events.opened };
  };
  const mount = (options: ClientOptions, child: ReactNode) => {
    const root = createRoot(fakeContainer());
    root.render(createElement(StrictMode, null, createElement(HeraldProvider, { options }, child)));
    cleanups.push(() => root.unmount());
    return root;
  };

  test('useHeraldEvents: the last `limit` events, newest last; clear() empties it; one stream under StrictMode', async () => {
    const hub = await startHub();
    cleanups.push(() => hub.close());
    seen.statuses = [];
    mount({ url: hub.url, topics: ['feed'], store: null }, createElement(Feed, { limit: 3 }));
    await until(() => seen.statuses.at(-1)?.status === 'open', 5000, 'open');
    for (let n = 1; n <= 5; n++) await hub.publish({ topic: 'feed', type: 'x', data: { n } });
    await hub.publish({ topic: 'feed', type: 'y', data: { n: 99 } }); // another type
    await until(() => data()?.at(-1) === 5, 5000, 'the fifth event');
    await sleep(50);
    assert.deepEqual(data(), [3, 4, 5]);
    const listed = seen.feed;
    assert.equal(seen.feed, listed, 'the same object between events');
    seen.feed?.clear();
    await until(() => data()?.length === 0, 1000, 'the cleared list');
    await hub.publish({ topic: 'feed', type: 'x', data: { n: 6 } });
    await until(() => data()?.length === 1, 5000, 'an event after clear()');
    assert.deepEqual(data(), [6]);
    assert.deepEqual(await stats(hub), { open: 1, opened: 1 }, 'StrictMode mounts twice, one stream opens');
  });

  test('useReconnect: a new stream at once, resuming from the last event; the page sees connecting, then open', async () => {
    const hub = await startHub();
    cleanups.push(() => hub.close());
    seen.statuses = [];
    const fetcher = recordingFetch();
    mount(
      { url: hub.url, topics: ['feed'], store: null, fetch: fetcher.fetch },
      createElement(Feed, { limit: 3 }),
    );
    await until(() => seen.statuses.at(-1)?.status === 'open', 5000, 'open');
    await hub.publish({ topic: 'feed', type: 'x', data: { n: 1 } });
    await until(() => data()?.length === 1, 5000, 'the first event');
    const first = seen.feed?.events[0]?.id;
    const before = seen.connectionId;
    seen.reconnect();
    await until(
      () => seen.statuses.at(-1)?.status === 'open' && fetcher.streams().length === 2,
      5000,
      'reopened',
    );
    assert.deepEqual(
      seen.statuses.map((change) => change.status),
      ['connecting', 'open', 'connecting', 'open'],
      'no `closed` the page did not ask for',
    );
    assert.equal(fetcher.streams()[1]?.headers.get('last-event-id'), first, 'it resumes where it was');
    const deadline = Date.now() + 2000;
    while ((await stats(hub)).open !== 1 && Date.now() < deadline) await sleep(10);
    assert.deepEqual(await stats(hub), { open: 1, opened: 2 }, 'the old stream closed, a new one opened');
    await until(
      () => seen.connectionId !== undefined && seen.connectionId !== before,
      1000,
      'a new stream id',
    );
    await hub.publish({ topic: 'feed', type: 'x', data: { n: 2 } });
    await until(() => data()?.length === 2, 5000, 'an event on the new stream');
    assert.deepEqual(data(), [1, 2], 'nothing lost, nothing twice');
  });

  test('the history a connection starts with (snapshot) reaches useLatest and useHeraldEvents of the first render', async () => {
    seen.order = [];
    seen.latest = undefined;
    const stream = [
      'event: herald.connected\ndata: {"connectionId":"c1","lastEventId":"0","secret":"s","history":"snapshot"}\n\n',
      'id: 1\nevent: msrp\ndata: {"vin":"A","new":43000}\n\n',
      'id: 2\nevent: x\ndata: {"n":1}\n\n',
      'id: 3\nevent: msrp\ndata: {"vin":"B","new":52000}\n\n',
      'id: 3\nevent: herald.history\ndata: {"kind":"snapshot","events":3,"complete":true}\n\n',
    ].join('');
    const fetcher = recordingFetch((url) => {
      if (new URL(url).pathname !== '/v1/events') return undefined;
      seen.order.push('stream requested');
      // The history, then a stream that stays open.
      const body = new ReadableStream<Uint8Array>({
        start: (controller) => controller.enqueue(new TextEncoder().encode(stream)),
      });
      return new Response(body, { headers: { 'content-type': 'text/event-stream' } });
    });
    mount(
      { url: 'http://hub.invalid', topics: ['dealers/S1'], snapshot: 'latest', fetch: fetcher.fetch },
      createElement(Seeded),
    );
    await until(() => data()?.length === 1 && seen.latest !== undefined, 5000, 'the history');
    assert.deepEqual(seen.latest, { vin: 'B', new: 52000 });
    assert.deepEqual(data(), [1]);
    // StrictMode runs the effects twice; the connection is opened once, after them.
    assert.deepEqual(seen.order, ['hooks registered', 'hooks registered', 'stream requested']);
    assert.match(fetcher.streams()[0]?.url ?? '', /snapshot=latest/);
  });
});
