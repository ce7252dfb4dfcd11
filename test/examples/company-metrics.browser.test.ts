import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Browser, Page } from 'playwright-core';
import { type CompanyMetrics, start } from '../../examples/company-metrics/server.ts';
import { artifactPath, launchBrowser, watchConsole } from '../browser/harness.ts';
import { NATS_URL } from '../helpers/backends.ts';
import { connectJetStream } from '../helpers/nats-server.ts';

// Subjects and the JetStream log of this run only.
const RUN = randomUUID().replaceAll('-', '').slice(0, 12);
const PREFIX = `t${RUN}.`;
const STREAM = `CM_${RUN.toUpperCase()}`;
let browser: Browser;
let example: CompanyMetrics;
let nc: NatsConnection;

before(async () => {
  nc = await connectJetStream(NATS_URL);
  browser = await launchBrowser();
  example = await start({ port: 0, natsUrl: NATS_URL, subjectPrefix: PREFIX, stream: STREAM, feedMs: 0 });
});
after(async () => {
  await browser?.close();
  await example?.close();
  const jsm = await jetstreamManager(nc);
  await jsm.streams.delete(STREAM).catch(() => {});
  await jsm.streams.delete(`KV_${STREAM}_IDS`).catch(() => {});
  await jsm.streams.delete(`KV_${STREAM}_LATEST`).catch(() => {});
  await jsm.streams.delete(`KV_${STREAM}_COUNTS`).catch(() => {});
  await jsm.streams.delete(`KV_${STREAM}_WINDOWS`).catch(() => {});
  await nc?.close();
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The activity list, oldest first: what the dashboard has handled, across reloads. */
const activity = (page: Page) =>
  page
    .locator('.activity li')
    .evaluateAll((items) =>
      items
        .map((item) => `${(item as HTMLElement).dataset.name}=${(item as HTMLElement).dataset.value}`)
        .reverse(),
    );

test('the dashboard shows company metrics live and, reloaded mid-stream, resumes without losing or repeating one', async () => {
  const page = await (await browser.newContext({ viewport: { width: 1280, height: 800 } })).newPage();
  const console = watchConsole(page);
  const streams: URL[] = [];
  page.on('request', (request) => {
    const url = new URL(request.url());
    if (url.pathname === '/realtime/v1/events') streams.push(url);
  });
  await page.goto(`${example.url}/login/acme`);
  await page.locator('.status[data-status="open"]').waitFor();

  // The analytics side publishes on NATS, another company's events interleaved with acme's.
  const COUNT = 40;
  const publish = async (from: number, to: number) => {
    for (let n = from; n <= to; n++) {
      nc.publish(
        `${PREFIX}metrics.acme.events_processed`,
        JSON.stringify({ metricName: 'events_processed', value: n }),
      );
      nc.publish(
        `${PREFIX}metrics.globex.events_processed`,
        JSON.stringify({ metricName: 'events_processed', value: -n }),
      );
      if (n === 35) {
        nc.publish(
          `${PREFIX}metrics.acme.integration_score`,
          JSON.stringify({ metricName: 'integration_score', value: 0.85 }),
        );
      }
      if (n === COUNT / 2) {
        nc.publish(
          `${PREFIX}journey.acme.flag_updated`,
          JSON.stringify({ userId: 'user-7', flag: 'struggling' }),
        );
      }
      await sleep(10);
    }
  };
  const inLog = async (events: number) => {
    for (let waited = 0; example.bridges.stats().published < events; waited += 20) {
      assert.ok(waited < 60_000, `the bridges published ${example.bridges.stats().published} of ${events}`);
      await sleep(20);
    }
  };
  await publish(1, 15);
  await page.locator('.activity li[data-value="15"]').waitFor();

  // Reload, and hold the new stream back while 15 more events (and a journey change) are
  // published: they happen while the page has no stream at all, and must come from the log.
  let held: () => void = () => {};
  const holding = new Promise<void>((resolve) => {
    held = resolve;
  });
  let release: () => void = () => {};
  const released = new Promise<void>((resolve) => {
    release = resolve;
  });
  await page.route('**/realtime/v1/events?*', async (route) => {
    held();
    await released;
    await route.continue();
  });
  await page.reload();
  await holding;
  await publish(16, 30);
  await inLog(30 * 2 + 1); // acme's, globex's and the journey change
  // The rest is published while the stream replays and goes live.
  release();
  const live = publish(31, COUNT);
  await page.locator('.status[data-status="open"]').waitFor();
  await live;
  await page.locator('.activity li[data-value="40"]').waitFor();

  const metrics = Array.from({ length: COUNT }, (_, i) => `events_processed=${i + 1}`);
  metrics.splice(35, 0, 'integration_score=0.85');
  const shown = await activity(page);
  // The bridge keys each metric, so that a first visit gets its latest value, and a key also
  // conflates: updates of one metric queued together (dispatched in one tick, or waiting while
  // the reload's replay is sent) reach the page as the newest of them. What the replay sends
  // comes from the log as it is, never merged; and nothing arrives twice or out of order.
  assert.equal(new Set(shown).size, shown.length, 'no event twice across the reload');
  const published = [...metrics, 'user-7=struggling'];
  assert.deepEqual(
    shown.filter((item) => !published.includes(item)),
    [],
    'only acme events, none of globex',
  );
  for (let n = 16; n <= 30; n++) {
    assert.ok(shown.includes(`events_processed=${n}`), `event ${n}, published with no stream open, replayed`);
  }
  for (const item of [
    'events_processed=15',
    'events_processed=40',
    'integration_score=0.85',
    'user-7=struggling',
  ]) {
    assert.ok(shown.includes(item), `${item}: the newest of its key at each step`);
  }
  // In log order, which for each bridge is the order NATS delivered: the metrics in the order
  // published. The journey change comes through a bridge of its own, so where it falls among
  // the metrics depends on how quickly each bridge got its turn (on a busy machine, not always
  // right after the 20th).
  assert.deepEqual(
    shown.filter((item) => !item.startsWith('user-7=')),
    metrics.filter((item) => shown.includes(item)),
    'the metrics in the order published, across the reload',
  );
  assert.equal(await page.locator('[data-metric="events_processed"] .value').textContent(), '40');
  assert.equal(await page.locator('[data-metric="integration_score"] .value').textContent(), '0.85');
  assert.equal(await page.locator('.journey li').textContent(), 'user-7: struggling');

  assert.equal(streams.length, 2, streams.join('\n'));
  assert.equal(streams[0]?.searchParams.get('lastEventId'), null, 'the first visit starts fresh');
  const resumedFrom = streams[1]?.searchParams.get('lastEventId');
  assert.ok(resumedFrom, 'the reload resumes with lastEventId');
  assert.equal(await page.locator('.resume').textContent(), `resumed after event ${resumedFrom}`);
  assert.equal(await page.locator('.gap').isHidden(), true, 'no herald.gap: the log covered the reload');
  assert.equal(example.bridges.stats().rejected, 0);

  await page.screenshot({ path: artifactPath('company-metrics.png') });
  assert.deepEqual(console.errors, []);
});

test('a first visit, with nothing saved, shows every metric and flag at once from the latest values, then goes on live', async () => {
  // initech's analytics ran before anyone opened the dashboard: several values per metric and
  // flag, the last of each what the dashboard must show; globex's interleaved.
  const before = example.bridges.stats().published;
  const sends: [subject: string, body: object][] = [];
  for (let n = 1; n <= 5; n++) {
    sends.push([`metrics.initech.events_processed`, { metricName: 'events_processed', value: n * 10 }]);
    sends.push([`metrics.globex.events_processed`, { metricName: 'events_processed', value: -n }]);
  }
  sends.push([`metrics.initech.integration_score`, { metricName: 'integration_score', value: 0.4 }]);
  sends.push([`journey.initech.flag_updated`, { userId: 'user-1', flag: 'onboarding' }]);
  sends.push([`journey.initech.flag_updated`, { userId: 'user-2', flag: 'struggling' }]);
  sends.push([`metrics.initech.integration_score`, { metricName: 'integration_score', value: 0.65 }]);
  sends.push([`journey.initech.flag_updated`, { userId: 'user-1', flag: 'active' }]);
  for (const [subject, body] of sends) nc.publish(`${PREFIX}${subject}`, JSON.stringify(body));
  for (let waited = 0; example.bridges.stats().published < before + sends.length; waited += 20) {
    assert.ok(
      waited < 60_000,
      `the bridges published ${example.bridges.stats().published - before} of ${sends.length}`,
    );
    await sleep(20);
  }

  // A new browser: empty localStorage.
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  const console = watchConsole(page);
  const streams: URL[] = [];
  page.on('request', (request) => {
    const url = new URL(request.url());
    if (url.pathname === '/realtime/v1/events') streams.push(url);
  });
  await page.goto(`${example.url}/login/initech`);
  await page.locator('.status[data-status="open"]').waitFor();
  await page.locator('.journey li').nth(1).waitFor();
  const value = (metric: string) => page.locator(`[data-metric="${metric}"] .value`).textContent();
  const flags = () => page.locator('.journey li').allTextContents();
  assert.equal(await value('events_processed'), '50');
  assert.equal(await value('integration_score'), '0.65');
  assert.deepEqual((await flags()).sort(), ['user-1: active', 'user-2: struggling']);
  assert.equal(await page.locator('.metric').count(), 2, 'one card per metric, none of globex');
  assert.equal(await page.locator('.resume').textContent(), 'new session');
  assert.equal(streams.length, 1);
  assert.equal(streams[0]?.searchParams.get('snapshot'), 'latest', 'nothing saved: the latest values');
  assert.equal(streams[0]?.searchParams.get('lastEventId'), null);
  await page.screenshot({ path: artifactPath('company-metrics-snapshot.png') });

  // Live from there, and a reload resumes after the last event instead of asking again.
  nc.publish(
    `${PREFIX}metrics.initech.events_processed`,
    JSON.stringify({ metricName: 'events_processed', value: 60 }),
  );
  await page.locator('[data-metric="events_processed"] .value').filter({ hasText: '60' }).waitFor();
  await page.reload();
  await page.locator('.status[data-status="open"]').waitFor();
  assert.equal(streams.length, 2);
  assert.equal(streams[1]?.searchParams.get('snapshot'), null);
  assert.ok(streams[1]?.searchParams.get('lastEventId'), 'the reload resumes with lastEventId');
  assert.equal(await value('events_processed'), '60');
  assert.deepEqual((await flags()).sort(), ['user-1: active', 'user-2: struggling']);
  assert.equal(await page.locator('.gap').isHidden(), true);
  assert.equal(example.bridges.stats().rejected, 0);
  assert.deepEqual(console.errors, []);
  await context.close();
});

test("another company's token never opens acme's stream", async () => {
  const login = await fetch(`${example.url}/login/globex`, { redirect: 'manual' });
  const cookie = (login.headers.get('set-cookie') ?? '').split(';')[0] as string;
  assert.match(cookie, /^herald_token=/);
  const response = await fetch(`${example.url}/realtime/v1/events?topic=*&tenant=acme`, {
    headers: { cookie },
  });
  assert.equal(response.status, 403);
  assert.match(response.headers.get('content-type') ?? '', /^application\/problem\+json/);
  await response.body?.cancel();
});
