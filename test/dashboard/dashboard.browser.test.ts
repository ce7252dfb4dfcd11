import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { artifactPath, launchBrowser, watchConsole } from '../browser/harness.ts';
import { sleep, startHub, type TestHub } from '../helpers/server.ts';
import type { SseStream } from '../helpers/sse-client.ts';
import { SECRET, token } from '../helpers/tokens.ts';
import { layoutProblems } from './layout.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** What a row of a counts table says: name → streams. */
async function counts(page: Page, table: string, attribute: string): Promise<Record<string, number>> {
  return page.$$eval(
    `${table} tbody tr`,
    (rows, name) =>
      Object.fromEntries(
        rows.map((row) => [
          (row as HTMLElement).dataset[name] ?? '',
          Number((row as HTMLElement).dataset.count),
        ]),
      ),
    attribute,
  );
}

/** The chart's samples, as the page drew them. */
async function chart(page: Page): Promise<{ published: number[]; delivered: number[]; points: string }> {
  return page.$eval('#chart', (svg) => {
    const series = (name: string) =>
      ((svg as SVGElement).dataset[name] ?? '')
        .split(',')
        .filter((value) => value !== '')
        .map(Number);
    return {
      published: series('published'),
      delivered: series('delivered'),
      points: svg.querySelector('polyline.published')?.getAttribute('points') ?? '',
    };
  });
}

/** Polls the page (not the hub) until `check` holds; the page itself is pushed its figures. */
async function until<T>(
  what: string,
  read: () => Promise<T>,
  check: (value: T) => boolean,
  timeoutMs = 10_000,
) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (check(value)) return value;
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}; last seen ${JSON.stringify(value)}`);
    await sleep(50);
  }
}

/** How many columns the grid of cards has now. */
async function gridColumns(page: Page): Promise<number> {
  return page.$eval('main', (main) => getComputedStyle(main).gridTemplateColumns.split(' ').length);
}

describe('the dashboard in a real browser (Chromium)', () => {
  let browser: Browser;
  const hubs: TestHub[] = [];

  before(async () => {
    // The page as `npm run build` bundles it, from the sources under test.
    execFileSync(process.execPath, ['scripts/build-dashboard.mjs'], { cwd: ROOT, stdio: 'pipe' });
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await Promise.all(hubs.map((hub) => hub.close()));
  });

  test('it shows the streams the hub really has, a chart that moves with publishing, the live tail and a working publish form', async () => {
    const hub = await startHub();
    hubs.push(hub);
    // N = 5 real streams: three on `orders` in the default tenant, two on a template in `acme`.
    const streams: SseStream[] = [];
    for (let i = 0; i < 3; i++) streams.push(await hub.subscribe('topic=orders'));
    for (let i = 0; i < 2; i++) streams.push(await hub.subscribe('topic=dealers/{id}/scores&tenant=acme'));

    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    const console = watchConsole(page);
    const response = await page.goto(`${hub.url}/dashboard`);
    assert.equal(response?.status(), 200);
    await page.locator('#status[data-status="open"]').waitFor();

    // N streams, plus the dashboard's own (tenant `*`), as the hub counts them.
    const total = await until(
      'the connection count',
      () => page.$eval('#connections-total', (element) => Number((element as HTMLElement).dataset.total)),
      (value) => value === 6,
    );
    assert.equal(total, (await hub.herald.stats()).connections.total);
    assert.deepEqual(await counts(page, '#by-tenant', 'tenant'), { '': 3, acme: 2, '*': 1 });
    const byTopic = await counts(page, '#by-topic', 'topic');
    assert.equal(byTopic.orders, 3);
    assert.equal(byTopic['dealers/{id}/scores'], 2);
    assert.equal(await page.$eval('#broker', (element) => (element as HTMLElement).dataset.health), 'ok');
    assert.match((await page.textContent('#broker')) ?? '', /memory/);

    // The chart moves when events are published: a sample with a published rate above zero
    // appears, and the line is drawn off its baseline.
    const before = await chart(page);
    assert.ok(
      before.published.every((rate) => rate === 0),
      `idle rates ${before.published}`,
    );
    const ids: string[] = [];
    for (let burst = 0; burst < 12; burst++) {
      const reply = await hub.publish(
        Array.from({ length: 5 }, (_, n) => ({ topic: 'orders', type: 'tick', data: { burst, n } })),
      );
      assert.equal(reply.status, 202);
      ids.push(...(reply.body.ids as string[]));
      await sleep(100);
    }
    const moved = await until(
      'a published rate on the chart',
      () => chart(page),
      (seen) => seen.published.some((rate) => rate > 0) && seen.delivered.some((rate) => rate > 0),
    );
    assert.notEqual(moved.points, before.points);
    // 60 events, each delivered to the 3 Node streams on `orders` and to the dashboard.
    const totals = await until(
      'the totals',
      () =>
        page.$eval('#slow', (element) => [
          Number((element as HTMLElement).dataset.published),
          Number((element as HTMLElement).dataset.delivered),
        ]),
      ([published, delivered]) => published === 60 && delivered === 240,
    );
    const { events } = await hub.herald.stats();
    assert.deepEqual(totals, [events.published, events.delivered]);

    // The live tail shows them, newest first, capped at 100 rows.
    const tailIds = await until(
      'the published events in the tail',
      () => page.$$eval('#tail tbody tr', (rows) => rows.map((row) => (row as HTMLElement).dataset.id)),
      (seen) => seen.length === ids.length,
    );
    assert.deepEqual(tailIds, [...ids].reverse());
    await page.screenshot({ path: artifactPath('dashboard.png') });

    // The type filter hides other types; the topic filter re-subscribes the stream in place.
    await page.fill('#tail-type', 'other');
    await page.click('#tail-filter button');
    assert.equal(await page.locator('#tail tbody tr:visible').count(), 0);
    await page.fill('#tail-type', '');
    await page.fill('#tail-topic', 'misc');
    await page.click('#tail-filter button');
    await until(
      'the dashboard stream on topic misc',
      async () => counts(page, '#by-topic', 'topic'),
      (seen) => seen.misc === 1 && seen['*'] === undefined,
    );
    await hub.publish([
      { topic: 'orders', type: 'tick', data: 'not shown' },
      { topic: 'misc', type: 'note', data: 'shown' },
    ]);
    await until(
      'the misc event in the tail',
      () => page.$$eval('#tail tbody tr', (rows) => rows.map((row) => (row as HTMLElement).dataset.type)),
      (types) => types.length === 1 && types[0] === 'note',
    );

    // The publish form posts to /v1/publish; the event reaches the hub's real streams.
    await page.fill('#publish-topic', 'orders');
    await page.fill('#publish-type', 'from-form');
    await page.fill('#publish-data', '{"x": 1}');
    await page.click('#publish button');
    await page.locator('#publish-result[data-status="202"]').waitFor();
    const formEvent = await until(
      'the form event on a Node stream',
      async () => streams[0]?.data.find((event) => event.type === 'from-form'),
      (event) => event !== undefined,
    );
    assert.equal(formEvent?.data, '{"x":1}');
    // A refusal shows the hub's problem detail.
    await page.fill('#publish-tenant', '*');
    await page.click('#publish button');
    await page.locator('#publish-result[data-status="400"]').waitFor();
    assert.match((await page.textContent('#publish-result')) ?? '', /reserved/);
    await page.fill('#publish-tenant', '');

    // The bad publish above answers 400, which Chromium reports as a failed resource load.
    const errors = console.errors.filter((error) => !/status of 400/.test(error));
    assert.deepEqual(errors, []);
    await page.close();
  });

  test('it is usable from 390 px to wide screens, with 40 streams on long topics and long tenants', async () => {
    const hub = await startHub();
    hubs.push(hub);
    const topic = (n: number) =>
      `tenants/acme-corporation-international/dealers/STORE-${String(n).padStart(6, '0')}/vehicles/1HGCM82633A00${String(4352 + n)}/scores`;
    const tenants = ['acme-corporation-international-holdings-emea', 'globex-worldwide-logistics', ''];
    const streams: SseStream[] = [];
    for (let n = 0; n < 40; n++) {
      const tenant = tenants[n % tenants.length];
      streams.push(
        await hub.subscribe(`topic=${encodeURIComponent(topic(n))}${tenant ? `&tenant=${tenant}` : ''}`),
      );
    }

    const page = await browser.newPage({ viewport: { width: 390, height: 844 } });
    const console = watchConsole(page);
    await page.goto(`${hub.url}/dashboard`);
    await page.locator('#status[data-status="open"]').waitFor();
    await until(
      "the 40 streams in the topics table and the dashboard's own two",
      () => page.locator('#by-topic tbody tr').count(),
      (rows) => rows === 42,
    );
    // The tail with long types and data, and a few chart samples.
    for (let burst = 0; burst < 3; burst++) {
      await hub.publish(
        Array.from({ length: 4 }, (_, n) => ({
          topic: topic(n),
          type: 'vehicle.score.recalculated-after-dealer-inspection',
          data: { dealer: `STORE-${n}`, note: 'x'.repeat(120), words: 'a long sentence '.repeat(8) },
        })),
      );
      await sleep(100);
    }
    await until(
      'the events in the tail',
      () => page.locator('#tail tbody tr').count(),
      (rows) => rows === 12,
    );

    for (const [width, height, file] of [
      [390, 844, 'dashboard-390.png'],
      [800, 1000, 'dashboard-800.png'],
      [1280, 800, 'dashboard-1280.png'],
      [1920, 1080, 'dashboard-1920.png'],
    ] as const) {
      await page.setViewportSize({ width, height });
      await sleep(50);
      assert.deepEqual(await layoutProblems(page), [], `at ${width} px`);
      await page.screenshot({ path: artifactPath(file), fullPage: true });
    }
    // A topic carries its full name.
    assert.equal(
      await page.$eval(`#by-topic tr[data-topic="${topic(0)}"] td`, (td) => (td as HTMLElement).title),
      topic(0),
    );
    // One column of cards on a phone, more as the screen widens.
    await page.setViewportSize({ width: 390, height: 844 });
    assert.equal(await gridColumns(page), 1);
    await page.setViewportSize({ width: 1280, height: 800 });
    assert.equal(await gridColumns(page), 3);
    await page.setViewportSize({ width: 1920, height: 1080 });
    assert.ok((await gridColumns(page)) >= 4, 'a wide screen uses its width');

    assert.deepEqual(console.errors, []);
    await page.close();
    for (const stream of streams) stream.close();
  });

  test('the shell and its assets are served with their types and revalidated by ETag', async () => {
    const hub = await startHub();
    hubs.push(hub);
    for (const [path, type] of [
      ['/dashboard', 'text/html'],
      ['/dashboard/app.js', 'text/javascript'],
      ['/dashboard/app.css', 'text/css'],
    ] as const) {
      const first = await fetch(`${hub.url}${path}`);
      assert.equal(first.status, 200, path);
      assert.match(first.headers.get('content-type') ?? '', new RegExp(`^${type}`));
      assert.equal(first.headers.get('cache-control'), 'no-cache');
      const etag = first.headers.get('etag') ?? '';
      assert.match(etag, /^".+"$/);
      assert.ok((await first.text()).length > 0);
      const again = await fetch(`${hub.url}${path}`, { headers: { 'if-none-match': etag } });
      assert.equal(again.status, 304, path);
    }
    const html = await (await fetch(`${hub.url}/dashboard`)).text();
    assert.doesNotMatch(html, /https?:\/\//, 'the page loads nothing from elsewhere');
  });

  test('with JWT configured, a non-admin token is refused and the page says so; an admin token sees the figures', async () => {
    const hub = await startHub({ auth: { jwt: { secrets: [SECRET] } } });
    hubs.push(hub);
    await hub.subscribe('topic=orders', {
      headers: { authorization: `Bearer ${await token({ tenant: 'acme' })}` },
    });

    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    const user = await token({ tenant: 'acme', subscribe: ['*'], publish: ['*'] });
    await page.goto(`${hub.url}/dashboard#token=${user}`);
    const status = page.locator('#status[data-status="closed"]');
    await status.waitFor();
    assert.match((await status.textContent()) ?? '', /only admin credentials/);
    assert.equal(
      await page.$eval('#connections-total', (element) => (element as HTMLElement).dataset.total),
      '0',
    );
    // The token left the address bar as soon as the page read it.
    assert.equal(new URL(page.url()).hash, '');

    const admin = await token({ admin: true });
    await page.fill('#token', admin);
    await page.click('#auth button');
    await page.locator('#status[data-status="open"]').waitFor();
    const total = await until(
      'the figures for the admin',
      () => page.$eval('#connections-total', (element) => Number((element as HTMLElement).dataset.total)),
      (value) => value === 2,
    );
    assert.equal(total, (await hub.herald.stats()).connections.total);
    assert.deepEqual(await counts(page, '#by-tenant', 'tenant'), { acme: 1, '*': 1 });
    await page.close();
  });
});
