// Chromium for the browser tests (test/browser/harness.ts launches it; the Mercure conformance
// suite runs in it). Plain JavaScript with no dependencies, like bootstrap.mjs.
//
//   node scripts/chromium.mjs     installs it if it is missing and it can; exit 1 with one line if not
//
// HERALD_TEST_CHROMIUM names a Chromium other than /usr/bin/chromium (keep in step with harness.ts);
// HERALD_SKIP_BROWSER=1 skips the browser tests instead.
import { execSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

export const DEFAULT_CHROMIUM = '/usr/bin/chromium';
export const CHROMIUM = process.env.HERALD_TEST_CHROMIUM || DEFAULT_CHROMIUM;

/** Why the browser tests are skipped (HERALD_SKIP_BROWSER is set), or undefined. */
export function browserSkipReason() {
  const value = process.env.HERALD_SKIP_BROWSER ?? '';
  return value === '' || /^(0|false|no)$/i.test(value)
    ? undefined
    : `the browser tests are skipped (HERALD_SKIP_BROWSER=${value})`;
}

const hasAptGet = () => {
  try {
    execSync('command -v apt-get', { stdio: 'ignore', shell: '/bin/sh' });
    return true;
  } catch {
    return false;
  }
};

/**
 * True when Chromium is there, installing Debian's package first if it is missing and this
 * process can (root, apt-get, the default path). Otherwise prints one line saying what to do and
 * returns false.
 */
export function ensureChromium() {
  if (existsSync(CHROMIUM)) return true;
  const what = `the browser tests need Chromium at ${CHROMIUM}`;
  const instead = 'or set HERALD_SKIP_BROWSER=1 to skip them';
  if (CHROMIUM !== DEFAULT_CHROMIUM) {
    console.error(
      `✖ ${what} (HERALD_TEST_CHROMIUM), which does not exist: point it at a Chromium, ${instead}`,
    );
    return false;
  }
  const root = typeof process.getuid === 'function' && process.getuid() === 0;
  if (!root || !hasAptGet()) {
    const why = root ? 'there is no apt-get' : 'this is not root';
    console.error(
      `✖ ${what}, and ${why} to install it: run \`apt-get install chromium\` as root (or your system's equivalent), set HERALD_TEST_CHROMIUM to one, ${instead}`,
    );
    return false;
  }
  console.error(`Chromium is missing: installing Debian's chromium package for the browser tests (apt-get)`);
  try {
    execSync(
      'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null',
      {
        stdio: ['ignore', 'ignore', 'inherit'],
        shell: '/bin/sh',
      },
    );
  } catch {
    // Below.
  }
  if (existsSync(CHROMIUM)) return true;
  console.error(
    `✖ ${what}, and \`apt-get install chromium\` did not install it (see above): install it, ${instead}`,
  );
  return false;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  if (browserSkipReason() === undefined && !ensureChromium()) process.exit(1);
}
