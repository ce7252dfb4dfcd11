import assert from 'node:assert/strict';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, test } from 'node:test';
import { EventSource } from 'eventsource';
import { createClient, type HistoryInfo, memoryStore } from '../../src/client/index.ts';
import { startHub } from '../helpers/server.ts';
import { record, recordingFetch, until, untilStatus } from './helpers.ts';

/**
 * A small hub that speaks the history protocol exactly, and nothing else: a log of events with ids
 * `1`, `2`, …; a stream or a first poll with `rewind=N` (and no id to resume from) is given the
 * last N, then `herald.history` with the resume point; with an id, the events after it. It lets a
 * test cut a history stream where it wants, which a real hub does not.
 */
interface HistoryHub {
  readonly url: string;
  /** Every request for /v1/events and /v1/events/poll: its query and its Last-Event-ID. */
  readonly requests: { path: string; query: URLSearchParams; lastEventId: string | undefined }[];
  /** Appends an event to the log and writes it to every open stream. */
  publish(data: string): void;
  /** Cuts the next history stream after this many history events (before `herald.history`). */
  dropHistoryAfter: number | undefined;
  /** Answers streams with 200 text/plain, as a proxy that breaks them: the client long-polls. */
  noStreams: boolean;
  /** Ends every open stream (as a hub's `maxLifetime` does). */
  endStreams(): void;
  close(): Promise<void>;
}

const frame = (type: string, data: string, id?: string) =>
  `${id === undefined ? '' : `id: ${id}\n`}event: ${type}\ndata: ${data}\n\n`;

async function startHistoryHub(): Promise<HistoryHub> {
  const log: string[] = [];
  const open = new Set<ServerResponse>();
  const after = (id: string | null | undefined) =>
    id ? log.map((_, i) => i).filter((i) => i + 1 > +id) : [];
  let connections = 0;
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const query = url.searchParams;
    const header = req.headers['last-event-id'];
    const resumeFrom =
      (typeof header === 'string' ? header : undefined) ??
      query.get('lastEventId') ??
      query.get('after') ??
      undefined;
    hub.requests.push({ path: url.pathname, query, lastEventId: resumeFrom });
    const rewind = resumeFrom === undefined && query.has('rewind') ? Number(query.get('rewind')) : undefined;
    const history = rewind === undefined ? [] : log.map((_, i) => i).slice(-rewind);
    if (url.pathname === '/v1/events/poll') {
      const indexes = rewind === undefined ? after(resumeFrom) : history;
      const last = log.length ? String(log.length) : '0';
      const answer = () =>
        res.end(
          JSON.stringify({
            events: indexes.map((i) => ({ id: String(i + 1), type: 'message', data: log[i] })),
            lastEventId: indexes.length || rewind !== undefined ? last : (resumeFrom ?? last),
            ...(rewind === undefined
              ? {}
              : { history: { kind: 'rewind', events: indexes.length, complete: true } }),
          }),
        );
      res.writeHead(200, { 'content-type': 'application/json' });
      // Nothing new: the poll waits a little, as the hub's would (shortened for the test).
      if (indexes.length || rewind !== undefined || query.get('wait') === '0') answer();
      else setTimeout(answer, 100);
      return;
    }
    if (hub.noStreams) {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('not a stream');
      return;
    }
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    const connectionId = `c${++connections}`;
    const connected = (id: string | undefined, kind?: string) =>
      frame(
        'herald.connected',
        JSON.stringify({
          connectionId,
          lastEventId: id ?? '',
          secret: 's',
          ...(kind ? { history: kind } : {}),
        }),
        id,
      );
    if (rewind === undefined) {
      const from = resumeFrom ?? String(log.length);
      res.write(connected(from));
      for (const i of after(from)) res.write(frame('message', log[i] as string, String(i + 1)));
    } else {
      res.write(connected(undefined, 'rewind'));
      const cut = hub.dropHistoryAfter;
      for (const [n, i] of history.entries()) {
        if (n === cut) {
          hub.dropHistoryAfter = undefined;
          // Once what was written has reached the client: the connection breaks, no clean end.
          setTimeout(() => res.destroy(), 50);
          return;
        }
        res.write(frame('message', log[i] as string, String(i + 1)));
      }
      const payload = { kind: 'rewind', events: history.length, complete: true };
      res.write(frame('herald.history', JSON.stringify(payload), String(log.length)));
    }
    open.add(res);
    res.on('close', () => open.delete(res));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const hub: HistoryHub = {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests: [],
    dropHistoryAfter: undefined,
    noStreams: false,
    publish(data) {
      log.push(data);
      for (const res of open) res.write(frame('message', data, String(log.length)));
    },
    endStreams() {
      for (const res of open) res.end();
    },
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
  return hub;
}

/** Whether the real hub serves history yet: a stream asked for `rewind=1` says so in `herald.connected`. */
async function probeHistory(): Promise<boolean> {
  const hub = await startHub();
  try {
    const response = await fetch(`${hub.url}/v1/events?topic=probe&rewind=1`);
    if (!response.ok || !response.body) return false;
    const reader = response.body.getReader();
    let text = '';
    while (!text.includes('\n\n')) {
      const { done, value } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    await reader.cancel();
    return /"history":"rewind"/.test(text);
  } finally {
    await hub.close();
  }
}
const hubHasHistory = await probeHistory();

describe('herald/client starting from history', () => {
  const cleanups: (() => unknown)[] = [];
  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  const setUp = async (events: number) => {
    const hub = await startHistoryHub();
    for (let i = 1; i <= events; i++) hub.publish(`e${i}`);
    cleanups.push(() => hub.close());
    return hub;
  };
  const streams = (hub: HistoryHub) => hub.requests.filter((request) => request.path === '/v1/events');

  test('rewind is asked for once: history, onHistory with its resume point, then Last-Event-ID on reconnection', async () => {
    const hub = await setUp(5);
    const client = createClient({
      url: hub.url,
      topics: ['t'],
      rewind: 3,
      store: null,
      backoff: { initialMs: 10 },
    });
    cleanups.push(() => client.close());
    const seen = record(client);
    const histories: { info: HistoryInfo; seen: number; lastEventId: string | undefined }[] = [];
    client.onHistory((info) =>
      histories.push({ info, seen: seen.messages.length, lastEventId: client.lastEventId }),
    );
    await until(() => histories.length === 1, 5000, 'herald.history');
    assert.deepEqual(seen.data(), ['e3', 'e4', 'e5']);
    assert.deepEqual(histories, [
      { info: { kind: 'rewind', events: 3, complete: true }, seen: 3, lastEventId: '5' },
    ]);
    const [first] = streams(hub);
    assert.equal(first?.query.get('rewind'), '3');
    assert.equal(first?.lastEventId, undefined);

    hub.publish('e6');
    await until(() => seen.messages.length === 4, 5000, 'the live event');
    hub.endStreams();
    await until(() => streams(hub).length === 2, 5000, 'a reconnection');
    const second = streams(hub)[1];
    assert.equal(second?.lastEventId, '6', 'resumes from the last event');
    assert.equal(second?.query.has('rewind'), false, 'no history asked for again');
    await untilStatus(client, 'open');
    hub.publish('e7');
    await until(() => seen.messages.length === 5, 5000, 'the event after the reconnection');
    assert.deepEqual(seen.data(), ['e3', 'e4', 'e5', 'e6', 'e7']);
    assert.equal(histories.length, 1);
  });

  test('since and snapshot go on the first connection as given (a Date as ISO)', async () => {
    const hub = await setUp(0);
    const when = new Date('2025-05-01T10:00:00.000Z');
    const a = createClient({ url: hub.url, topics: ['t'], since: when, store: null });
    const b = createClient({ url: hub.url, topics: ['t'], since: '5m', snapshot: 'latest', store: null });
    const c = createClient({ url: hub.url, topics: ['t'], since: 1_746_093_600_000, store: null });
    cleanups.push(
      () => a.close(),
      () => b.close(),
      () => c.close(),
    );
    await until(() => streams(hub).length === 3, 5000, 'three streams');
    const queries = streams(hub).map((request) => Object.fromEntries(request.query));
    assert.deepEqual(queries.map(({ since, snapshot }) => [since, snapshot]).sort(), [
      ['1746093600000', undefined],
      ['2025-05-01T10:00:00.000Z', undefined],
      ['5m', 'latest'],
    ]);
  });

  test('a stored id is not used when rewind or snapshot is set: a reloaded page gets its state again', async () => {
    const hub = await setUp(5);
    const store = memoryStore();
    store.set('page', '2');
    const resumed = createClient({ url: hub.url, topics: ['t'], store, storeKey: 'page' });
    cleanups.push(() => resumed.close());
    await until(() => streams(hub).length === 1, 5000, 'the resumed stream');
    assert.equal(streams(hub)[0]?.lastEventId, '2', 'without history options, the stored id is resumed from');
    resumed.close();

    for (const history of [{ rewind: 2 }, { snapshot: 'latest' as const }]) {
      store.set('page', '2');
      const before = streams(hub).length;
      const client = createClient({ url: hub.url, topics: ['t'], store, storeKey: 'page', ...history });
      cleanups.push(() => client.close());
      await until(() => streams(hub).length === before + 1, 5000, 'the stream');
      const request = streams(hub)[before];
      assert.equal(request?.lastEventId, undefined, JSON.stringify(history));
      client.close();
    }
    // After its history, the page's resume point is stored as usual.
    const client = createClient({ url: hub.url, topics: ['t'], store, storeKey: 'page', rewind: 2 });
    cleanups.push(() => client.close());
    await new Promise<void>((resolve) => client.onHistory(() => resolve()));
    assert.equal(store.get('page'), '5');
  });

  test('a drop after herald.connected and before herald.history: the history is asked for again, no handler sees an event twice, onHistory once', async () => {
    const hub = await setUp(6);
    hub.dropHistoryAfter = 2;
    const client = createClient({
      url: hub.url,
      topics: ['t'],
      rewind: 4,
      store: null,
      backoff: { initialMs: 10, maxMs: 20 },
    });
    cleanups.push(() => client.close());
    const seen = record(client);
    const histories: HistoryInfo[] = [];
    client.onHistory((info) => histories.push(info));
    let beforeTheDrop: unknown[] | undefined;
    client.onStatus(({ status }) => {
      if (status === 'reconnecting') beforeTheDrop ??= seen.data();
    });
    await until(() => histories.length === 1, 5000, 'herald.history');
    assert.deepEqual(beforeTheDrop, ['e3', 'e4'], 'the first stream delivered part of the history');
    const [first, second] = streams(hub);
    assert.equal(streams(hub).length, 2, 'one reconnection');
    assert.equal(first?.query.get('rewind'), '4');
    assert.equal(second?.query.get('rewind'), '4', 'the history asked for again');
    assert.equal(second?.lastEventId, undefined, 'not resumed from an event of the history');
    assert.deepEqual(seen.data(), ['e3', 'e4', 'e5', 'e6'], 'each once, in order');
    assert.equal(client.lastEventId, '6');
    hub.publish('e7');
    await until(() => seen.messages.length === 5, 5000, 'live');
    assert.equal(histories.length, 1);
  });

  test('long polling: the first poll asks for the history, its batch calls onHistory, the next polls go on from lastEventId', async () => {
    const hub = await setUp(5);
    hub.noStreams = true;
    const client = createClient({ url: hub.url, topics: ['t'], rewind: 2, store: null, probeMs: 60_000 });
    cleanups.push(() => client.close());
    const seen = record(client);
    const histories: HistoryInfo[] = [];
    client.onHistory((info) => histories.push(info));
    await until(() => histories.length === 1, 5000, 'the history');
    assert.equal(client.mode, 'poll');
    assert.deepEqual(seen.data(), ['e4', 'e5']);
    assert.deepEqual(histories, [{ kind: 'rewind', events: 2, complete: true }]);
    hub.publish('e6');
    await until(() => seen.messages.length === 3, 5000, 'the polled event');
    const polls = hub.requests.filter((request) => request.path === '/v1/events/poll');
    assert.equal(polls[0]?.query.get('rewind'), '2');
    assert.equal(polls[0]?.lastEventId, undefined);
    for (const later of polls.slice(1)) {
      assert.equal(later.query.has('rewind'), false);
      assert.match(later.lastEventId ?? '', /^[56]$/);
    }
    assert.equal(histories.length, 1);
  });

  test('transport "eventsource": the history in the URL, herald.history listened to, then the resume point in the URL', async () => {
    const hub = await setUp(4);
    const client = createClient({
      url: hub.url,
      topics: ['t'],
      rewind: 2,
      store: null,
      transport: 'eventsource',
      EventSource: EventSource as unknown as typeof globalThis.EventSource,
      backoff: { initialMs: 10 },
    });
    cleanups.push(() => client.close());
    const seen = record(client);
    const histories: HistoryInfo[] = [];
    client.onHistory((info) => histories.push(info));
    await until(() => histories.length === 1, 5000, 'herald.history');
    assert.deepEqual(seen.data(), ['e3', 'e4']);
    assert.equal(client.lastEventId, '4');
    hub.endStreams();
    await until(() => streams(hub).length === 2, 5000, 'a reconnection');
    const second = streams(hub)[1];
    assert.equal(second?.lastEventId, '4');
    assert.equal(second?.query.has('rewind'), false);
  });

  test('against the real hub: rewind, then live, with no gap and no duplicate', {
    skip: !hubHasHistory,
  }, async () => {
    const hub = await startHub({ maxLifetimeMs: 600, retryMs: 30 });
    cleanups.push(() => hub.close());
    for (let i = 1; i <= 5; i++) await hub.publish({ topic: 'h', data: `e${i}` });
    await hub.publish({ topic: 'other', data: 'not this topic' });
    const fetcher = recordingFetch();
    const client = createClient({
      url: hub.url,
      topics: ['h'],
      rewind: 3,
      store: null,
      fetch: fetcher.fetch,
    });
    cleanups.push(() => client.close());
    const seen = record(client);
    const histories: HistoryInfo[] = [];
    client.onHistory((info) => histories.push(info));
    await until(() => histories.length === 1, 5000, 'herald.history');
    assert.deepEqual(seen.data(), ['e3', 'e4', 'e5']);
    assert.deepEqual(histories, [{ kind: 'rewind', events: 3, complete: true }]);
    assert.ok(client.lastEventId, 'the resume point');
    await hub.publish({ topic: 'h', data: 'e6' });
    await until(() => seen.messages.length === 4, 5000, 'live');
    // The stream's lifetime ends: the next one resumes, and asks for no history.
    await until(() => fetcher.streams().length === 2, 5000, 'a reconnection');
    const second = fetcher.streams()[1];
    assert.equal(second?.headers.get('last-event-id'), client.lastEventId);
    assert.equal(new URL(second?.url as string).searchParams.has('rewind'), false);
    await untilStatus(client, 'open');
    await hub.publish({ topic: 'h', data: 'e7' });
    await until(() => seen.messages.length === 5, 5000, 'after the reconnection');
    assert.deepEqual(seen.data(), ['e3', 'e4', 'e5', 'e6', 'e7']);
    assert.equal(histories.length, 1);
  });
});
