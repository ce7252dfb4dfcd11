/**
 * Time to first paint of 1 000 tiles from a snapshot, in a real Chromium.
 *
 * A hub (`createHerald` on node:http, open mode), once on the memory broker and once on the
 * machine's Redis (a log of its own, removed afterwards), holds the latest event of 1 000 keys,
 * one per topic `tiles/<n>`. A page bundled by esbuild opens `createClient` on `tiles/{n}` with
 * `snapshot: 'latest'`, draws one element per tile as events arrive, and once the snapshot is in
 * (`onHistory`) waits two animation frames: by then the tiles have been laid out and painted.
 * Reported per run: that moment, in ms since navigation start, and the time from `createClient`
 * to `onHistory`. Each run is a fresh browser context and page against the same hub.
 *
 * `PATH=node_modules/.bin:$PATH node bench/first-paint.ts` (Node ≥ 22: the `node` devDependency).
 * Everything it starts (servers, hubs, Chromium, Redis keys) is undone on success, on failure and
 * on Ctrl-C.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { type Browser, chromium } from 'playwright-core';
import { brokerFor } from '../src/backends/connect.ts';
import type { HistoryInfo } from '../src/client/api.ts';
import type { createClient } from '../src/client/index.ts';
import { createHerald } from '../src/herald.ts';
import { nodeHandler } from '../src/http/node.ts';
import { watchConsole } from '../test/browser/harness.ts';
import { deletePrefix } from '../test/helpers/redis-server.ts';

const CHROMIUM = '/usr/bin/chromium';
const REDIS_URL = 'redis://127.0.0.1:6379';
const TILES = 1_000;
const PUBLISH_BATCH = 100;
const RUNS = 5;
/** A run that has not painted by then has failed (a healthy one takes well under a second). */
const RUN_TIMEOUT_MS = 30_000;
/** How long the hub may take to serve every published tile in its snapshot. */
const SETTLE_TIMEOUT_MS = 10_000;
/** Closing a server, the hub or the browser, or deleting keys, must not hang the exit. */
const CLEANUP_TIMEOUT_MS = 10_000;
const ROOT = fileURLToPath(new URL('../', import.meta.url));

const BACKENDS = [
  { name: 'memory', url: 'memory' },
  { name: 'redis', url: REDIS_URL },
] as const;

/** What the page reports for one run. */
interface PaintResult {
  /** `performance.now()` two frames after `onHistory`, minus navigation start. */
  readonly paintMs: number;
  /** From just before `createClient` to `onHistory`. */
  readonly historyMs: number;
  /** Tile elements in the page at `onHistory`. */
  readonly tiles: number;
  readonly history: HistoryInfo;
}

declare global {
  interface Window {
    /** Set by the page: settles once the tiles are painted, or the client failed first. */
    firstPaint?: Promise<PaintResult>;
  }
}

/**
 * The page's script. It runs in Chromium, serialized into the bundle with the client it is given,
 * so it may use nothing else of this module. The hub's URL comes in `?hub=`.
 */
function tilesPage(create: typeof createClient): void {
  window.firstPaint = new Promise<PaintResult>((resolve, reject) => {
    const hub = new URLSearchParams(location.search).get('hub') as string;
    const root = document.getElementById('root') as HTMLElement;
    const tiles = new Map<number, HTMLElement>();
    const statuses: string[] = [];
    const navigationStart = performance.getEntriesByType('navigation')[0]?.startTime ?? 0;
    const startedAt = performance.now();
    const client = create({ url: hub, topics: ['tiles/{n}'], snapshot: 'latest', shareTabs: false });
    client.on('*', (message) => {
      const { n, value } = message.data as { n: number; value: number };
      let tile = tiles.get(n);
      if (tile === undefined) {
        tile = document.createElement('div');
        tile.className = 'tile';
        root.append(tile);
        tiles.set(n, tile);
      }
      tile.textContent = `#${n} ${value}`;
    });
    client.onStatus((change) => {
      statuses.push(change.reason ? `${change.status} (${change.reason})` : change.status);
      // A drop or a refusal before the snapshot is in would measure a reconnection, not a first paint.
      if (change.status === 'reconnecting' || change.status === 'closed') {
        reject(new Error(`the client went ${change.status} before the snapshot: ${statuses.join(' → ')}`));
      }
    });
    client.onHistory((history) => {
      const historyMs = performance.now() - startedAt;
      const count = tiles.size;
      requestAnimationFrame(() =>
        requestAnimationFrame(() => {
          resolve({ paintMs: performance.now() - navigationStart, historyMs, tiles: count, history });
        }),
      );
    });
  });
}

const PAGE_HTML =
  '<!doctype html><html><head><meta charset="utf-8"><title>Herald first paint</title>' +
  '<link rel="icon" href="data:,"><style>' +
  'body{margin:0;font:12px system-ui,sans-serif}' +
  '#root{display:grid;grid-template-columns:repeat(auto-fill,minmax(72px,1fr));gap:2px;padding:4px}' +
  '.tile{padding:4px;border:1px solid #ccc;border-radius:3px;background:#f6f8fa}' +
  '</style></head><body><main id="root"></main><script type="module" src="/app.js"></script></body></html>';

// ── Cleanup: everything started is undone, newest first, whatever happens ──────────────────────

const cleanups: { what: string; undo: () => Promise<void> }[] = [];

function onCleanup(what: string, undo: () => Promise<void>): void {
  cleanups.push({ what, undo });
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took over ${ms / 1000} s`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

/** The cleanup under way: a second one (Ctrl-C while the run cleans up) waits for it. */
let cleaning: Promise<unknown> = Promise.resolve();
/** Set on SIGINT/SIGTERM: what fails after that is the interruption, not worth a stack trace. */
let interrupted = false;

/**
 * Runs (and forgets) the cleanups registered since `mark` (by default all of them), each even when
 * one before it failed, and one cleanup at a time; reports a failure, and says whether there was none.
 */
function cleanUp(mark = 0): Promise<boolean> {
  const done = cleaning.then(() => unwind(mark));
  cleaning = done;
  return done;
}

async function unwind(mark: number): Promise<boolean> {
  let clean = true;
  while (cleanups.length > mark) {
    const step = cleanups.pop() as (typeof cleanups)[number];
    try {
      await withTimeout(step.undo(), CLEANUP_TIMEOUT_MS, step.what);
    } catch (error) {
      clean = false;
      console.error(`cleanup: ${step.what} failed: ${error instanceof Error ? error.message : error}`);
    }
  }
  return clean;
}

function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve, reject) => server.close((error) => (error ? reject(error) : resolve())));
}

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

// ── The page server, the hub, the runs ───────────────────────────────────────────────────────────

/** Serves the page and its bundle (the client and `tilesPage`), as test/browser/harness.ts does. */
async function servePage(): Promise<string> {
  const bundle = await build({
    stdin: {
      contents:
        "import { createClient } from './src/client/index.ts';\n" +
        `(${tilesPage.toString()})(createClient);\n`,
      resolveDir: ROOT,
      sourcefile: 'first-paint-page.ts',
      loader: 'ts',
    },
    bundle: true,
    write: false,
    format: 'esm',
    platform: 'browser',
    target: 'chrome120',
    minify: true,
    logLevel: 'silent',
  });
  const script = bundle.outputFiles[0]?.contents as Uint8Array;
  const server = createServer((request, response) => {
    const path = new URL(request.url ?? '/', 'http://page').pathname;
    if (path === '/app.js') {
      response.writeHead(200, { 'content-type': 'text/javascript', 'cache-control': 'no-store' });
      response.end(script);
    } else if (path === '/') {
      response.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      response.end(PAGE_HTML);
    } else {
      response.writeHead(404).end();
    }
  });
  const origin = await listen(server);
  onCleanup('closing the page server', () => closeServer(server));
  return origin;
}

/** A hub on `brokerUrl`, on a fresh log, holding the latest event of every tile; its URL. */
async function startHub(brokerUrl: string, pageOrigin: string): Promise<string> {
  const stream = `bench_first_paint_${Date.now().toString(36)}_${randomBytes(4).toString('hex')}`;
  // Registered before the broker exists, so that keys written by a start that fails halfway go too.
  if (brokerUrl !== 'memory') {
    onCleanup(`deleting the Redis keys ${stream}:*`, () => deletePrefix(brokerUrl, stream));
  }
  const broker = await brokerFor({ url: brokerUrl, stream });
  const herald = createHerald({ broker, open: true, corsOrigins: [pageOrigin] });
  onCleanup('closing the hub', () => herald.close());
  await herald.hub.whenReady();
  const handler = nodeHandler(herald);
  const server = createServer(handler);
  const url = await listen(server);
  onCleanup('closing the hub server', async () => {
    handler.closeStreams();
    await closeServer(server);
  });

  for (let from = 0; from < TILES; from += PUBLISH_BATCH) {
    const batch = [];
    for (let n = from; n < Math.min(from + PUBLISH_BATCH, TILES); n++) {
      batch.push({ topic: `tiles/${n}`, type: 'tile', key: `tile-${n}`, data: { n, value: n * 7 } });
    }
    await herald.publish(batch);
  }
  // `publish` resolves once the events are in the log; the hub's snapshots include them once its
  // feed has dispatched them too (a slot newer than that is left to the live feed), an instant
  // later. The runs measure a full snapshot, so they start once the hub serves one.
  const deadline = Date.now() + SETTLE_TIMEOUT_MS;
  for (;;) {
    const latest = await herald.latest({ topics: 'tiles/{n}' });
    if (latest.events.length === TILES && latest.complete) return url;
    if (Date.now() > deadline) {
      throw new Error(
        `${SETTLE_TIMEOUT_MS / 1000} s after publishing, the hub's snapshot holds ` +
          `${latest.events.length} tiles (complete: ${latest.complete}), not ${TILES}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

async function measure(browser: Browser, pageUrl: string): Promise<PaintResult> {
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    const console = watchConsole(page);
    await page.goto(pageUrl);
    const result = await withTimeout(
      page.evaluate(() => window.firstPaint as Promise<PaintResult>),
      RUN_TIMEOUT_MS,
      'the first paint',
    );
    if (result.tiles !== TILES || result.history.events !== TILES || !result.history.complete) {
      throw new Error(
        `the page had ${result.tiles} tiles at onHistory (snapshot: ${JSON.stringify(result.history)}), ` +
          `not ${TILES}`,
      );
    }
    if (console.errors.length > 0) throw new Error(`the page logged errors: ${console.errors.join('; ')}`);
    return result;
  } finally {
    await context.close();
  }
}

// ── Report ───────────────────────────────────────────────────────────────────────────────────────

const median = (values: readonly number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[middle] as number)
    : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
};
const ms = (value: number) => value.toFixed(1);
const loadAverage = () =>
  os
    .loadavg()
    .map((load) => load.toFixed(2))
    .join(' ');

async function main(): Promise<void> {
  const loadBefore = loadAverage();
  const pageOrigin = await servePage();
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
  onCleanup('closing Chromium', () => browser.close());

  const rows: string[] = [];
  const runs: string[] = [];
  for (const backend of BACKENDS) {
    const mark = cleanups.length;
    const hubUrl = await startHub(backend.url, pageOrigin);
    const results: PaintResult[] = [];
    for (let run = 0; run < RUNS; run++) {
      results.push(await measure(browser, `${pageOrigin}/?${new URLSearchParams({ hub: hubUrl })}`));
    }
    const paint = results.map((result) => result.paintMs);
    const history = results.map((result) => result.historyMs);
    rows.push(
      `| ${backend.name} | ${RUNS} | ${ms(median(paint))} | ${ms(Math.max(...paint))} | ` +
        `${ms(median(history))} | ${ms(Math.max(...history))} |`,
    );
    runs.push(
      `- ${backend.name}: first paint ${paint.map(ms).join(', ')} ms; ` +
        `createClient → onHistory ${history.map(ms).join(', ')} ms`,
    );
    // This backend's hub is done with: close it (and drop its keys) before the next one starts.
    if (!(await cleanUp(mark))) throw new Error(`the ${backend.name} hub did not shut down cleanly`);
  }

  console.log(
    `First paint of ${TILES} tiles from a snapshot (snapshot: 'latest'), Chromium ${browser.version()}, ` +
      `${RUNS} runs per backend, each on a fresh page\n`,
  );
  console.log(
    '| Broker | Runs | First paint median (ms) | First paint max (ms) | createClient → onHistory median (ms) | createClient → onHistory max (ms) |',
  );
  console.log('| --- | --: | --: | --: | --: | --: |');
  for (const row of rows) console.log(row);
  console.log(`\n${runs.join('\n')}`);
  console.log(
    `\nLoad average (1, 5, 15 min): ${loadBefore} before, ${loadAverage()} after; ` +
      `${os.availableParallelism()} cores, ${os.cpus()[0]?.model ?? 'unknown CPU'}, Node ${process.version}`,
  );
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    interrupted = true;
    console.error(`\n${signal}: cleaning up`);
    void cleanUp().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  });
}

try {
  await main();
} catch (error) {
  if (!interrupted) console.error(error);
  process.exitCode = 1;
} finally {
  if (!(await cleanUp())) process.exitCode = 1;
}
