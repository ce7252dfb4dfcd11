import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { build } from 'esbuild';
import type { Browser } from 'playwright-core';
import { createHerald, type Herald } from '../../src/herald.ts';
import { nodeHandler } from '../../src/http/node.ts';
import { artifactPath, launchBrowser, watchConsole } from '../browser/harness.ts';
import { section } from '../docs/snippet-app.ts';

/**
 * The README's React tile ("On a React page"), as written there: its one `tsx` block is
 * type-checked with the repository's settings (strict, `herald/react` from the source), then
 * bundled and rendered in Chromium against a hub whose scores were published with a key, as the
 * README's server publishes them. The page must show the latest scores when it opens and after a
 * reload, before anything new is published.
 */

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const APP = join(ROOT, 'test-artifacts', `readme-tile-${process.pid}`);
const REACT = join(ROOT, 'src/client/react.ts');

let tile: string;
let browser: Browser;
let herald: Herald;
let server: Server;
let url: string;

before(async () => {
  const blocks = [
    ...section(readFileSync(join(ROOT, 'README.md'), 'utf8'), 'On a React page').matchAll(
      /^```tsx\n([\s\S]*?)^```$/gm,
    ),
  ];
  assert.equal(blocks.length, 1, 'the README\'s "On a React page" has one tsx block');
  tile = blocks[0]?.[1] as string;
  rmSync(APP, { recursive: true, force: true });
  mkdirSync(APP, { recursive: true });
  writeFileSync(join(APP, 'tile.tsx'), tile);
  writeFileSync(
    join(APP, 'page.tsx'),
    `import { createRoot } from 'react-dom/client';
import { StrictMode } from 'react';
import { DealerAiTileLive } from './tile.tsx';
createRoot(document.getElementById('root') as HTMLElement).render(
  <StrictMode><DealerAiTileLive dealerId="STORE1" /></StrictMode>,
);
`,
  );
});
after(async () => {
  await browser?.close();
  await herald?.close();
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
  rmSync(APP, { recursive: true, force: true });
});

test('the README tile type-checks as written (strict, herald/react typed by its event map)', async () => {
  writeFileSync(
    join(APP, 'tsconfig.json'),
    JSON.stringify({
      extends: '../../tsconfig.json',
      compilerOptions: { paths: { 'herald/react': [REACT] }, types: ['node'] },
      include: ['tile.tsx', 'page.tsx'],
    }),
  );
  const tsc = join(ROOT, 'node_modules/typescript/bin/tsc');
  const run = promisify(execFile);
  const result = await run(process.execPath, [tsc, '-p', join(APP, 'tsconfig.json')], {
    cwd: APP,
  }).catch((error: { stdout: string; stderr: string }) => error);
  assert.equal(`${result.stdout}${result.stderr}`, '', 'tsc reports nothing');
});

test('the README tile shows the latest scores on first load and after a reload, then goes on live', async () => {
  herald = createHerald();
  const realtime = nodeHandler(herald, { basePath: '/realtime' });
  const bundle = await build({
    entryPoints: [join(APP, 'page.tsx')],
    bundle: true,
    write: false,
    format: 'esm',
    platform: 'browser',
    target: 'chrome120',
    jsx: 'automatic',
    alias: { 'herald/react': REACT },
    define: { 'process.env.NODE_ENV': '"development"' },
    logLevel: 'silent',
  });
  const script = bundle.outputFiles[0]?.contents as Uint8Array;
  server = createServer((request, response) => {
    if (request.url?.startsWith('/realtime/')) return realtime(request, response);
    if (request.url === '/app.js') {
      response.writeHead(200, { 'content-type': 'text/javascript' }).end(script);
    } else {
      response
        .writeHead(200, { 'content-type': 'text/html; charset=utf-8' })
        .end(
          '<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,"><main id="root"></main><script type="module" src="/app.js"></script>',
        );
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;

  // As the README's route publishes: a key per vehicle. VIN1 twice, so its latest is what counts.
  const score = (vin: string, avi: number, ati: number, cis: number) =>
    herald.publish({
      topic: 'dealers/STORE1/scores',
      type: 'ai-score',
      tags: { vin },
      key: vin,
      data: { vin, avi, ati, cis },
    });
  await score('VIN1', 10, 10, 10);
  await score('VIN2', 60, 70, 80);
  await score('VIN1', 70, 80, 90);
  await score('VIN3', 0, 0, 0);
  await herald.publish({ topic: 'dealers/STORE2/scores', type: 'ai-score', key: 'VIN9', data: { avi: 1 } });

  browser = await launchBrowser();
  const page = await browser.newPage({ viewport: { width: 800, height: 400 } });
  const console = watchConsole(page);
  // The latest of VIN1, VIN2 and VIN3: (70 + 60 + 0) / 3…
  const current = 'AVI 43.3 · ATI 50.0 · CIS 56.7';
  await page.goto(url);
  await page.locator('.tile[data-status="open"]').getByText(current).waitFor();
  await page.reload();
  await page.locator('.tile[data-status="open"]').getByText(current).waitFor();
  await page.screenshot({ path: artifactPath('readme-tile.png') });

  // Live from there: the window is the last five events, so VIN2's new score joins the three.
  await score('VIN2', 100, 100, 100);
  await page.getByText('AVI 57.5 · ATI 62.5 · CIS 67.5').waitFor();
  assert.deepEqual(console.errors, []);
});
