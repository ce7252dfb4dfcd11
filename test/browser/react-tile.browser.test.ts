import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { Browser } from 'playwright-core';
import { type HubProcess, spawnHub } from '../helpers/nodes.ts';
import { bearer, SECRET, token } from '../helpers/tokens.ts';
import { artifactPath, launchBrowser, type PageServer, servePage, watchConsole } from './harness.ts';

let browser: Browser;
let hub: HubProcess;
let server: PageServer;

before(async () => {
  browser = await launchBrowser();
  server = await servePage('dealer-tile.tsx', { subscribe: ['dealers/{dealerId}'] });
  hub = await spawnHub(['--jwt-secret', SECRET, '--cors-origin', server.origin]);
});
after(async () => {
  await browser?.close();
  await hub?.kill();
  await server?.close();
});

async function publish(events: readonly unknown[]): Promise<void> {
  const response = await fetch(`${hub.url}/v1/publish`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...bearer(await token({ publish: ['dealers/{id}'] })) },
    body: JSON.stringify(events),
  });
  assert.equal(response.status, 202, await response.text());
}

const score = (dealerId: string, vin: string, avi: number, ati: number, cis: number) => ({
  topic: `dealers/${dealerId}`,
  type: 'ai-score',
  tags: { dealerId, vin },
  data: { vin, dealerId, avi, ati, cis },
});

test('a live tile built with the React hooks shows rolling averages as scores arrive', async () => {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const console = watchConsole(page);
  const streams: string[] = [];
  page.on('request', (request) => {
    if (new URL(request.url()).pathname === '/v1/events') streams.push(request.url());
  });
  await page.goto(server.url({ hub: hub.url, dealer: 'dealer123' }));
  await page.locator('.tile[data-status="open"]').waitFor();
  const text = (id: string) => page.getByTestId(id).textContent();
  assert.equal(await text('avi'), '–');

  await publish([score('dealer123', '1ABC', 60, 70, 80)]);
  await page.getByTestId('scores').filter({ hasText: '1 scores' }).waitFor();
  assert.equal(await text('avi'), '60.0');

  await publish([
    score('dealer123', '2DEF', 70, 74, 70),
    score('other-dealer', '9XYZ', 1, 1, 1),
    score('dealer123', '3GHI', 80, 72, 69),
    {
      topic: 'dealers/dealer123',
      type: 'msrp',
      data: { vin: '1ABC', old: 45000, new: 43000, deltaPct: -4.44 },
    },
  ]);
  await page.getByTestId('msrp').filter({ hasText: '45000 → 43000' }).waitFor();
  assert.equal(await text('scores'), '3 scores', "another dealer's score never reaches the tile");
  assert.equal(await text('avi'), '70.0');
  assert.equal(await text('ati'), '72.0');
  assert.equal(await text('cis'), '73.0');

  // The window rolls: five scores later, the first three are out of it.
  await publish([90, 90, 90, 90, 90].map((n, i) => score('dealer123', `V${i}`, n, n, n)));
  await page.getByTestId('avi').filter({ hasText: '90.0' }).waitFor();
  assert.equal(await text('scores'), '5 scores');

  await page.screenshot({ path: artifactPath('dealer-tile.png') });
  assert.equal(streams.length, 1, 'StrictMode mounts twice, the provider opens one stream');
  const stats = await (
    await fetch(`${hub.url}/v1/stats`, { headers: bearer(await token({ admin: true })) })
  ).json();
  assert.equal(stats.connections.total, 1, JSON.stringify(stats.connections));
  assert.deepEqual(console.errors, []);
  await page.close();
});
