import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { muxFigures } from '../../src/http/mux.ts';
import { LockServer } from '../client/fixtures/tab-locks.ts';
import { sleep, startHub, type TestHub } from '../helpers/server.ts';

/**
 * `herald.disconnect` to tabs that share one stream (the real hub's mux, worker threads as tabs,
 * as test/client/tab-share.test.ts plays them). With `reconnect: false` every tab it names stops,
 * and none comes back on the shared stream; the tabs it does not name carry on, on the same
 * stream, even when the tab holding it was named. With `reconnect: true` every tab comes back.
 */

const locks = new LockServer();
const workers: Worker[] = [];
const hubs: TestHub[] = [];
after(async () => {
  await Promise.all(workers.map((worker) => worker.terminate()));
  await Promise.all(hubs.map((hub) => hub.close()));
});

interface TabState {
  status: string;
  connectionId?: string;
  received: { id: string; n: number }[];
}

function openTab(url: string, topics: string[], relayDelayMs?: number) {
  const worker = new Worker(new URL('../client/fixtures/tab.ts', import.meta.url), {
    workerData: { url, topics, shareTabs: true, relayDelayMs },
  });
  workers.push(worker);
  locks.serve(worker);
  const waiting = new Map<string, (reply: { value?: unknown; error?: string }) => void>();
  worker.on('message', (reply: { call?: string; value?: unknown; error?: string }) => {
    if (reply.call === undefined) return;
    waiting.get(reply.call)?.(reply);
    waiting.delete(reply.call);
  });
  const ready = new Promise<void>((resolve) => waiting.set('ready', () => resolve()));
  const call = (name: string) =>
    new Promise<unknown>((resolve) => {
      waiting.set(name, (reply) => resolve(reply.value));
      worker.postMessage({ call: name });
    });
  return { ready, state: () => call('state') as Promise<TabState>, close: () => call('close') };
}

type Tab = ReturnType<typeof openTab>;

async function until(check: () => Promise<boolean> | boolean, what: string, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

const all = async (tabs: Tab[], check: (state: TabState) => boolean) =>
  (await Promise.all(tabs.map((tab) => tab.state()))).every(check);

/** The first tab is open before the second starts: it holds the lock, and the shared stream. */
async function leaderAndFollower(url: string, followerRelayDelayMs?: number): Promise<[Tab, Tab]> {
  const leader = openTab(url, ['room']);
  await leader.ready;
  await until(async () => (await leader.state()).status === 'open', 'the first tab open');
  const follower = openTab(url, ['room'], followerRelayDelayMs);
  await follower.ready;
  await until(() => all([leader, follower], (s) => s.status === 'open'), 'both tabs open');
  return [leader, follower];
}

async function disconnect(url: string, body: Record<string, unknown>): Promise<{ disconnected: number }> {
  const answer = await fetch(`${url}/v1/connections/disconnect`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ reason: 'banned', ...body }),
  });
  assert.equal(answer.status, 200);
  return (await answer.json()) as { disconnected: number };
}

/**
 * The tabs' clients expect a heartbeat within 2 s (fixtures/tab.ts: `heartbeatMs: 2000`, silence
 * for 2.5 times that reopens a channel): the hub sends one every second, so a quiet shared stream
 * is never taken for a dead one mid-test.
 */
const HUB = { heartbeatMs: 1_000 };

test('two tabs on one shared stream: reconnect:false stops both, and no stream comes back', async () => {
  // Open development mode: the tabs' fixture token is not checked, and every caller is admin.
  const hub = await startHub(HUB);
  hubs.push(hub);
  const tabs = [openTab(hub.url, ['room']), openTab(hub.url, ['room'])];
  await Promise.all(tabs.map((tab) => tab.ready));
  await until(() => all(tabs, (s) => s.status === 'open'), 'both tabs open');
  const answer = await disconnect(hub.url, { tenant: '*', reconnect: false });
  assert.ok(answer.disconnected >= 2, JSON.stringify(answer));
  await until(() => all(tabs, (s) => s.status === 'closed'), 'both tabs closed');
  // The shared stream ends too, once no tab has a channel on it.
  await until(() => muxFigures(hub.herald.hub).streams === 0, 'the shared stream closed');
  await sleep(1_500);
  assert.equal([...hub.herald.hub.streams()].length, 0, 'no channel came back');
  assert.deepEqual(muxFigures(hub.herald.hub), { streams: 0, channels: 0 }, 'no shared stream came back');
});

test('reconnect:false reaches a tab whose relayed messages lag behind its lock grant', async () => {
  const hub = await startHub(HUB);
  hubs.push(hub);
  // What the leader relays reaches the follower 300 ms late: had the leader let the lock go as
  // soon as it had relayed the notices, the follower would take it over and give up its channel
  // as the departed leader's before hearing its own notice, and come back.
  const tabs = await leaderAndFollower(hub.url, 300);
  await disconnect(hub.url, { tenant: '*', reconnect: false });
  await until(() => all(tabs, (s) => s.status === 'closed'), 'both tabs closed');
  await until(() => muxFigures(hub.herald.hub).streams === 0, 'the shared stream closed');
  await sleep(1_500);
  assert.equal([...hub.herald.hub.streams()].length, 0, 'no channel came back');
  assert.deepEqual(muxFigures(hub.herald.hub), { streams: 0, channels: 0 }, 'no shared stream came back');
});

test('the follower tab alone told reconnect:false stops; the leader carries on', async () => {
  const hub = await startHub(HUB);
  hubs.push(hub);
  const [leader, follower] = await leaderAndFollower(hub.url);
  const { connectionId } = await follower.state();
  await disconnect(hub.url, { id: connectionId, reconnect: false });
  await until(async () => (await follower.state()).status === 'closed', 'the follower closed');
  await sleep(1_000);
  assert.equal((await leader.state()).status, 'open');
  assert.equal([...hub.herald.hub.streams()].length, 1);
});

test('the leader tab alone told reconnect:false stops; the follower carries on over the same shared stream', async () => {
  const hub = await startHub(HUB);
  hubs.push(hub);
  const [leader, follower] = await leaderAndFollower(hub.url);
  const before = await follower.state();
  await disconnect(hub.url, { id: (await leader.state()).connectionId, reconnect: false });
  await until(async () => (await leader.state()).status === 'closed', 'the leader tab closed');
  await sleep(1_000);
  // The tab whose client closed keeps the shared stream for the other tab: no handover, no
  // reconnection; the follower's channel is the one it had.
  const after = await follower.state();
  assert.equal(after.status, 'open');
  assert.equal(after.connectionId, before.connectionId);
  assert.deepEqual(muxFigures(hub.herald.hub), { streams: 1, channels: 1 });
  assert.equal((await hub.publish({ topic: 'room', data: { n: 1 } })).status, 202);
  await until(async () => (await follower.state()).received.length === 1, 'the event in the follower');
  // Its last channel closed, the stream is no longer needed: the tab holding it closes it.
  await follower.close();
  await until(() => muxFigures(hub.herald.hub).streams === 0, 'the shared stream closed');
});

test('reconnect:true: both tabs come back, on one shared stream', async () => {
  const hub = await startHub(HUB);
  hubs.push(hub);
  const tabs = await leaderAndFollower(hub.url);
  const before = await Promise.all(tabs.map(async (tab) => (await tab.state()).connectionId));
  const answer = await disconnect(hub.url, { tenant: '*', reconnect: true });
  assert.equal(answer.disconnected, 2, JSON.stringify(answer));
  await until(async () => {
    const states = await Promise.all(tabs.map((tab) => tab.state()));
    return states.every(
      (s, i) => s.status === 'open' && s.connectionId !== undefined && s.connectionId !== before[i],
    );
  }, 'both tabs open again, on new channels');
  await until(() => muxFigures(hub.herald.hub).channels === 2, 'two channels');
  assert.deepEqual(muxFigures(hub.herald.hub), { streams: 1, channels: 2 });
  assert.equal([...hub.herald.hub.streams()].length, 2);
  assert.equal((await hub.publish({ topic: 'room', data: { n: 1 } })).status, 202);
  await until(() => all(tabs, (s) => s.received.length === 1), 'the event in both tabs');
});
