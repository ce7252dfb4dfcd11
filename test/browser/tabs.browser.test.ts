import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { startMuxHub } from '../client/fixtures/mux-hub.ts';
import { type HubProcess, spawnHub } from '../helpers/nodes.ts';
import { bearer, SECRET, token } from '../helpers/tokens.ts';
import { launchBrowser, type PageServer, servePage, watchConsole } from './harness.ts';

/**
 * One stream for all tabs, in Chromium: 8 tabs (pages of one context, one origin) with different
 * topics hold one stream to the hub; the leader tab closes mid-stream and every other tab still
 * has every event of its topics once, in order; one tab's unsubscribe leaves the others alone.
 * Against the real hub when it has shared streams (`POST /v1/channels`), else against the small
 * hub of the client's tests, which speaks the same protocol.
 */

const TABS = 8;

interface Hub {
  readonly url: string;
  readonly real: boolean;
  publish(topic: string, values: readonly number[]): Promise<void>;
  /** The hub's own count of its open shared streams and their channels. */
  shared(): Promise<{ streams: number; channels: number }>;
  close(): Promise<void>;
}

/** Events carry their topic, so a tab on several topics tells them apart. */
async function realHub(origin: string): Promise<Hub | undefined> {
  const hub: HubProcess = await spawnHub(['--jwt-secret', SECRET, '--cors-origin', origin]);
  const probe = await fetch(`${hub.url}/v1/channels`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...bearer(await token({ subscribe: ['*'] })) },
    body: JSON.stringify({ connectionId: 'none', secret: 'none', action: 'close', channel: 'probe' }),
  });
  const { code } = (await probe.json().catch(() => ({}))) as { code?: string };
  if (probe.status === 404 && code !== 'connection-not-found') {
    await hub.kill();
    return undefined;
  }
  const publisher = await token({ publish: ['*'] });
  const admin = await token({ admin: true });
  return {
    url: hub.url,
    real: true,
    async publish(topic, values) {
      const response = await fetch(`${hub.url}/v1/publish`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...bearer(publisher) },
        body: JSON.stringify(values.map((n) => ({ topic, type: 'count', data: { topic, n } }))),
      });
      assert.equal(response.status, 202, await response.text());
    },
    async shared() {
      const response = await fetch(`${hub.url}/v1/stats`, { headers: bearer(admin) });
      return ((await response.json()) as { mux: { streams: number; channels: number } }).mux;
    },
    close: () => hub.kill(),
  };
}

async function fakeHub(): Promise<Hub> {
  const hub = await startMuxHub();
  return {
    url: hub.url,
    real: false,
    async publish(topic, values) {
      // The small hub's events are `{ n }`: the topic is added the way the real one's carry it.
      hub.publish(topic, values);
    },
    shared: async () => ({ streams: hub.streams(), channels: hub.channels() }),
    close: () => hub.close(),
  };
}

const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);
const received = (page: Page) => page.evaluate(() => window.tab.received);
const numbers = async (page: Page, topic?: string) =>
  (await received(page))
    .filter((event) => !topic || event.topic === topic || !event.topic)
    .map((event) => event.n);

async function until(check: () => Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('one stream for all tabs, in a real browser (Chromium)', () => {
  let browser: Browser;
  let server: PageServer;
  let hub: Hub;

  before(async () => {
    browser = await launchBrowser();
    server = await servePage('tabs.ts', { subscribe: ['*'] });
    hub = (await realHub(server.origin)) ?? (await fakeHub());
  });
  after(async () => {
    await browser?.close();
    await hub?.close();
    await server?.close();
  });

  /** Every GET /v1/events any tab of `context` makes. */
  const streamRequests = (context: BrowserContext) => {
    const urls: string[] = [];
    context.on('request', (request) => {
      if (request.method() === 'GET' && new URL(request.url()).pathname === '/v1/events')
        urls.push(request.url());
    });
    return urls;
  };

  const openTab = async (context: BrowserContext, topics: string[]) => {
    const page = await context.newPage();
    const console = watchConsole(page);
    const query = new URLSearchParams({ hub: hub.url });
    for (const topic of topics) query.append('topic', topic);
    await page.goto(`${server.origin}/?${query}`);
    await page.waitForFunction(() => window.tab.client.status === 'open', undefined, { timeout: 20_000 });
    return { page, console };
  };

  test(`${TABS} tabs hold 1 stream; each has exactly its events; the leader closes mid-stream and none is lost or repeated`, async () => {
    const context = await browser.newContext();
    const streams = streamRequests(context);
    const tabs: { page: Page; console: { errors: string[] } }[] = [];
    // The first tab is open before the others: it is the leader.
    for (let i = 0; i < TABS; i++) tabs.push(await openTab(context, [`topic-${i}`]));
    assert.equal(streams.length, 1, `one stream for ${TABS} tabs: ${streams.join(', ')}`);
    assert.match(streams[0] ?? '', /mux=1/);
    assert.deepEqual(
      await hub.shared(),
      { streams: 1, channels: TABS },
      'at the hub: 1 stream, a channel per tab',
    );

    for (let i = 0; i < TABS; i++) await hub.publish(`topic-${i}`, range(i * 100, i * 100 + 5));
    for (const [i, { page }] of tabs.entries()) {
      await until(async () => (await numbers(page)).length >= 5, `tab ${i}'s events`);
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
    for (const [i, { page }] of tabs.entries()) {
      assert.deepEqual(await numbers(page), range(i * 100, i * 100 + 5), `tab ${i} has exactly its events`);
    }

    // Publishing goes on while the leader tab closes.
    let n = 5;
    let publishing = true;
    const publisher = (async () => {
      while (publishing) {
        for (let i = 0; i < TABS; i++) await hub.publish(`topic-${i}`, [i * 100 + n]);
        n++;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    })();
    await new Promise((resolve) => setTimeout(resolve, 300));
    await tabs[0]?.page.close();
    await new Promise((resolve) => setTimeout(resolve, 1000));
    publishing = false;
    await publisher;
    const last = n;
    for (let i = 1; i < TABS; i++) {
      const page = tabs[i]?.page as Page;
      const expected = range(i * 100, i * 100 + last);
      await until(async () => (await numbers(page)).length >= expected.length, `every event of tab ${i}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.deepEqual(await numbers(page), expected, `tab ${i}: every event once, in order`);
    }
    assert.equal(streams.length, 2, 'one more stream: the next leader');
    await until(
      async () => JSON.stringify(await hub.shared()) === JSON.stringify({ streams: 1, channels: TABS - 1 }),
      `1 stream with ${TABS - 1} channels at the hub`,
    );
    for (const { console } of tabs.slice(1)) assert.deepEqual(console.errors, []);
    await context.close();
  });

  test("one tab's unsubscribe does not affect the others", async () => {
    const context = await browser.newContext();
    const streams = streamRequests(context);
    const a = await openTab(context, ['shared-topic', 'own-a']);
    const b = await openTab(context, ['shared-topic', 'own-b']);
    const c = await openTab(context, ['shared-topic']);
    await b.page.evaluate(() => window.tab.client.unsubscribe('shared-topic'));
    await hub.publish('shared-topic', [1]);
    await hub.publish('own-b', [2]);
    await until(async () => (await numbers(a.page)).length >= 1, 'the shared event in tab a');
    await until(async () => (await numbers(b.page)).length >= 1, 'its own event in tab b');
    await until(async () => (await numbers(c.page)).length >= 1, 'the shared event in tab c');
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.deepEqual(await numbers(a.page), [1]);
    assert.deepEqual(await numbers(b.page), [2]);
    assert.deepEqual(await numbers(c.page), [1]);
    assert.equal(streams.length, 1);
    for (const { console } of [a, b, c]) assert.deepEqual(console.errors, []);
    await context.close();
  });
});
