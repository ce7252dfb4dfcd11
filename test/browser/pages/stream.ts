/**
 * A page with one Herald client, as an app would write it: the token comes from the app's own
 * `/token` endpoint before every connection; what arrives is shown in a list. The test reads
 * `window.herald` to see what the page saw.
 */
import {
  createClient,
  type GapInfo,
  type HeraldClient,
  type HeraldMessage,
} from '../../../src/client/index.ts';

export interface Received {
  readonly id: string;
  readonly type: string;
  readonly data: unknown;
}

declare global {
  interface Window {
    /** What the tests read. */
    herald: { client: HeraldClient; received: Received[]; statuses: string[]; gaps: GapInfo[] };
  }
}

const params = new URLSearchParams(location.search);

const client = createClient({
  url: params.get('hub') as string,
  topics: params.getAll('topic'),
  token: async () => (await fetch('/token')).text(),
  backoff: { initialMs: 100, maxMs: 1000 },
});

const received: Received[] = [];
const statuses: string[] = [];
const gaps: GapInfo[] = [];
const list = document.createElement('ol');
document.getElementById('root')?.append(list);

client.on('*', (message: HeraldMessage) => {
  received.push({ id: message.id, type: message.type, data: message.data });
  const item = document.createElement('li');
  item.textContent = `${message.id} ${JSON.stringify(message.data)}`;
  list.append(item);
});
client.onStatus((change) =>
  statuses.push(change.reason ? `${change.status}: ${change.reason}` : change.status),
);
client.onGap((gap) => gaps.push(gap));

window.herald = { client, received, statuses, gaps };
