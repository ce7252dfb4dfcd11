import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { createElement, StrictMode, useEffect, useMemo, useState } from 'react';
import { createRoot } from 'react-dom/client';
import { renderToString } from 'react-dom/server';
import { createClient, type HeraldClient, type StatusChange } from '../../src/client/index.ts';
import {
  HeraldProvider,
  useHerald,
  useHeraldEvent,
  useHeraldStatus,
  useLatest,
} from '../../src/client/react.ts';
import { sleep, startHub, type TestHub } from '../helpers/server.ts';
import { fakeContainer } from './fake-dom.ts';
import { recordingFetch, until } from './helpers.ts';

interface Score {
  dealerId: string;
  avi: number;
  ati: number;
  cis: number;
}

/** What the tiles rendered last, by dealer (they render no element: they report it). */
const shown = new Map<string, { avi: number; ati: number; cis: number; count: number; status: string }>();

/** Seed 000's DealerAiTileLive with the hooks: a rolling average of the last 5 scores of one dealer. */
function DealerAiTileLive({ dealerId }: { dealerId: string }) {
  const [scores, setScores] = useState<Score[]>([]);
  const herald = useHerald();
  useEffect(() => {
    const topic = `dealers/${dealerId}/scores`;
    void herald.subscribe(topic);
    return () => void herald.unsubscribe(topic);
  }, [herald, dealerId]);
  useHeraldEvent<Score>('ai-score', ({ data }) => {
    if (data.dealerId === dealerId) setScores((last) => [...last.slice(-4), data]);
  });
  const average = useMemo(() => {
    const mean = (pick: (s: Score) => number) =>
      scores.length === 0 ? 0 : Math.round(scores.reduce((sum, s) => sum + pick(s), 0) / scores.length);
    return { avi: mean((s) => s.avi), ati: mean((s) => s.ati), cis: mean((s) => s.cis) };
  }, [scores]);
  const { status } = useHeraldStatus();
  shown.set(dealerId, { ...average, count: scores.length, status });
  return null;
}

/** What `Latest` rendered, and a way to re-render it. */
const latestProbe = {
  seen: [] as { tick: number; latest: unknown; selected: unknown; handled: string[] }[],
  selections: 0,
  setTick: (_tick: number) => {},
};

function Latest() {
  const [tick, setTick] = useState(0);
  latestProbe.setTick = setTick;
  const latest = useLatest<Score>('ai-score');
  // An inline select: a new function on every render.
  const selected = useLatest<Score, number>('ai-score', (score) => {
    latestProbe.selections++;
    return score.avi + score.ati + score.cis;
  });
  const [handled] = useState<string[]>([]);
  // A new handler on every render, which sees this render's tick.
  useHeraldEvent<Score>('ai-score', () => handled.push(`tick ${tick}`));
  latestProbe.seen.push({ tick, latest, selected, handled });
  return null;
}

const pageProbe: { status?: StatusChange; latest?: unknown } = {};

function Page() {
  pageProbe.status = useHeraldStatus();
  pageProbe.latest = useLatest('ai-score');
  return createElement('p', null, 'tile');
}

function Orphan() {
  useHerald();
  return null;
}

describe('herald/react', () => {
  const cleanups: (() => unknown)[] = [];
  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  const streamsOn = async (hub: TestHub) => (await hub.herald.stats()).connections.total;

  test('StrictMode: one connection per provider; live tiles update; unmounting closes it', async () => {
    const hub = await startHub();
    cleanups.push(() => hub.close());
    const fetcher = recordingFetch();
    const root = createRoot(fakeContainer());
    root.render(
      createElement(
        StrictMode,
        null,
        createElement(
          HeraldProvider,
          // No topic of its own: the tiles subscribe to theirs, on the one connection.
          { options: { url: hub.url, topics: [], store: null, fetch: fetcher.fetch } },
          createElement(DealerAiTileLive, { dealerId: 'S1' }),
          createElement(DealerAiTileLive, { dealerId: 'S2' }),
        ),
      ),
    );
    await until(() => shown.get('S1')?.status === 'open', 5000, 'the tiles to be open');
    await sleep(200); // long enough for a leaked second connection to show up
    assert.equal(await streamsOn(hub), 1, 'one stream on the hub');
    assert.equal(fetcher.streams().length, 1, 'one stream request');
    // The tiles' effects ran before the provider's: the connection opened with their topics.
    assert.deepEqual(new URL(fetcher.streams()[0]?.url as string).searchParams.getAll('topic'), [
      'dealers/S1/scores',
      'dealers/S2/scores',
    ]);

    const publish = (dealerId: string, avi: number, ati: number, cis: number) =>
      hub.publish({
        topic: `dealers/${dealerId}/scores`,
        type: 'ai-score',
        data: { dealerId, avi, ati, cis },
      });
    for (const [avi, ati, cis] of [
      [60, 70, 80],
      [62, 72, 82],
      [64, 74, 84],
    ] as const) {
      await publish('S1', avi, ati, cis);
    }
    await publish('S2', 10, 20, 30);
    await publish('S3', 99, 99, 99); // no tile subscribed to it
    await until(() => shown.get('S1')?.count === 3 && shown.get('S2')?.count === 1, 5000, 'the scores');
    assert.deepEqual(shown.get('S1'), { avi: 62, ati: 72, cis: 82, count: 3, status: 'open' });
    assert.deepEqual(shown.get('S2'), { avi: 10, ati: 20, cis: 30, count: 1, status: 'open' });
    for (let i = 0; i < 6; i++) await publish('S1', 100, 100, 100);
    await until(() => shown.get('S1')?.avi === 100, 5000, 'the rolling window');
    assert.equal(shown.get('S1')?.count, 5);

    root.unmount();
    const deadline = Date.now() + 2000;
    while ((await streamsOn(hub)) > 0 && Date.now() < deadline) await sleep(10);
    assert.equal(await streamsOn(hub), 0, 'unmounting closed the stream');
  });

  test('useLatest: the latest value, selected once per event; useHeraldEvent keeps the latest handler without resubscribing', async () => {
    const hub = await startHub();
    cleanups.push(() => hub.close());
    const client = createClient({ url: hub.url, topics: ['tiles'], store: null });
    cleanups.push(() => client.close());
    let ons = 0;
    const counted = new Proxy(client, {
      get(target, key) {
        if (key === 'on') ons++;
        const value = Reflect.get(target, key);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    }) as HeraldClient;
    const { seen } = latestProbe;
    const root = createRoot(fakeContainer());
    root.render(createElement(HeraldProvider, { client: counted }, createElement(Latest)));
    await until(() => client.status === 'open' && seen.length > 0, 5000);
    await sleep(50);
    assert.equal(seen.at(-1)?.latest, undefined);
    const onsAfterMount = ons;

    await hub.publish({ topic: 'tiles', type: 'ai-score', data: { dealerId: 'S1', avi: 1, ati: 2, cis: 3 } });
    await until(() => seen.at(-1)?.selected === 6, 5000, 'the latest value');
    assert.deepEqual(seen.at(-1)?.latest, { dealerId: 'S1', avi: 1, ati: 2, cis: 3 });
    const selectionsAfterOne = latestProbe.selections;
    latestProbe.setTick(1); // re-render: a new handler, a new inline select
    latestProbe.setTick(2);
    await until(() => seen.at(-1)?.tick === 2, 1000, 'the re-render');
    await sleep(50);
    await hub.publish({ topic: 'tiles', type: 'ai-score', data: { dealerId: 'S1', avi: 2, ati: 2, cis: 3 } });
    await until(() => seen.at(-1)?.selected === 7, 5000);
    assert.deepEqual(seen.at(-1)?.handled, ['tick 0', 'tick 2'], 'the latest handler was called');
    assert.equal(ons, onsAfterMount, 'no resubscription on re-render');
    assert.ok(
      latestProbe.selections - selectionsAfterOne <= 4,
      `select ran ${latestProbe.selections - selectionsAfterOne} times`,
    );
    root.unmount();
    await sleep(20);
    assert.equal(client.status, 'open', "the application's client is not closed by the provider");
  });

  test('server rendering opens no connection', async () => {
    const hub = await startHub();
    cleanups.push(() => hub.close());
    const fetcher = recordingFetch();
    const html = renderToString(
      createElement(
        StrictMode,
        null,
        createElement(
          HeraldProvider,
          { options: { url: hub.url, topics: ['t'], fetch: fetcher.fetch } },
          createElement(Page),
        ),
      ),
    );
    assert.equal(html, '<p>tile</p>');
    assert.deepEqual(pageProbe.status, { status: 'connecting' });
    assert.equal(pageProbe.latest, undefined);
    await sleep(100);
    assert.equal(fetcher.calls.length, 0);
    assert.equal(await streamsOn(hub), 0);
  });

  test('hooks outside a provider say so', () => {
    assert.throws(() => renderToString(createElement(Orphan)), /inside <HeraldProvider>/);
  });
});
