/**
 * A page of live dealer tiles (seed 000's DealerAiTileLive, for every dealer at once): the rolling
 * average of each dealer's last AVI/ATI/CIS scores and its latest MSRP change. One provider, so one
 * stream for the whole page, on the `dealers/{dealerId}` template. It starts from the hub's latest
 * value of each key (`snapshot: 'latest'`: each vehicle's last score and price change), so a tile
 * shows its current figures when the page opens and after a reload, not only once a new score
 * arrives.
 */

import { createHeraldHooks } from 'herald/react';
import { StrictMode, useEffect, useState } from 'react';
import { createRoot } from 'react-dom/client';
import type { AiScore, MsrpChange, TileEvents } from './score-job.ts';

/** Typed by the map the score job publishes with: a misspelt type or field does not compile. */
const { HeraldProvider, useHeraldEvent, useHeraldStatus } = createHeraldHooks<TileEvents>();

/** How many of a dealer's latest scores its tile averages. */
const WINDOW = 5;

interface TileState {
  readonly scores: readonly AiScore[];
  readonly msrp?: MsrpChange;
}

const average = (scores: readonly AiScore[], field: 'avi' | 'ati' | 'cis') =>
  scores.length === 0
    ? '–'
    : (scores.reduce((sum, score) => sum + score[field], 0) / scores.length).toFixed(1);

function DealerTile({ dealerId, state }: { dealerId: string; state: TileState }) {
  const { scores, msrp } = state;
  return (
    <section className="tile" data-dealer={dealerId}>
      <h2>Dealer {dealerId}</h2>
      <dl>
        <dt>AVI</dt>
        <dd data-field="avi">{average(scores, 'avi')}</dd>
        <dt>ATI</dt>
        <dd data-field="ati">{average(scores, 'ati')}</dd>
        <dt>CIS</dt>
        <dd data-field="cis">{average(scores, 'cis')}</dd>
      </dl>
      <p data-field="count">
        {scores.length} of the last {WINDOW} scores
      </p>
      <p className="msrp" data-field="msrp">
        {msrp
          ? `${msrp.vin}: $${msrp.old} → $${msrp.new} (${msrp.deltaPct > 0 ? '+' : ''}${msrp.deltaPct}%)`
          : 'no MSRP change yet'}
      </p>
    </section>
  );
}

function Tiles({ dealers }: { dealers: readonly string[] }) {
  const [tiles, setTiles] = useState<ReadonlyMap<string, TileState>>(new Map());
  const update = (dealerId: string, change: (tile: TileState) => TileState) =>
    setTiles((current) => new Map(current).set(dealerId, change(current.get(dealerId) ?? { scores: [] })));
  useHeraldEvent('ai-score', ({ data }) =>
    update(data.dealerId, (tile) => ({ ...tile, scores: [...tile.scores, data].slice(-WINDOW) })),
  );
  useHeraldEvent('msrp', ({ data }) => update(data.dealerId, (tile) => ({ ...tile, msrp: data })));
  const { status } = useHeraldStatus();
  return (
    <>
      <header>
        <h1>Dealer AI scores</h1>
        <span className="status" data-status={status}>
          {status}
        </span>
      </header>
      <div className="tiles">
        {dealers.map((dealerId) => (
          <DealerTile key={dealerId} dealerId={dealerId} state={tiles.get(dealerId) ?? { scores: [] }} />
        ))}
      </div>
    </>
  );
}

function App() {
  const [dealers, setDealers] = useState<readonly string[]>();
  useEffect(() => {
    fetch('/api/dealers')
      .then((response) => response.json() as Promise<{ dealers: string[] }>)
      .then(({ dealers }) => setDealers(dealers));
  }, []);
  if (dealers === undefined) return <p>Loading dealers…</p>;
  return (
    <HeraldProvider
      options={{
        url: '/realtime',
        topics: ['dealers/{dealerId}'],
        types: ['ai-score', 'msrp'],
        // Each vehicle's latest score and price change first (the job publishes them with a key),
        // then live: a reload shows the same figures instead of starting over.
        snapshot: 'latest',
      }}
    >
      <Tiles dealers={dealers} />
    </HeraldProvider>
  );
}

createRoot(document.getElementById('root') as HTMLElement).render(
  <StrictMode>
    <App />
  </StrictMode>,
);
