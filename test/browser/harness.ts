import { existsSync, mkdirSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { type Browser, chromium, type Page } from 'playwright-core';
import { type TokenClaims, token } from '../helpers/tokens.ts';

/** Keep in step with scripts/chromium.mjs, which installs it before the suite runs. */
export const CHROMIUM = process.env.HERALD_TEST_CHROMIUM || '/usr/bin/chromium';
export const ARTIFACTS = fileURLToPath(new URL('../../test-artifacts/', import.meta.url));

/**
 * Why the browser tests are skipped, or undefined: HERALD_SKIP_BROWSER=1 (`npm test` then lists
 * every *.browser.test.ts file as skipped with this reason, without running it).
 */
export const BROWSER_SKIP = /^(|0|false|no)$/i.test(process.env.HERALD_SKIP_BROWSER ?? '')
  ? undefined
  : `the browser tests are skipped (HERALD_SKIP_BROWSER=${process.env.HERALD_SKIP_BROWSER})`;

/** Debian's Chromium, headless, with no network of its own beyond what the page asks for. */
export async function launchBrowser(): Promise<Browser> {
  if (BROWSER_SKIP !== undefined) {
    throw new Error(`${BROWSER_SKIP}: npm test leaves this file out`);
  }
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `the browser tests need Chromium at ${CHROMIUM}: npm test installs it where it can (root with apt-get); ` +
        'otherwise apt-get install -y chromium, set HERALD_TEST_CHROMIUM to another, or HERALD_SKIP_BROWSER=1 to skip them',
    );
  }
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

export interface PageServer {
  /** The page's URL; `query` is passed to the page script as `location.search`. */
  url(query?: Record<string, string>): string;
  readonly origin: string;
  /** Tokens handed out at /token so far. */
  readonly tokensIssued: number;
  close(): Promise<void>;
}

/**
 * Serves one page: an HTML shell, its script bundled by esbuild from `entry` (React in its
 * development build, so StrictMode mounts twice), and `/token`, which signs a fresh token with
 * `claims` each time the page's client asks for one, as an app's session endpoint would.
 */
export async function servePage(entry: string, claims: TokenClaims): Promise<PageServer> {
  const bundle = await build({
    entryPoints: [fileURLToPath(new URL(`pages/${entry}`, import.meta.url))],
    bundle: true,
    write: false,
    format: 'esm',
    platform: 'browser',
    target: 'chrome120',
    jsx: 'automatic',
    define: { 'process.env.NODE_ENV': '"development"' },
    logLevel: 'silent',
  });
  const script = bundle.outputFiles[0]?.contents as Uint8Array;
  let tokensIssued = 0;
  const server: Server = createServer(async (request, response) => {
    const path = new URL(request.url ?? '/', 'http://page').pathname;
    if (path === '/app.js') {
      response.writeHead(200, { 'content-type': 'text/javascript', 'cache-control': 'no-store' });
      response.end(script);
    } else if (path === '/token') {
      tokensIssued++;
      response.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'no-store' });
      response.end(await token(claims));
    } else if (path === '/') {
      response.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      response.end(
        '<!doctype html><html><head><meta charset="utf-8"><title>Herald test page</title><link rel="icon" href="data:,"></head>' +
          '<body><main id="root"></main><script type="module" src="/app.js"></script></body></html>',
      );
    } else {
      response.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    origin,
    url: (query = {}) => `${origin}/?${new URLSearchParams(query)}`,
    get tokensIssued() {
      return tokensIssued;
    },
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** Fails the test on any console error or uncaught exception in the page. */
export function watchConsole(page: Page): { errors: string[] } {
  const errors: string[] = [];
  page.on('console', (message) => {
    if (message.type() === 'error') errors.push(message.text());
  });
  page.on('pageerror', (error) => errors.push(error.message));
  return { errors };
}

/** Where screenshots go (gitignored; CI keeps the directory as an artifact). */
export function artifactPath(name: string): string {
  mkdirSync(ARTIFACTS, { recursive: true });
  return `${ARTIFACTS}${name}`;
}
