import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { BACKENDS, REDIS_URL } from '../helpers/backends.ts';
import { type HubProcess, spawnHub } from '../helpers/nodes.ts';
import { requireRedis } from '../helpers/redis-server.ts';
import { bearer, SECRET, token } from '../helpers/tokens.ts';
import { launchBrowser, type PageServer, servePage, watchConsole } from './harness.ts';
import type { Received as Seen } from './pages/stream.ts';

const redis = BACKENDS.find((backend) => backend.name === 'redis');

/** What the page's client has delivered to the app so far. */
const received = (page: Page) => page.evaluate(() => window.herald.received);

async function until(page: Page, condition: (seen: Seen[]) => boolean, what: string, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const seen = await received(page);
    if (condition(seen)) return seen;
    if (Date.now() > deadline) {
      const statuses = await page.evaluate(() => window.herald.statuses);
      throw new Error(
        `timed out waiting for ${what}; the page has ${seen.length} events; statuses: ${statuses}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function publish(hub: { url: string }, topic: string, values: readonly number[]): Promise<string[]> {
  const response = await fetch(`${hub.url}/v1/publish`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...bearer(await token({ publish: ['*'] })) },
    body: JSON.stringify(values.map((n) => ({ topic, type: 'count', data: { n } }))),
  });
  const body = (await response.json()) as { ids: string[] };
  assert.equal(response.status, 202, JSON.stringify(body));
  return body.ids;
}

const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);
const numbers = (seen: Seen[]) => seen.map((event) => (event.data as { n: number }).n);
const streamRequests = (page: Page) => {
  const urls: string[] = [];
  page.on('request', (request) => {
    if (request.method() === 'GET' && new URL(request.url()).pathname === '/v1/events')
      urls.push(request.url());
  });
  return urls;
};

describe('herald/client in a real browser (Chromium)', () => {
  let browser: Browser;
  const hubs: HubProcess[] = [];
  const pages: PageServer[] = [];
  const streams: string[] = [];

  before(async () => {
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await Promise.all(hubs.map((hub) => hub.kill()));
    await Promise.all(pages.map((page) => page.close()));
    for (const stream of streams) await redis?.drop(stream);
  });

  /** A page served from its own origin, and hub processes that allow that origin. */
  async function setup(hubArgs: string[] = [], tokenSeconds = 3600) {
    const server = await servePage('stream.ts', { subscribe: ['*'], expiresIn: tokenSeconds });
    pages.push(server);
    const args = ['--jwt-secret', SECRET, '--cors-origin', server.origin, ...hubArgs];
    const spawn = async (extra: string[] = []) => {
      const hub = await spawnHub([...args, ...extra]);
      hubs.push(hub);
      return hub;
    };
    const context = await browser.newContext();
    const page = await context.newPage();
    const console = watchConsole(page);
    return { server, spawn, page, console };
  }

  test('a page receives events, in order, and shows them', async () => {
    const { server, spawn, page, console } = await setup();
    const hub = await spawn();
    await page.goto(server.url({ hub: hub.url, topic: 'news' }));
    await page.waitForFunction(() => window.herald.client.status === 'open');
    const ids = await publish(hub, 'news', range(0, 25));
    await publish(hub, 'other', [99]);
    const seen = await until(page, (s) => s.length >= 25, '25 events');
    assert.deepEqual(
      seen.map((event) => event.id),
      ids,
    );
    assert.deepEqual(numbers(seen), range(0, 25));
    assert.equal(await page.locator('li').count(), 25);
    assert.deepEqual(console.errors, []);
    await page.context().close();
  });

  test('the hub is killed and restarted: the page misses nothing and sees nothing twice', async () => {
    await requireRedis(REDIS_URL);
    const stream = redis?.newStream() as string;
    streams.push(stream);
    const { server, spawn, page } = await setup(['--broker', REDIS_URL, '--stream', stream]);
    const [serving, other] = await Promise.all([spawn(), spawn()]);
    const requests = streamRequests(page);
    await page.goto(server.url({ hub: serving.url, topic: 'scores' }));
    await page.waitForFunction(() => window.herald.client.status === 'open');

    await publish(serving, 'scores', range(0, 10));
    await until(page, (s) => s.length === 10, 'the first 10 events');

    await serving.kill();
    // While the page's hub is down, the rest of the cluster goes on accepting events.
    await publish(other, 'scores', range(10, 20));
    await page.waitForFunction(() => window.herald.client.status === 'reconnecting');
    const port = new URL(serving.url).port;
    const restarted = await spawn(['--port', port]);
    await publish(restarted, 'scores', range(20, 30));

    const seen = await until(page, (s) => s.length >= 30, 'all 30 events');
    assert.deepEqual(numbers(seen), range(0, 30), 'every event once, in log order');
    assert.ok(requests.length >= 2, 'it reconnected');
    const resumed = new URL(requests.at(-1) as string);
    assert.equal(resumed.searchParams.get('access_token'), null, 'no token in the URL');
    await page.context().close();
  });

  test('a reloaded page resumes from its last id, not from the start nor from now', async () => {
    const { server, spawn, page, console } = await setup();
    const hub = await spawn();
    const url = server.url({ hub: hub.url, topic: 'feed' });
    await page.goto(url);
    await page.waitForFunction(() => window.herald.client.status === 'open');
    await publish(hub, 'feed', range(0, 5));
    await until(page, (s) => s.length === 5, 'the first 5 events');

    // Away from the page (its client is gone) while events are published, then back.
    await page.goto('about:blank');
    await publish(hub, 'feed', range(5, 12));
    await page.goto(url);
    let seen = await until(page, (s) => s.length >= 7, 'the 7 events published while away');
    assert.deepEqual(numbers(seen), range(5, 12));

    await page.reload();
    await page.waitForFunction(() => window.herald.client.status === 'open');
    await publish(hub, 'feed', [12]);
    seen = await until(page, (s) => s.length >= 1, 'the event after the reload');
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.deepEqual(numbers(await received(page)), [12], 'nothing replayed twice after a reload');
    assert.deepEqual(console.errors, []);
    await page.context().close();
  });

  test('a token that expires mid-stream is refreshed without losing an event', async () => {
    // Tokens live 3 s; the hub warns 2 s before expiry and closes the stream at expiry.
    const { server, spawn, page, console } = await setup(['--jwt-leeway', '0', '--reauth-lead', '2s'], 3);
    const hub = await spawn();
    const requests = streamRequests(page);
    await page.goto(server.url({ hub: hub.url, topic: 'ticks' }));
    await page.waitForFunction(() => window.herald.client.status === 'open');

    const total = 70;
    for (const n of range(0, total)) {
      await publish(hub, 'ticks', [n]);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const seen = await until(page, (s) => s.length >= total, `all ${total} events`);
    assert.deepEqual(numbers(seen), range(0, total));
    assert.ok(server.tokensIssued >= 3, `a fresh token per renewal (${server.tokensIssued} issued)`);
    assert.ok(requests.length >= 3, `a stream per token (${requests.length})`);
    const statuses: string[] = await page.evaluate(() => window.herald.statuses);
    assert.ok(!statuses.some((s) => s.startsWith('closed')), `never closed: ${statuses}`);
    assert.deepEqual(console.errors, []);
    await page.context().close();
  });

  test('topics added and removed on one open connection take effect at once', async () => {
    const { server, spawn, page, console } = await setup();
    const hub = await spawn();
    const requests = streamRequests(page);
    await page.goto(server.url({ hub: hub.url, topic: 'a' }));
    await page.waitForFunction(() => window.herald.client.connectionId !== undefined);
    const connectionId = await page.evaluate(() => window.herald.client.connectionId);

    await page.evaluate(() => window.herald.client.subscribe(['b', 'c']));
    await publish(hub, 'a', [1]);
    await publish(hub, 'b', [2]);
    await publish(hub, 'c', [3]);
    await until(page, (s) => s.length >= 3, 'events on a, b and c');

    await page.evaluate(() => window.herald.client.unsubscribe(['a', 'c']));
    await publish(hub, 'a', [4]);
    await publish(hub, 'c', [5]);
    await publish(hub, 'b', [6]);
    const seen = await until(page, (s) => s.length >= 4, 'the event on b');
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.deepEqual(numbers(await received(page)), [1, 2, 3, 6]);
    assert.equal(seen.length, 4);
    assert.equal(await page.evaluate(() => window.herald.client.connectionId), connectionId);
    assert.equal(requests.length, 1, 'one stream for the whole page');
    assert.deepEqual(console.errors, []);
    await page.context().close();
  });
});
