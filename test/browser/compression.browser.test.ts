import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { type HubProcess, killAllHubs, spawnHub } from '../helpers/nodes.ts';
import { bearer, SECRET, token } from '../helpers/tokens.ts';
import { launchBrowser, type PageServer, servePage, watchConsole } from './harness.ts';

/**
 * `herald serve --compression on` with a real browser: Chromium asks for gzip, deflate, br (and
 * zstd), gets gzip (the hub's first choice) and hands the page's Herald client each event as it is
 * published, decompressed; with EventSource as the transport too.
 */

const received = (page: Page) => page.evaluate(() => window.herald.received.map((event) => event.data));

async function until(page: Page, count: number, what: string): Promise<unknown[]> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const seen = await received(page);
    if (seen.length >= count) return seen;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; the page has ${seen.length}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function publish(hub: HubProcess, n: number): Promise<void> {
  const response = await fetch(`${hub.url}/v1/publish`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...bearer(await token({ publish: ['*'] })) },
    body: JSON.stringify({ topic: 'news', type: 'count', data: { n, headline: `headline number ${n}` } }),
  });
  assert.equal(response.status, 202, await response.text());
}

describe('compressed streams in a real browser (Chromium)', () => {
  let browser: Browser;
  let server: PageServer;
  let hub: HubProcess;

  before(async () => {
    browser = await launchBrowser();
    server = await servePage('stream.ts', { subscribe: ['*'], expiresIn: 3600 });
    hub = await spawnHub(['--jwt-secret', SECRET, '--cors-origin', server.origin, '--compression', 'on']);
  });
  after(async () => {
    await browser?.close();
    await server?.close();
    await killAllHubs();
  });

  test("the page's Herald client gets each event as it is published, over a gzip stream", async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    const console = watchConsole(page);
    const encodings: string[] = [];
    page.on('response', async (response) => {
      if (new URL(response.url()).pathname === '/v1/events') {
        const headers = await response.allHeaders();
        encodings.push(`${headers['content-encoding']} (vary: ${headers.vary})`);
      }
    });
    try {
      await page.goto(server.url({ hub: hub.url, topic: 'news' }));
      await page.waitForFunction(() => window.herald.client.status === 'open');
      for (let n = 1; n <= 5; n++) {
        await publish(hub, n);
        // Read before the next is published: nothing waits for a later event to be flushed.
        await until(page, n, `event ${n}`);
      }
      assert.deepEqual(
        (await received(page)).map((data) => (data as { n: number }).n),
        [1, 2, 3, 4, 5],
      );
      // CORS varies the answer by Origin too: both are named.
      assert.deepEqual(encodings, ['gzip (vary: Origin, Accept-Encoding)']);
      assert.deepEqual(console.errors, []);
    } finally {
      await context.close();
    }
  });

  test('EventSource reads a compressed stream as it arrives', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    try {
      await page.goto(server.url({ hub: hub.url, topic: 'unused' }));
      const url = `${hub.url}/v1/events?topic=news&access_token=${await token({ subscribe: ['*'] })}`;
      await page.evaluate((streamUrl) => {
        const seen: string[] = [];
        (window as unknown as { seen: string[] }).seen = seen;
        const source = new EventSource(streamUrl);
        source.addEventListener('count', (event) => seen.push((event as MessageEvent).data));
        source.addEventListener('herald.connected', () => seen.push('connected'));
      }, url);
      await page.waitForFunction(() => (window as unknown as { seen: string[] }).seen.length === 1);
      await publish(hub, 42);
      await page.waitForFunction(
        () => (window as unknown as { seen: string[] }).seen.length === 2,
        undefined,
        {
          timeout: 20_000,
        },
      );
      const seen = await page.evaluate(() => (window as unknown as { seen: string[] }).seen);
      assert.deepEqual(seen, ['connected', '{"n":42,"headline":"headline number 42"}']);
    } finally {
      await context.close();
    }
  });
});
