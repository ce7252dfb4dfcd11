/**
 * A tab of an app with one Herald client on its own topics: opened 8 times in one browser context
 * (one origin), the tabs share one stream to the hub. The test reads `window.tab`.
 */
import { createClient, type HeraldClient, type HeraldMessage } from '../../../src/client/index.ts';

declare global {
  interface Window {
    /** What the tests read. */
    tab: { client: HeraldClient; received: { id: string; topic: string; n: number }[]; statuses: string[] };
  }
}

const params = new URLSearchParams(location.search);
const client = createClient({
  url: params.get('hub') as string,
  topics: params.getAll('topic'),
  token: async () => (await fetch('/token')).text(),
  backoff: { initialMs: 100, maxMs: 1000 },
});
const received: Window['tab']['received'] = [];
const statuses: string[] = [];
client.on('*', (message: HeraldMessage) => {
  const data = message.data as { topic: string; n: number };
  received.push({ id: message.id, topic: data.topic, n: data.n });
});
client.onStatus((change) =>
  statuses.push(change.reason ? `${change.status}: ${change.reason}` : change.status),
);
window.tab = { client, received, statuses };
