import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { artifactPath, launchBrowser, watchConsole } from '../browser/harness.ts';
import { type HubProcess, killAllHubs, spawnHub } from '../helpers/nodes.ts';
import { type PrivateRedis, startPrivateRedis } from '../helpers/redis-server.ts';
import { sleep } from '../helpers/server.ts';
import { openStream, type SseStream } from '../helpers/sse-client.ts';
import { bearer, SECRET, token } from '../helpers/tokens.ts';
import { layoutProblems } from './layout.ts';

/**
 * The dashboard as a cluster's page, in Chromium: two `herald serve` processes on one Redis log,
 * the page opened on the first. It must show both nodes and every tenant's figures summed over
 * them, list the streams of both nodes, end a stream the other node holds (which receives
 * `herald.disconnect` and ends), show a topic's presence and page through its history, and stay
 * usable at 390 px.
 */

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const ARGS = ['--node-heartbeat', '300ms', '--node-lease', '3s', '--jwt-secret', SECRET];

interface NodesAnswer {
  readonly nodes: readonly {
    readonly id: string;
    readonly tenants: Record<string, { readonly streams: number }>;
  }[];
}

async function nodesOf(url: string, jwt: string): Promise<NodesAnswer> {
  const response = await fetch(`${url}/v1/nodes`, { headers: bearer(jwt) });
  assert.equal(response.status, 200);
  return (await response.json()) as NodesAnswer;
}

/** Polls until `check` holds; generous, for two hub processes and a browser on a busy machine. */
async function until<T>(
  what: string,
  read: () => Promise<T>,
  check: (value: T) => boolean,
  timeoutMs = 30_000,
) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (check(value)) return value;
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}; last seen ${JSON.stringify(value)}`);
    await sleep(100);
  }
}

/** The rows of a table as their data attributes. */
const rowsOf = (page: Page, table: string) =>
  page.$$eval(`${table} tbody tr`, (rows) => rows.map((row) => ({ ...(row as HTMLElement).dataset })));

describe('the dashboard of a cluster of two hub processes on Redis (Chromium)', () => {
  let browser: Browser;
  const nodes: HubProcess[] = [];
  const streams: SseStream[] = [];
  let redis: PrivateRedis | undefined;
  let admin: string;
  let ids: string[] = [];

  before(async () => {
    execFileSync(process.execPath, ['scripts/build-dashboard.mjs'], { cwd: ROOT, stdio: 'pipe' });
    browser = await launchBrowser();
    // A Redis of the test's own: the machine's is shared with every other test running now.
    redis = await startPrivateRedis();
    // One after the other: two processes compiling at once on a loaded machine can outlast the
    // broker's connect timeout.
    for (let i = 0; i < 2; i++) {
      nodes.push(await spawnHub(['--broker', redis.url, '--stream', 'dashboard', ...ARGS]));
    }
    admin = await token({ admin: true, sub: 'ops' });
    for (const node of nodes) {
      await until(
        'both nodes to list each other',
        async () => (await nodesOf(node.url, admin)).nodes.length,
        (count) => count === 2,
      );
    }
    ids = await Promise.all(
      nodes.map(async (node) => (await nodesOf(node.url, admin)).nodes[0]?.id as string),
    );
  });

  after(async () => {
    for (const each of streams) each.close();
    await browser?.close();
    await killAllHubs();
    await redis?.stop();
  });

  /** A stream of `tenant` as `sub` on node `i`, connected. */
  async function open(i: number, tenant: string, sub: string, topics: string[]): Promise<SseStream> {
    const jwt = await token({ tenant, sub, subscribe: topics });
    const query = topics.map((topic) => `topic=${encodeURIComponent(topic)}`).join('&');
    const opened = await openStream(`${nodes[i]?.url}/v1/events?${query}`, { headers: bearer(jwt) });
    streams.push(opened);
    await opened.until((s) => s.connectionId !== undefined, 10_000, 'herald.connected');
    return opened;
  }

  async function publish(i: number, tenant: string, events: unknown[]): Promise<string[]> {
    const jwt = await token({ tenant, publish: ['*'] });
    const response = await fetch(`${nodes[i]?.url}/v1/publish`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...bearer(jwt) },
      body: JSON.stringify(events),
    });
    assert.equal(response.status, 202);
    return ((await response.json()) as { ids: string[] }).ids;
  }

  test('every node, every tenant, both nodes’ connections, a disconnect on the other node, presence and history', async () => {
    const [a, b] = ids as [string, string];
    const alice = [await open(0, 'acme', 'alice', ['rooms/1']), await open(0, 'acme', 'alice', ['rooms/1'])];
    const bob = await open(1, 'globex-worldwide-logistics-international', 'bob', ['rooms/1']);
    const carol = await open(1, 'acme', 'carol', ['rooms/{id}']);
    const dave = await open(1, 'initech', 'dave', ['tps/reports']);
    // 24 events of acme accepted by node b, 2 of globex by node a.
    const acmeIds = await publish(
      1,
      'acme',
      Array.from({ length: 24 }, (_, n) => ({ topic: 'rooms/1', type: 'said', data: { n } })),
    );
    await publish(0, 'globex-worldwide-logistics-international', [
      { topic: 'rooms/1', data: 1 },
      { topic: 'rooms/1', data: 2 },
    ]);
    await carol.until((s) => s.data.length === 24, 10_000, "carol's 24 events");

    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const console = watchConsole(page);
    page.on('dialog', (dialog) => void dialog.accept());
    await page.goto(`${nodes[0]?.url}/dashboard#token=${admin}`);
    await page.locator('#status[data-status="open"]').waitFor();

    // ---- every node in one view, this one first
    const nodeRows = await until(
      'both nodes in the nodes table',
      () => rowsOf(page, '#nodes'),
      (rows) => rows.length === 2,
    );
    assert.deepEqual(
      nodeRows.map((row) => [row.node, row.self, row.state]),
      [
        [a, 'true', 'ready'],
        [b, 'false', 'ready'],
      ],
    );
    // Node b's figures come from its heartbeat: its three streams, the 24 events it accepted.
    await until(
      "node b's figures",
      async () => (await rowsOf(page, '#nodes'))[1],
      (row) => row?.connections === '3' && row.published === '24',
    );
    assert.equal(await page.locator('#nodes-count').textContent(), '2');
    // Rates move with publishing on node b, in its row and in the cluster's totals (the
    // difference between two heartbeats over the time between them).
    const ticking = (async () => {
      for (let burst = 0; burst < 12; burst++) {
        await publish(
          1,
          'acme',
          Array.from({ length: 10 }, (_, n) => ({ topic: 'rooms/9', data: { burst, n } })),
        );
        await sleep(250);
      }
    })();
    // Read in one go: the row and the totals of the same answer.
    const rates = () =>
      page.evaluate(() => {
        const rows = document.querySelectorAll<HTMLElement>('#nodes tbody tr');
        const total = document.querySelector<HTMLElement>('#nodes-total');
        return [Number(rows[1]?.dataset.ratePublished), Number(total?.dataset.ratePublished)];
      });
    const [forB, forCluster] = await until('a published rate for node b', rates, ([rate]) => (rate ?? 0) > 0);
    assert.ok((forCluster ?? 0) >= (forB ?? 0));
    await ticking;

    // ---- per-tenant figures, summed over the nodes, as /v1/nodes gives them
    const tenants = await until(
      'the tenants table',
      async () => Object.fromEntries((await rowsOf(page, '#tenants')).map((row) => [row.tenant, row])),
      (seen) => seen.acme?.streams === '3' && seen.acme.delivered === '192' && seen.initech?.streams === '1',
    );
    // acme: 2 streams on a, 1 on b; 24 + 120 events accepted on b: the 24 on rooms/1 delivered to
    // alice twice and to carol once, the 120 on rooms/9 to carol's template only.
    assert.deepEqual(
      [tenants.acme?.streams, tenants.acme?.published, tenants.acme?.delivered],
      ['3', '144', '192'],
    );
    const globex = tenants['globex-worldwide-logistics-international'];
    assert.deepEqual([globex?.streams, globex?.published, globex?.delivered], ['1', '2', '2']);
    const api = (await nodesOf(nodes[0]?.url as string, admin)).nodes;
    const acmeStreams = api.reduce((sum, node) => sum + (node.tenants.acme?.streams ?? 0), 0);
    assert.equal(String(acmeStreams), tenants.acme?.streams);

    // ---- connections of both nodes
    const listed = await until(
      'the streams of both nodes',
      () => rowsOf(page, '#connections'),
      (rows) => ['alice', 'bob', 'carol', 'dave'].every((who) => rows.some((row) => row.subject === who)),
    );
    assert.deepEqual(
      listed.filter((row) => row.subject === 'alice').map((row) => row.node),
      [a, a],
    );
    assert.equal(listed.find((row) => row.subject === 'bob')?.node, b);
    assert.equal(listed.find((row) => row.subject === 'bob')?.id, bob.connectionId);

    // Filtered by topic: the streams whose selectors match rooms/1 (carol's template too, and
    // this page's own `*` stream, of the admin `ops`).
    await page.fill('#conn-topic', 'rooms/1');
    await page.click('#conn-filter button');
    await until(
      'the rooms/1 filter',
      async () => (await rowsOf(page, '#connections')).map((row) => row.subject).sort(),
      (subjects) => subjects.join() === 'alice,alice,bob,carol,ops',
    );

    // ---- presence of a topic, and a template refused with the hub's detail
    await page.fill('#presence-topic', 'rooms/1');
    await page.fill('#presence-tenant', 'acme');
    await page.click('#presence button');
    await page.locator('#presence-result[data-status="200"]').waitFor();
    assert.deepEqual(
      await page.$eval('#presence-result', (output) => [
        (output as HTMLElement).dataset.connections,
        (output as HTMLElement).dataset.subjects,
      ]),
      ['3', '2'],
    );
    assert.deepEqual(
      (await rowsOf(page, '#members')).map((row) => [row.subject, row.connections]),
      [
        ['alice', '2'],
        ['carol', '1'],
      ],
    );

    // ---- history of the topic, 20 a page, the older page going on from `next`
    await page.fill('#history-topic', 'rooms/1');
    await page.fill('#history-tenant', 'acme');
    await page.selectOption('#history-limit', '20');
    await page.click('#history button[type="submit"]');
    await page.locator('#history-result[data-page="1"]').waitFor();
    const first = (await rowsOf(page, '#history-events')).map((row) => row.id);
    assert.deepEqual(first, [...acmeIds].reverse().slice(0, 20));
    await page.click('#history-older');
    await page.locator('#history-result[data-page="2"]').waitFor();
    const second = (await rowsOf(page, '#history-events')).map((row) => row.id);
    assert.deepEqual(second, [...acmeIds].reverse().slice(20));

    await page.screenshot({ path: artifactPath('dashboard-cluster-1280.png'), fullPage: true });
    assert.deepEqual(await layoutProblems(page), [], 'at 1280 px');

    // ---- a connection held by the other node, ended from its row: told why, may not come back
    await page.fill('#conn-topic', '');
    await page.fill('#disconnect-reason', 'maintenance window');
    await page.uncheck('#disconnect-reconnect');
    await page.click(`#connections button[data-id="${bob.connectionId}"]`);
    await bob.until((s) => s.ended, 15_000, "bob's stream to end");
    const told = bob.events.find((event) => event.type === 'herald.disconnect');
    assert.deepEqual(JSON.parse(told?.data ?? '{}'), { reason: 'maintenance window', reconnect: false });
    await page.locator('#conn-result[data-disconnected="1"]').waitFor();

    // ---- every stream of a subject (carol, on node b), and of a tenant (initech, on node b)
    await page.check('#disconnect-reconnect');
    await page.fill('#disconnect-reason', 'moved');
    await page.fill('#conn-subject', 'carol');
    await page.click('#disconnect-subject');
    await carol.until((s) => s.ended, 15_000, "carol's stream to end");
    const toldCarol = carol.events.find((event) => event.type === 'herald.disconnect');
    assert.deepEqual(JSON.parse(toldCarol?.data ?? '{}'), { reason: 'moved', reconnect: true });
    await page.fill('#conn-subject', '');
    await page.fill('#conn-tenant', 'initech');
    await page.click('#disconnect-tenant');
    await dave.until((s) => s.ended, 15_000, "dave's stream to end");
    // alice (node a) was never named: her streams are still open, and still listed.
    assert.ok(alice.every((s) => !s.ended));
    await page.fill('#conn-tenant', '');
    await page.click('#conn-filter button');
    await until(
      'the list without the ended streams',
      async () => (await rowsOf(page, '#connections')).map((row) => row.subject),
      (subjects) =>
        !subjects.some((who) => ['bob', 'carol', 'dave'].includes(who ?? '')) && subjects.includes('alice'),
    );

    // ---- refusals show the hub's problem detail: a cancelled confirm sends nothing
    page.removeAllListeners('dialog');
    page.once('dialog', (dialog) => void dialog.dismiss());
    const before = await page.$eval('#conn-result', (output) => output.textContent);
    await page.click(`#connections button[data-id="${alice[0]?.connectionId}"]`);
    await page.fill('#presence-topic', 'rooms/{id}');
    await page.click('#presence button');
    await page.locator('#presence-result[data-status="400"]').waitFor();
    assert.match(
      (await page.textContent('#presence-result')) ?? '',
      /invalid-topic: presence is asked of one topic/,
    );
    assert.equal(await page.$eval('#conn-result', (output) => output.textContent), before);
    assert.ok(alice.every((s) => !s.ended));
    // "Disconnect subject" with no subject in the filter asks nothing of the hub: it says what is missing.
    await page.fill('#conn-subject', '');
    await page.click('#disconnect-subject');
    assert.match((await page.textContent('#conn-result')) ?? '', /give a subject in the filter first/);
    assert.ok(alice.every((s) => !s.ended));

    // ---- 390 px: one column, nothing scrolls the page sideways, tables scroll in their card
    await page.setViewportSize({ width: 390, height: 844 });
    await sleep(100);
    assert.deepEqual(await layoutProblems(page), [], 'at 390 px');
    assert.ok(
      await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth),
      'no horizontal overflow at 390 px',
    );
    await page.screenshot({ path: artifactPath('dashboard-cluster-390.png'), fullPage: true });

    assert.deepEqual(
      console.errors.filter((error) => !/status of 400/.test(error)),
      [],
    );
    await page.close();
  });

  test('a non-admin token sees no cluster figures; an admin token pasted then does, and each action is sent once', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const user = await token({ tenant: 'acme', subscribe: ['*'] });
    await page.goto(`${nodes[1]?.url}/dashboard#token=${user}`);
    await page.locator('#nodes-status[data-status="403"]').waitFor();
    assert.match((await page.textContent('#nodes-status')) ?? '', /admin/);
    await page.locator('#conn-summary[data-status="403"]').waitFor();
    assert.equal(await page.locator('#nodes tbody tr').count(), 0);
    assert.equal(await page.locator('#connections tbody tr').count(), 0);

    // The admin token, pasted: the cards start over with it (a new credential, not a second page).
    const eve = await open(0, 'acme', 'eve', ['rooms/5']);
    await page.fill('#token', admin);
    await page.click('#auth button');
    await until(
      'both nodes for the admin',
      () => rowsOf(page, '#nodes'),
      (rows) => rows.length === 2,
    );
    await page.locator(`#connections button[data-id="${eve.connectionId}"]`).waitFor();
    let posts = 0;
    page.on('request', (request) => {
      if (request.method() === 'POST' && request.url().endsWith('/v1/connections/disconnect')) posts++;
    });
    page.on('dialog', (dialog) => void dialog.accept());
    await page.click(`#connections button[data-id="${eve.connectionId}"]`);
    await eve.until((s) => s.ended, 15_000, "eve's stream (on the other node) to end");
    await page.locator('#conn-result[data-disconnected="1"]').waitFor();
    assert.equal(posts, 1);
    await page.close();
  });
});
