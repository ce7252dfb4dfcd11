import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { Browser } from 'playwright-core';
import { type HubProcess, spawnHub } from '../helpers/nodes.ts';
import { bearer, SECRET, token } from '../helpers/tokens.ts';
import { artifactPath, launchBrowser, type PageServer, servePage, watchConsole } from './harness.ts';

let browser: Browser;
let hub: HubProcess;
let server: PageServer;
let tile: PageServer;

before(async () => {
  browser = await launchBrowser();
  server = await servePage('hooks.tsx', { subscribe: ['feed'] });
  tile = await servePage('dealer-tile-hooks.tsx', { subscribe: ['dealers/{dealerId}'] });
  hub = await spawnHub([
    '--jwt-secret',
    SECRET,
    '--cors-origin',
    server.origin,
    '--cors-origin',
    tile.origin,
  ]);
});
after(async () => {
  await browser?.close();
  await hub?.kill();
  await server?.close();
  await tile?.close();
});

async function publishEvents(events: readonly unknown[]): Promise<void> {
  const response = await fetch(`${hub.url}/v1/publish`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...bearer(await token({ publish: ['feed', 'dealers/{id}'] })),
    },
    body: JSON.stringify(events),
  });
  assert.equal(response.status, 202, await response.text());
}

const publish = (...numbers: number[]) =>
  publishEvents(numbers.map((n) => ({ topic: 'feed', type: 'x', data: { n } })));

/** Streams open on the hub now, and opened since it started. */
async function streams(): Promise<{ open: number; opened: number }> {
  const stats = await (
    await fetch(`${hub.url}/v1/stats`, { headers: bearer(await token({ admin: true })) })
  ).json();
  return { open: stats.connections.total, opened: stats.events.opened };
}

test('recent events, clear(), status and reconnect() on a page under StrictMode', async () => {
  const page = await browser.newPage({ viewport: { width: 800, height: 600 } });
  const console = watchConsole(page);
  let requests = 0;
  page.on('request', (request) => {
    if (new URL(request.url()).pathname === '/v1/events') requests++;
  });
  await page.goto(server.url({ hub: hub.url }));
  await page.locator('[data-status="open"]').waitFor();
  const text = (id: string) => page.getByTestId(id).textContent();
  const items = () => page.getByTestId('events').locator('li').allTextContents();
  assert.equal(await text('statuses'), 'connecting → open');
  assert.deepEqual(await streams(), { open: 1, opened: 1 }, 'StrictMode mounts twice, one stream opens');
  assert.equal(requests, 1);

  // The last three of five, newest last.
  await publish(1, 2, 3, 4, 5);
  await page.getByTestId('events').filter({ hasText: '5' }).waitFor();
  assert.deepEqual(await items(), ['3', '4', '5']);
  await page.screenshot({ path: artifactPath('hooks-recent-events.png') });

  await page.getByTestId('clear').click();
  await page.getByTestId('events').locator('li').first().waitFor({ state: 'detached' });
  assert.deepEqual(await items(), []);
  await publish(6);
  await page.getByTestId('events').filter({ hasText: '6' }).waitFor();
  assert.deepEqual(await items(), ['6']);

  // reconnect(): a new stream at once, the old one closed, the status shown as it changes.
  const before = await text('connection');
  assert.ok(before);
  await page.getByTestId('reconnect').click();
  await page.getByTestId('statuses').filter({ hasText: 'connecting → open → connecting → open' }).waitFor();
  await page.waitForFunction((old) => {
    const shown = document.querySelector('[data-testid="connection"]')?.textContent;
    return shown && shown !== old;
  }, before);
  const deadline = Date.now() + 5000;
  while ((await streams()).open !== 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(await streams(), { open: 1, opened: 2 });
  assert.equal(requests, 2);

  // Resumed from the last event: the next one arrives once, after the ones already listed.
  await publish(7);
  await page.getByTestId('events').filter({ hasText: '7' }).waitFor();
  assert.deepEqual(await items(), ['6', '7']);
  assert.deepEqual(console.errors, []);
  await page.close();
});

const score = (dealerId: string, vin: string, avi: number, ati: number, cis: number) => ({
  topic: `dealers/${dealerId}`,
  type: 'ai-score',
  key: `ai-score/${vin}`,
  tags: { dealerId, vin },
  data: { vin, dealerId, avi, ati, cis },
});

test("docs/client.md's dealer tile: the current scores from the snapshot on first load, then live", async () => {
  // Published before the page exists: a second score of 1ABC replaces its first as the latest.
  await publishEvents([
    score('dealer123', '1ABC', 10, 10, 10),
    score('dealer123', '1ABC', 60, 70, 80),
    score('dealer123', '2DEF', 70, 74, 70),
    score('other-dealer', '9XYZ', 1, 1, 1),
    {
      topic: 'dealers/dealer123',
      type: 'msrp',
      key: 'msrp/1ABC',
      data: { vin: '1ABC', old: 45000, new: 43000, deltaPct: -4.44 },
    },
  ]);
  const page = await browser.newPage({ viewport: { width: 800, height: 600 } });
  const console = watchConsole(page);
  await page.goto(tile.url({ hub: hub.url, dealer: 'dealer123' }));
  await page.locator('.tile[data-status="open"]').waitFor();
  const text = (id: string) => page.getByTestId(id).textContent();
  await page.getByTestId('scores').filter({ hasText: '2 scores' }).waitFor();
  assert.equal(await text('avi'), '65.0', 'the latest score of each vehicle, before any new event');
  assert.equal(await text('msrp'), '1ABC: 45000 → 43000 (-4.44%)');
  await page.screenshot({ path: artifactPath('dealer-tile-hooks-snapshot.png') });

  await publishEvents([score('dealer123', '3GHI', 80, 72, 69)]);
  await page.getByTestId('scores').filter({ hasText: '3 scores' }).waitFor();
  assert.equal(await text('avi'), '70.0');
  assert.equal(await text('ati'), '72.0');

  // A reload starts from the latest values again, not from where the page was.
  await page.reload();
  await page.getByTestId('scores').filter({ hasText: '3 scores' }).waitFor();
  assert.equal(await text('avi'), '70.0');
  assert.deepEqual(console.errors, []);
  await page.close();
});
