/**
 * A page with several Herald clients at once, as a dashboard of independent widgets would have:
 * over HTTP/1.1 a browser gives one origin 6 connections, over HTTP/2 one connection for all.
 * The test reads `window.many` to see what each client saw.
 */
import { createClient, type HeraldMessage } from '../../../src/client/index.ts';

declare global {
  interface Window {
    /** Per client: the ids it received, and its statuses. */
    many: { received: string[][]; statuses: string[][] };
  }
}

const params = new URLSearchParams(location.search);
const count = Number(params.get('streams') ?? '10');
const received: string[][] = [];
const statuses: string[][] = [];

for (let i = 0; i < count; i++) {
  const ids: string[] = [];
  const seen: string[] = [];
  received.push(ids);
  statuses.push(seen);
  const client = createClient({
    url: params.get('hub') as string,
    topics: params.getAll('topic'),
    token: async () => (await fetch('/token')).text(),
    // A stream held back by the browser's connection limit must stay a stream here.
    polling: 'never',
    // Each client its own stream: what this page shows is the browser's limit on them.
    shareTabs: false,
  });
  client.on('*', (message: HeraldMessage) => {
    ids.push(message.id);
  });
  client.onStatus((change) => seen.push(change.status));
}

window.many = { received, statuses };
