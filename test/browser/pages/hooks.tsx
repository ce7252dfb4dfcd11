/**
 * The hooks a real page needs, typed by an event map: a bounded list of recent events with
 * clear(), the connection's status as it changes, and a reconnect button. Under StrictMode, so
 * React mounts it twice and the provider must still open one stream.
 */
import { StrictMode, useEffect, useState } from 'react';
import { createRoot } from 'react-dom/client';
import { createHeraldHooks } from '../../../src/client/react.ts';

type Events = { x: { n: number } };
const { HeraldProvider, useHerald, useHeraldEvents, useHeraldStatus, useReconnect } =
  createHeraldHooks<Events>();

function Feed() {
  const { events, clear } = useHeraldEvents('x', { limit: 3 });
  const { status } = useHeraldStatus();
  const reconnect = useReconnect();
  const { connectionId } = useHerald();
  const [statuses, setStatuses] = useState<string[]>([]);
  useEffect(() => setStatuses((seen) => (seen.at(-1) === status ? seen : [...seen, status])), [status]);
  return (
    <section style={{ fontFamily: 'system-ui', padding: 16 }}>
      <p data-testid="status" data-status={status}>
        {status}
      </p>
      <p data-testid="statuses">{statuses.join(' → ')}</p>
      <p data-testid="connection">{connectionId ?? ''}</p>
      <ol data-testid="events">
        {events.map((event) => (
          <li key={event.id}>{event.data.n}</li>
        ))}
      </ol>
      <button type="button" data-testid="clear" onClick={clear}>
        Clear
      </button>
      <button type="button" data-testid="reconnect" onClick={reconnect}>
        Reconnect
      </button>
    </section>
  );
}

const hub = new URLSearchParams(location.search).get('hub') as string;

createRoot(document.getElementById('root') as HTMLElement).render(
  <StrictMode>
    <HeraldProvider
      options={{ url: hub, topics: ['feed'], store: null, token: async () => (await fetch('/token')).text() }}
    >
      <Feed />
    </HeraldProvider>
  </StrictMode>,
);
