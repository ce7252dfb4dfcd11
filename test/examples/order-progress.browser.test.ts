import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { createClient } from 'redis';
import { type OrderProgress, start } from '../../examples/order-progress/server.ts';
import { artifactPath, launchBrowser, watchConsole } from '../browser/harness.ts';
import { deletePrefix, REDIS_URL, requireRedis } from '../helpers/redis-server.ts';

// Channels and the job queue of this run only: `<prefix>:<merchant>:<kind>`, `<prefix>:queue`.
const PREFIX = `po_${randomUUID().replaceAll('-', '').slice(0, 12)}`;
let browser: Browser;
let example: OrderProgress;
const contexts: BrowserContext[] = [];

before(async () => {
  await requireRedis();
  browser = await launchBrowser();
  example = await start({ port: 0, redisUrl: REDIS_URL, prefix: PREFIX, stepMs: 60 });
});
after(async () => {
  for (const context of contexts) await context.close();
  await browser?.close();
  await example?.close();
  await deletePrefix(REDIS_URL, PREFIX);
});

/** A browser of its own per merchant (its own cookie jar), signed in and streaming. */
async function signIn(merchantId: string): Promise<{ page: Page; errors: string[] }> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  contexts.push(context);
  const page = await context.newPage();
  const { errors } = watchConsole(page);
  await page.goto(`${example.url}/login/${merchantId}`);
  await page.locator('.status[data-status="open"]').waitFor();
  return { page, errors };
}

async function upload(page: Page, fileName: string): Promise<string> {
  const response = page.waitForResponse((r) => r.url().endsWith('/api/purchase-orders'));
  await page.getByPlaceholder('supplier-invoice.pdf').fill(fileName);
  await page.getByRole('button', { name: 'Upload purchase order' }).click();
  const { poId } = (await (await response).json()) as { poId: string };
  assert.match(poId, /^PO-[0-9A-F]{8}$/);
  return poId;
}

const order = (page: Page, poId: string) => page.locator(`.order[data-po="${poId}"]`);
const ordersOn = (page: Page) =>
  page.locator('.order').evaluateAll((cards) => cards.map((card) => (card as HTMLElement).dataset.po).sort());

test("each merchant's page shows its own orders' progress live, and never another merchant's", async () => {
  const a = await signIn('merchant-a');
  const b = await signIn('merchant-b');

  const poA = await upload(a.page, 'acme-invoice.pdf');
  const poB = await upload(b.page, 'globex-invoice.pdf');
  const poBroken = await upload(b.page, 'corrupt-scan.pdf');

  // The worker publishes on Redis; the bridge turns the channel's merchant into the tenant.
  await order(a.page, poA).and(a.page.locator('[data-state="completed"]')).waitFor();
  await order(b.page, poB).and(b.page.locator('[data-state="completed"]')).waitFor();
  await order(b.page, poBroken).and(b.page.locator('[data-state="failed"]')).waitFor();
  assert.equal(await order(a.page, poA).getAttribute('data-progress'), '100');
  assert.equal(await order(a.page, poA).locator('.percent').textContent(), '100 %');
  assert.match((await order(a.page, poA).locator('.message').textContent()) ?? '', /^Done: \d+ line items/);
  assert.equal(await order(b.page, poBroken).getAttribute('data-progress'), '40');
  assert.equal(
    await order(b.page, poBroken).locator('.message').textContent(),
    'Failed: the scan is unreadable after page 2',
  );

  // A message on merchant B's channel about A's very order id: the topic matches A's page too,
  // only the tenant keeps it out. Then a second order of A's: when A's page has it finished, any
  // event before it in the log (the one for B) would have reached A first.
  const publisher = createClient({ url: REDIS_URL });
  await publisher.connect();
  try {
    await publisher.publish(
      `${PREFIX}:merchant-b:progress`,
      JSON.stringify({ type: 'progress', poId: poA, progress: 13, message: 'not yours' }),
    );
  } finally {
    await publisher.close();
  }
  await order(b.page, poA).and(b.page.locator('[data-progress="13"]')).waitFor();
  const poA2 = await upload(a.page, 'acme-second.pdf');
  await order(a.page, poA2).and(a.page.locator('[data-state="completed"]')).waitFor();

  assert.equal(await order(a.page, poA).getAttribute('data-progress'), '100', "B's event never reached A");
  assert.deepEqual(await ordersOn(a.page), [poA, poA2].sort());
  assert.deepEqual(await ordersOn(b.page), [poA, poB, poBroken].sort());
  assert.equal(example.bridges.stats().rejected, 0);

  await a.page.screenshot({ path: artifactPath('order-progress.png') });
  await b.page.screenshot({ path: artifactPath('order-progress-merchant-b.png') });
  assert.deepEqual(a.errors, []);
  assert.deepEqual(b.errors, []);
});

test("an order stopped at 60 % shows 60 % on a fresh page and after a reload, and no other merchant's order", async () => {
  // The worker's messages for an order that got to 60 % and went no further, then another
  // merchant's message about the same order id, which must not become this merchant's state.
  const poId = 'PO-00000060';
  const before = example.bridges.stats().published;
  const publisher = createClient({ url: REDIS_URL });
  await publisher.connect();
  try {
    const send = (merchantId: string, kind: string, data: Record<string, unknown>) =>
      publisher.publish(`${PREFIX}:${merchantId}:${kind}`, JSON.stringify({ type: kind, poId, ...data }));
    await send('merchant-c', 'stage', { stage: 'ai_parsing', status: 'started', message: 'Parsing c.pdf' });
    for (const progress of [20, 40, 60]) {
      await send('merchant-c', 'progress', { progress, message: `Step at ${progress} %` });
    }
    await send('merchant-d', 'progress', { progress: 13, message: 'not yours' });
  } finally {
    await publisher.close();
  }
  for (let waited = 0; example.bridges.stats().published < before + 5; waited += 20) {
    assert.ok(waited < 30_000, 'the bridge carried the five messages in');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }

  // A browser context of its own, signed in after all of it was published.
  const { page, errors } = await signIn('merchant-c');
  const showsSixtyPercent = async (when: string) => {
    await order(page, poId).and(page.locator('[data-progress="60"]')).waitFor();
    assert.equal(await order(page, poId).locator('.percent').textContent(), '60 %', when);
    assert.equal(await order(page, poId).locator('.message').textContent(), 'Step at 60 %', when);
    assert.equal(await order(page, poId).getAttribute('data-state'), 'processing', when);
    assert.deepEqual(await ordersOn(page), [poId], `only merchant-c's order ${when}`);
  };
  await showsSixtyPercent('on first load');
  await page.reload();
  await page.locator('.status[data-status="open"]').waitFor();
  await showsSixtyPercent('after a reload');
  assert.equal(example.bridges.stats().rejected, 0);
  await page.screenshot({ path: artifactPath('order-progress-snapshot.png') });
  assert.deepEqual(errors, []);
});

test('without a session the upload and the stream are refused with problems, not opened', async () => {
  const upload = await fetch(`${example.url}/api/purchase-orders`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ fileName: 'x.pdf' }),
  });
  assert.equal(upload.status, 401);
  assert.match(upload.headers.get('content-type') ?? '', /^application\/problem\+json/);
  assert.equal((await upload.json()).detail, 'sign in at /login/<merchantId> first');

  const stream = await fetch(`${example.url}/realtime/v1/events?topic=purchase-orders/%7BpoId%7D`);
  assert.equal(stream.status, 401);
  assert.match(stream.headers.get('content-type') ?? '', /^application\/problem\+json/);
});
