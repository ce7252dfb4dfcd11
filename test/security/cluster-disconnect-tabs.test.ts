import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { LockServer } from '../client/fixtures/tab-locks.ts';
import { sleep, startHub, type TestHub } from '../helpers/server.ts';

/**
 * `herald.disconnect` with `reconnect: false` to tabs that share one stream (the real hub's mux,
 * worker threads as tabs, as test/client/tab-share.test.ts plays them): every tab's client stops,
 * and none comes back on the shared stream.
 */

const locks = new LockServer();
const workers: Worker[] = [];
let hub: TestHub | undefined;
after(async () => {
  await Promise.all(workers.map((worker) => worker.terminate()));
  await hub?.close();
});

function openTab(url: string, topics: string[]) {
  const worker = new Worker(new URL('../client/fixtures/tab.ts', import.meta.url), {
    workerData: { url, topics, shareTabs: true },
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
  const state = () =>
    new Promise<{ status: string; connectionId?: string }>((resolve) => {
      waiting.set('state', (reply) => resolve(reply.value as { status: string; connectionId?: string }));
      worker.postMessage({ call: 'state' });
    });
  return { ready, state };
}

async function until(check: () => Promise<boolean>, what: string, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

test('two tabs on one shared stream: reconnect:false stops both, and no stream comes back', {
  todo:
    '(fails in about half the runs) the leader tab, told first, shuts its client and leave() stops the mux (src/client/tab-share.ts) ' +
    "before the other tab's herald.disconnect is forwarded: the other tab hears only that the leader left, and reconnects " +
    'with the same token (documented in docs/client.md)',
}, async () => {
  // Open development mode: the tabs' fixture token is not checked, and every caller is admin.
  hub = await startHub({});
  const url = hub.url;
  const tabs = [openTab(url, ['room']), openTab(url, ['room'])];
  await Promise.all(tabs.map((tab) => tab.ready));
  await until(
    async () => (await Promise.all(tabs.map((tab) => tab.state()))).every((s) => s.status === 'open'),
    'both tabs open',
  );
  const herald = hub.herald;
  const ended = await fetch(`${url}/v1/connections/disconnect`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ tenant: '*', reason: 'banned', reconnect: false }),
  });
  const answer = (await ended.json()) as { disconnected: number };
  assert.equal(ended.status, 200);
  assert.ok(answer.disconnected >= 2, JSON.stringify(answer));
  await until(
    async () => (await Promise.all(tabs.map((tab) => tab.state()))).every((s) => s.status === 'closed'),
    'both tabs closed',
  );
  await sleep(1_500);
  const channels = [...herald.hub.streams()].length;
  assert.equal(channels, 0, 'no channel came back');
});

test('the follower tab alone told reconnect:false stops; the leader carries on', async () => {
  const own = await startHub({});
  try {
    const tabs = [openTab(own.url, ['room']), openTab(own.url, ['room'])];
    await Promise.all(tabs.map((tab) => tab.ready));
    await until(
      async () => (await Promise.all(tabs.map((tab) => tab.state()))).every((s) => s.status === 'open'),
      'both tabs open',
    );
    const follower = (await (tabs[1] as ReturnType<typeof openTab>).state()).connectionId;
    const ended = await fetch(`${own.url}/v1/connections/disconnect`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ id: follower, reason: 'banned', reconnect: false }),
    });
    assert.equal(ended.status, 200);
    await until(
      async () => (await (tabs[1] as ReturnType<typeof openTab>).state()).status === 'closed',
      'the follower closed',
    );
    await sleep(1_000);
    assert.equal((await (tabs[0] as ReturnType<typeof openTab>).state()).status, 'open');
    assert.equal([...own.herald.hub.streams()].length, 1);
  } finally {
    await own.close();
  }
});
