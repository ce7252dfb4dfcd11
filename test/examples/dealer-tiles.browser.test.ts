import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { DEMO_INVENTORY, scoresOf } from '../../examples/dealer-tiles/score-job.ts';
import { artifactPath, launchBrowser, watchConsole } from '../browser/harness.ts';
import { type ExampleProcess, runExample } from './run-example.ts';

let browser: Browser;
let example: ExampleProcess;

before(async () => {
  browser = await launchBrowser();
  // The README's one command, with the demo feed off so that every price change is the test's.
  example = await runExample('dealer-tiles', { PORT: '0', FEED_MS: '0' });
});
after(async () => {
  await browser?.close();
  await example?.stop();
});

async function syncMsrp(records: { vin: string; msrp: number }[]): Promise<Response> {
  return fetch(`${example.url}/api/jobs/msrp-sync`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ records }),
  });
}

const field = (page: Page, dealerId: string, name: string) =>
  page.locator(`[data-dealer="${dealerId}"] [data-field="${name}"]`);

async function averages(page: Page, dealerId: string): Promise<(string | null)[]> {
  return Promise.all(['avi', 'ati', 'cis'].map((name) => field(page, dealerId, name).textContent()));
}

test('the dealer tiles show the rolling averages of the scores the job publishes, live', async () => {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const console = watchConsole(page);
  await page.goto(example.url);
  await page.locator('.status[data-status="open"]').waitFor();
  assert.deepEqual(await averages(page, 'STORE1'), ['–', '–', '–']);

  // STORE1-VIN1 (market 30 000) 5 % below market: 60 + 2·5, 70 + 5, 50 + 3·5.
  assert.equal((await syncMsrp([{ vin: 'STORE1-VIN1', msrp: 28_500 }])).status, 202);
  await field(page, 'STORE1', 'avi').filter({ hasText: '70.0' }).waitFor();
  assert.deepEqual(await averages(page, 'STORE1'), ['70.0', '75.0', '65.0']);
  assert.equal(await field(page, 'STORE1', 'msrp').textContent(), 'STORE1-VIN1: $30000 → $28500 (-5%)');

  // STORE1-VIN2 (market 32 000) 5 % above: 50 / 65 / 35, averaged with the first; STORE2-VIN1
  // (market 35 000) 10 % below: 80 / 80 / 80 on its own tile. STORE3 gets nothing.
  const response = await syncMsrp([
    { vin: 'STORE1-VIN2', msrp: 33_600 },
    { vin: 'STORE2-VIN1', msrp: 31_500 },
  ]);
  assert.deepEqual(await response.json(), { changed: 2 });
  await field(page, 'STORE2', 'avi').filter({ hasText: '80.0' }).waitFor();
  await field(page, 'STORE1', 'avi').filter({ hasText: '60.0' }).waitFor();
  assert.deepEqual(await averages(page, 'STORE1'), ['60.0', '70.0', '50.0']);
  assert.deepEqual(await averages(page, 'STORE2'), ['80.0', '80.0', '80.0']);
  assert.deepEqual(await averages(page, 'STORE3'), ['–', '–', '–']);

  // Five rescores of STORE1-VIN3 (market 34 000) push the first two out of the window:
  // 80, 60, 80, 60, 80 (AVI), 80, 70, 80, 70, 80 (ATI), 80, 50, 80, 50, 80 (CIS).
  // One sync each: the job keys each vehicle's score, so one batch listing a VIN five times would
  // reach the page as its last score only (queued events with one key are conflated).
  const prices = [30_600, 34_000, 30_600, 34_000, 30_600];
  for (const msrp of prices) assert.equal((await syncMsrp([{ vin: 'STORE1-VIN3', msrp }])).status, 202);
  await field(page, 'STORE1', 'avi').filter({ hasText: '72.0' }).waitFor();
  assert.deepEqual(await averages(page, 'STORE1'), ['72.0', '76.0', '68.0']);
  assert.equal(await field(page, 'STORE1', 'count').textContent(), '5 of the last 5 scores');
  assert.equal(await field(page, 'STORE1', 'msrp').textContent(), 'STORE1-VIN3: $34000 → $30600 (-10%)');

  await page.screenshot({ path: artifactPath('dealer-tiles.png') });
  assert.deepEqual(console.errors, []);
  await page.close();
});

test("a page opened fresh, and reloaded, shows every tile's current scores before anything new is published", async () => {
  // One round of the job (the demo feed is off, so nothing else publishes): every vehicle 1 to 9 %
  // below its market price, in one batch.
  const round = DEMO_INVENTORY.map((vehicle, i) => ({
    ...vehicle,
    msrp: Math.round(vehicle.marketPrice * (0.99 - i / 100)),
  }));
  const response = await syncMsrp(round.map(({ vin, msrp }) => ({ vin, msrp })));
  assert.equal(response.status, 202);
  // Each tile averages its vehicles' latest scores: the snapshot holds one per vehicle.
  const expected = new Map<string, string[]>();
  for (const dealerId of new Set(round.map((vehicle) => vehicle.dealerId))) {
    const scores = round.filter((vehicle) => vehicle.dealerId === dealerId).map(scoresOf);
    const mean = (field: 'avi' | 'ati' | 'cis') =>
      (scores.reduce((sum, score) => sum + score[field], 0) / scores.length).toFixed(1);
    expected.set(dealerId, [mean('avi'), mean('ati'), mean('cis')]);
  }
  assert.equal(expected.size, 3);

  // A browser context of its own: no cookie, no sessionStorage, nothing from the other test.
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  const console = watchConsole(page);
  const showsCurrentScores = async (when: string) => {
    await page.locator('.status[data-status="open"]').waitFor();
    for (const [dealerId, averagesOf] of expected) {
      await field(page, dealerId, 'avi')
        .filter({ hasText: averagesOf[0] as string })
        .waitFor();
      assert.deepEqual(await averages(page, dealerId), averagesOf, `${dealerId}'s tile ${when}`);
      assert.equal(await field(page, dealerId, 'count').textContent(), '3 of the last 5 scores');
      // The dealer's latest price change: the round's last vehicle of that dealer.
      const last = round.findLast((vehicle) => vehicle.dealerId === dealerId);
      assert.match(
        (await field(page, dealerId, 'msrp').textContent()) ?? '',
        new RegExp(`^${last?.vin}: \\$\\d+ → \\$${last?.msrp} \\(`),
        `${dealerId}'s price change ${when}`,
      );
    }
    assert.equal(await page.getByText('–').count(), 0, `no tile without a score ${when}`);
  };

  await page.goto(example.url);
  await showsCurrentScores('on first load');
  await page.reload();
  await showsCurrentScores('after a reload');
  await page.screenshot({ path: artifactPath('dealer-tiles-snapshot.png') });
  // Then live, as before: a new score of STORE3's first vehicle joins its window.
  const vin1 = round[6] as (typeof round)[number];
  assert.equal(vin1.vin, 'STORE3-VIN1');
  await syncMsrp([{ vin: vin1.vin, msrp: vin1.marketPrice }]);
  await field(page, 'STORE3', 'count').filter({ hasText: '4 of the last 5 scores' }).waitFor();
  assert.deepEqual(console.errors, []);
  await context.close();
});

test('the MSRP sync job refuses a VIN it does not know with a problem saying where to look', async () => {
  const response = await syncMsrp([{ vin: 'NOPE', msrp: 1 }]);
  assert.equal(response.status, 400);
  assert.match(response.headers.get('content-type') ?? '', /^application\/problem\+json/);
  const problem = await response.json();
  assert.equal(problem.code, 'unknown-vin');
  assert.match(problem.detail, /vin NOPE is not in the inventory; see GET \/api\/dealers/);
});

test('publishing to the tiles over HTTP is refused: only the score job publishes', async () => {
  const response = await fetch(`${example.url}/realtime/v1/publish`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ topic: 'dealers/STORE1', type: 'ai-score', data: { avi: 100 } }),
  });
  assert.equal(response.status, 401);
});
