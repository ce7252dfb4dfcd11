/**
 * docs/client.md's seed-000 tile, as written there with the typed hooks (plus test ids): the
 * rolling average of the last five AI scores of one dealer's vehicles and its latest MSRP change,
 * filled from the hub's latest values when the page opens (`snapshot: 'latest'`), then live.
 */
import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { createHeraldHooks } from '../../../src/client/react.ts';

type Events = {
  'ai-score': { vin: string; dealerId: string; avi: number; ati: number; cis: number };
  msrp: { vin: string; old: number; new: number; deltaPct: number };
};

const { HeraldProvider, useHeraldEvents, useLatest, useHeraldStatus, useReconnect } =
  createHeraldHooks<Events>();

const mean = (values: number[]) =>
  values.length === 0 ? '–' : (values.reduce((sum, value) => sum + value, 0) / values.length).toFixed(1);

function DealerAiTileLive({ dealerId }: { dealerId: string }) {
  const { events: scores } = useHeraldEvents('ai-score', { limit: 5 }); // the rolling window
  const msrp = useLatest('msrp');
  const { status, reason } = useHeraldStatus();
  const reconnect = useReconnect();
  const average = (field: 'avi' | 'ati' | 'cis') => mean(scores.map(({ data }) => data[field]));
  return (
    <section
      className="tile"
      data-status={status}
      style={{ fontFamily: 'system-ui', border: '1px solid #ccd', borderRadius: 8, padding: 16, width: 280 }}
    >
      <h2>Dealer {dealerId}</h2>
      <dl>
        <dt>AVI</dt>
        <dd data-testid="avi">{average('avi')}</dd>
        <dt>ATI</dt>
        <dd data-testid="ati">{average('ati')}</dd>
        <dt>CIS</dt>
        <dd data-testid="cis">{average('cis')}</dd>
      </dl>
      <p data-testid="scores">{scores.length} scores</p>
      <p data-testid="msrp">
        {msrp ? `${msrp.vin}: ${msrp.old} → ${msrp.new} (${msrp.deltaPct}%)` : 'no MSRP change yet'}
      </p>
      {status === 'closed' && (
        <p>
          {reason}{' '}
          <button type="button" onClick={reconnect}>
            Reconnect
          </button>
        </p>
      )}
    </section>
  );
}

const params = new URLSearchParams(location.search);
const hub = params.get('hub') as string;
const dealerId = params.get('dealer') as string;

createRoot(document.getElementById('root') as HTMLElement).render(
  <StrictMode>
    <HeraldProvider
      key={dealerId}
      options={{
        url: hub,
        topics: [`dealers/${dealerId}`],
        types: ['ai-score', 'msrp'],
        snapshot: 'latest', // the current scores on first load and after a reload
        token: async () => (await fetch('/token')).text(),
      }}
    >
      <DealerAiTileLive dealerId={dealerId} />
    </HeraldProvider>
  </StrictMode>,
);
