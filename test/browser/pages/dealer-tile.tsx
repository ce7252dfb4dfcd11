/**
 * Seed 000's live dealer tile, written with herald/react: the rolling average of the last AVI,
 * ATI and CIS scores of one dealer's vehicles, and its latest MSRP change. Under StrictMode, so
 * React mounts it twice and the provider must still open one connection.
 */
import { StrictMode, useState } from 'react';
import { createRoot } from 'react-dom/client';
import { HeraldProvider, useHeraldEvent, useHeraldStatus, useLatest } from '../../../src/client/react.ts';

interface AiScore {
  vin: string;
  dealerId: string;
  avi: number;
  ati: number;
  cis: number;
}
interface MsrpChange {
  vin: string;
  old: number;
  new: number;
  deltaPct: number;
}

const WINDOW = 5;
const average = (scores: AiScore[], field: 'avi' | 'ati' | 'cis') =>
  scores.length === 0
    ? '–'
    : (scores.reduce((sum, score) => sum + score[field], 0) / scores.length).toFixed(1);

function DealerAiTileLive({ dealerId }: { dealerId: string }) {
  const [scores, setScores] = useState<AiScore[]>([]);
  useHeraldEvent<AiScore>('ai-score', ({ data }) => setScores((last) => [...last, data].slice(-WINDOW)));
  const msrp = useLatest<MsrpChange>('msrp');
  const { status } = useHeraldStatus();
  return (
    <section
      className="tile"
      data-status={status}
      style={{ fontFamily: 'system-ui', border: '1px solid #ccd', borderRadius: 8, padding: 16, width: 280 }}
    >
      <h2>Dealer {dealerId}</h2>
      <p className="status">{status}</p>
      <dl>
        <dt>AVI</dt>
        <dd data-testid="avi">{average(scores, 'avi')}</dd>
        <dt>ATI</dt>
        <dd data-testid="ati">{average(scores, 'ati')}</dd>
        <dt>CIS</dt>
        <dd data-testid="cis">{average(scores, 'cis')}</dd>
      </dl>
      <p data-testid="scores">{scores.length} scores</p>
      <p data-testid="msrp">
        {msrp ? `${msrp.vin}: ${msrp.old} → ${msrp.new} (${msrp.deltaPct}%)` : 'no MSRP change yet'}
      </p>
    </section>
  );
}

const params = new URLSearchParams(location.search);
const hub = params.get('hub') as string;
const dealerId = params.get('dealer') as string;

createRoot(document.getElementById('root') as HTMLElement).render(
  <StrictMode>
    <HeraldProvider
      options={{
        url: hub,
        topics: [`dealers/${dealerId}`],
        types: ['ai-score', 'msrp'],
        token: async () => (await fetch('/token')).text(),
      }}
    >
      <DealerAiTileLive dealerId={dealerId} />
    </HeraldProvider>
  </StrictMode>,
);
