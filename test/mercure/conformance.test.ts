import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { BROWSER_SKIP, CHROMIUM } from '../browser/harness.ts';
import { spawnHub } from '../helpers/nodes.ts';
import { MERCURE_SECRET } from './mercure-client.ts';

/**
 * The Mercure project's own conformance suite (`conformance-tests/` of dunglas/mercure at v0.24.2,
 * Playwright) against `herald serve --jwt-secret … --anonymous`, in Debian's Chromium.
 *
 * The suite is not copied into this repository: it is taken from a clone of dunglas/mercure
 * (MERCURE_REPO, default: this machine's snapshot) or from a directory that holds it
 * (MERCURE_CONFORMANCE_DIR), and run from a temporary directory with the @playwright/test that
 * matches our playwright-core.
 */
const TAG = 'v0.24.2';
const REPO = process.env.MERCURE_REPO ?? '/work/.mirror/dunglas+mercure/repo';
// Not under node_modules: Node will not strip the types of a .ts file there, and Playwright asks it to.
const WORK = join(tmpdir(), 'herald-mercure-conformance/');
const SUITE = join(WORK, 'conformance-tests/');

/** Where the suite came from, or why it is not here. */
function fetchSuite(): string | undefined {
  const given = process.env.MERCURE_CONFORMANCE_DIR;
  if (given !== undefined) {
    mkdirSync(SUITE, { recursive: true });
    execFileSync('cp', ['-R', `${given}/.`, SUITE]);
    return undefined;
  }
  if (!existsSync(REPO)) {
    return `no clone of dunglas/mercure at ${REPO}: set MERCURE_REPO to one, or MERCURE_CONFORMANCE_DIR to its conformance-tests folder`;
  }
  mkdirSync(WORK, { recursive: true });
  const archive = execFileSync('git', ['-C', REPO, 'archive', TAG, 'conformance-tests']);
  execFileSync('tar', ['-x', '-C', WORK], { input: archive });
  return undefined;
}

function installRunner(): void {
  const { version } = JSON.parse(
    readFileSync(new URL('../../node_modules/playwright-core/package.json', import.meta.url), 'utf8'),
  ) as { version: string };
  const installed = `${SUITE}node_modules/@playwright/test/package.json`;
  if (existsSync(installed) && JSON.parse(readFileSync(installed, 'utf8')).version === version) return;
  execFileSync(
    'npm',
    ['install', '--no-save', '--no-audit', '--no-fund', `@playwright/test@${version}`, 'dotenv'],
    { cwd: SUITE, stdio: 'ignore' },
  );
}

/** The suite's own settings, run in Chromium only: the browser this machine has. */
const CONFIG = `import { devices } from '@playwright/test';
import base from './playwright.config';
export default {
  ...base,
  reporter: [['json', { outputFile: 'herald-results.json' }]],
  retries: 0,
  workers: 1,
  projects: [{ name: 'chromium', use: { ...devices['Desktop Chrome'], launchOptions: {
    executablePath: ${JSON.stringify(CHROMIUM)},
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  } } }],
};
`;

interface Results {
  stats: { expected: number; unexpected: number; skipped: number; flaky: number };
}

test(`the Mercure conformance suite (${TAG}) passes against herald serve --anonymous in Chromium`, {
  // An external suite of 11 browser tests, with a hub process: more than one test's time.
  timeout: 300_000,
}, async (t) => {
  if (BROWSER_SKIP !== undefined) {
    t.skip(BROWSER_SKIP);
    return;
  }
  const missing = fetchSuite();
  if (missing !== undefined) {
    t.skip(missing);
    return;
  }
  assert.ok(
    existsSync(CHROMIUM),
    `no Chromium at ${CHROMIUM} (npm test installs it where it can; HERALD_SKIP_BROWSER=1 skips this)`,
  );
  installRunner();
  writeFileSync(`${SUITE}herald.config.ts`, CONFIG);
  rmSync(`${SUITE}herald-results.json`, { force: true }); // not a previous run's
  const hub = await spawnHub(['--jwt-secret', MERCURE_SECRET, '--anonymous']);
  let run: ChildProcess | undefined;
  try {
    const exit = await new Promise<number | null>((resolve, reject) => {
      run = spawn(`${SUITE}node_modules/.bin/playwright`, ['test', '-c', 'herald.config.ts'], {
        cwd: SUITE,
        // CUSTOM_ID: the hub must answer with the id the publisher chose, which Herald does.
        env: { ...process.env, BASE_URL: `${hub.url}/.well-known/mercure`, CUSTOM_ID: '1', CI: '' },
        stdio: 'ignore',
      });
      run.once('error', reject);
      run.once('exit', resolve);
    });
    const results = JSON.parse(readFileSync(`${SUITE}herald-results.json`, 'utf8')) as Results;
    assert.equal(results.stats.unexpected, 0, `${results.stats.unexpected} conformance tests failed`);
    assert.equal(results.stats.skipped, 0);
    assert.ok(results.stats.expected >= 11, `${results.stats.expected} tests ran; the suite has 11`);
    assert.equal(exit, 0);
  } finally {
    // Timed out or failed: the Playwright run (it closes its browsers on SIGTERM) goes with the hub.
    const child = run as ChildProcess | undefined;
    if (child !== undefined && child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await hub.stop();
  }
});
