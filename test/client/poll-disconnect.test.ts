import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { createClient, HeraldClientError, type StatusChange } from '../../src/client/index.ts';
import { sleep, startHub, type TestHub } from '../helpers/server.ts';
import { bearer, SECRET, token } from '../helpers/tokens.ts';
import { recordingFetch, until } from './helpers.ts';

/**
 * herald/client fallen back to long polling, against a real hub: an admin's disconnect reaches it
 * as the poll's `disconnect`, heard as `herald.disconnect`. `reconnect: false` closes the client
 * for good; `reconnect: true` brings it back, polling.
 */

const auth = { jwt: { secrets: [SECRET] } };

/** What a proxy that does not pass streams answers them (200 text/plain): the client polls at once. */
const notAStream = (url: string) =>
  new URL(url).pathname === '/v1/events'
    ? new Response('', { status: 200, headers: { 'content-type': 'text/plain' } })
    : undefined;

/** Waits until the hub lists a poll of `subject` under way (`GET /v1/connections`). */
async function pollListed(hub: TestHub, admin: string, subject: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline) {
    const listed = await fetch(`${hub.url}/v1/connections?subject=${subject}`, { headers: bearer(admin) });
    const { connections } = (await listed.json()) as { connections: { transport: string }[] };
    if (connections.some((row) => row.transport === 'poll')) return;
    await sleep(20);
  }
  throw new Error(`no poll of ${subject} under way`);
}

describe('herald/client polling, disconnected by an admin', () => {
  const cleanups: (() => unknown)[] = [];
  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  const polling = async (sub: string, streams = notAStream, probeMs = 60_000) => {
    const hub: TestHub = await startHub({ auth });
    cleanups.push(() => hub.close());
    const recorded = recordingFetch(streams);
    const client = createClient({
      probeMs,
      url: hub.url,
      topics: ['room'],
      token: await token({ tenant: 'acme', sub, subscribe: ['room'] }),
      store: null,
      fetch: recorded.fetch,
      backoff: { initialMs: 20, maxMs: 100 },
    });
    cleanups.push(() => client.close());
    const changes: StatusChange[] = [];
    client.onStatus((change) => changes.push(change));
    const notices: unknown[] = [];
    client.on('herald.disconnect', (message) => notices.push(message.data));
    const admin = await token({ admin: true });
    const polls = () => recorded.calls.filter((call) => new URL(call.url).pathname === '/v1/events/poll');
    /** Waits until the hub holds one of the client's polls (a waiting one, not the first). */
    const pollUnderWay = () =>
      until(
        () => client.mode === 'poll' && client.status === 'open' && polls().length >= 2,
        5000,
        'polling',
      ).then(() => pollListed(hub, admin, sub));
    const disconnect = async (body: unknown) => {
      const response = await fetch(`${hub.url}/v1/connections/disconnect`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...bearer(admin) },
        body: JSON.stringify(body),
      });
      return (await response.json()) as { disconnected: number };
    };
    return { hub, client, changes, notices, polls, pollUnderWay, disconnect, recorded };
  };

  test('reconnect: false closes the polling client with the reason, and it does not poll again', async () => {
    const { hub, client, changes, notices, polls, pollUnderWay, disconnect } = await polling('kicked');
    await pollUnderWay();
    const ended = await disconnect({ subject: 'kicked', reason: 'account suspended', reconnect: false });
    assert.equal(ended.disconnected, 1);
    await until(() => client.status === 'closed', 5000, 'closed');
    const closed = changes.at(-1);
    assert.match(closed?.reason ?? '', /disconnected: account suspended/);
    assert.ok(closed?.error instanceof HeraldClientError);
    assert.equal(closed?.error?.code, 'disconnected');
    assert.deepEqual(notices, [{ reason: 'account suspended', reconnect: false }]);
    const made = polls().length;
    await sleep(1_500);
    assert.equal(polls().length, made, 'no poll after the close');
    assert.equal(client.status, 'closed');
    assert.equal((await hub.herald.stats()).connections.total, 0);
  });

  test('reconnect: true: the polling client hears it and comes back, polling', async () => {
    const { hub, client, notices, polls, pollUnderWay, disconnect } = await polling('bounced');
    const messages: unknown[] = [];
    client.on('message', (message) => messages.push(message.data));
    await pollUnderWay();
    const before = polls().length;
    assert.equal((await disconnect({ subject: 'bounced', reason: 'rebalancing' })).disconnected, 1);
    await until(() => notices.length === 1, 5000, 'the notice');
    assert.deepEqual(notices, [{ reason: 'rebalancing', reconnect: true }]);
    await until(() => polls().length > before, 5000, 'a poll again');
    await until(() => client.status === 'open', 5000, 'open again');
    assert.equal(client.mode, 'poll');
    // And it still gets what is published.
    await pollUnderWay();
    const publisher = await token({ tenant: 'acme', publish: ['room'] });
    assert.equal((await hub.publish({ topic: 'room', data: 'back' }, bearer(publisher))).status, 202);
    await until(() => messages.includes('back'), 5000, 'the event');
    assert.equal(client.status, 'open');
  });
});

describe('herald/client polling, disconnected while it probes for streaming', () => {
  const cleanups: (() => unknown)[] = [];
  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  test('reconnect: true with a probe under way: the client polls again (the probe does not carry on)', async () => {
    const hub: TestHub = await startHub({ auth });
    cleanups.push(() => hub.close());
    // The first stream is refused by "a proxy" (polling at once); the probes after it are held
    // open without a byte, as a buffering proxy does, until the client gives them up.
    let streams = 0;
    const recorded = recordingFetch((url, init) => {
      if (new URL(url).pathname !== '/v1/events') return undefined;
      if (streams++ === 0) return notAStream(url);
      const body = new ReadableStream<Uint8Array>({
        start(controller) {
          init?.signal?.addEventListener('abort', () => controller.error(new Error('aborted')));
        },
      });
      return new Response(body, { status: 200, headers: { 'content-type': 'text/event-stream' } });
    });
    const client = createClient({
      url: hub.url,
      topics: ['room'],
      token: await token({ tenant: 'acme', sub: 'prober', subscribe: ['room'] }),
      store: null,
      fetch: recorded.fetch,
      probeMs: 50,
      backoff: { initialMs: 20, maxMs: 100 },
    });
    cleanups.push(() => client.close());
    const polls = () => recorded.calls.filter((call) => new URL(call.url).pathname === '/v1/events/poll');
    await until(
      () => client.mode === 'poll' && streams >= 2 && polls().length >= 2,
      5000,
      'a probe under way',
    );
    const admin = await token({ admin: true });
    await pollListed(hub, admin, 'prober');
    const before = polls().length;
    const response = await fetch(`${hub.url}/v1/connections/disconnect`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...bearer(admin) },
      body: JSON.stringify({ subject: 'prober', reason: 'rebalancing' }),
    });
    assert.equal(((await response.json()) as { disconnected: number }).disconnected, 1);
    await until(() => polls().length > before, 5000, 'a poll again');
    await until(() => client.status === 'open', 5000, 'open again');
    assert.equal(client.mode, 'poll');
  });
});
