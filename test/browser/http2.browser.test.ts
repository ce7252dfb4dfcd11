import assert from 'node:assert/strict';
import type { ClientHttp2Session } from 'node:http2';
import { after, before, describe, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { h2connect, h2request } from '../helpers/h2-client.ts';
import { type HubProcess, spawnHub } from '../helpers/nodes.ts';
import { makeCertificate, type TestCertificate } from '../helpers/tls.ts';
import { bearer, SECRET, token } from '../helpers/tokens.ts';
import { launchBrowser, type PageServer, servePage, watchConsole } from './harness.ts';

const STREAMS = 10;

/** Open streams on the hub, as its admin view of /v1/stats counts them. */
async function openStreams(session: ClientHttp2Session): Promise<number> {
  const stats = await h2request(session, 'GET', '/v1/stats', bearer(await token({ admin: true })));
  assert.equal(stats.status, 200, stats.text);
  return (stats.json() as { connections: { total: number } }).connections.total;
}

async function until(check: () => Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** The protocol Chromium negotiated for each /v1/events response, from the DevTools protocol. */
async function streamProtocols(page: Page): Promise<string[]> {
  const protocols: string[] = [];
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Network.enable');
  cdp.on('Network.responseReceived', ({ response, type }) => {
    // Each stream's CORS preflight has a response of its own.
    if (type === 'Fetch' && new URL(response.url).pathname === '/v1/events') {
      protocols.push(response.protocol ?? 'unknown');
    }
  });
  return protocols;
}

describe('HTTP/2 in a real browser (Chromium)', () => {
  let browser: Browser;
  let cert: TestCertificate;
  let pageServer: PageServer;
  let session: ClientHttp2Session;
  const hubs: HubProcess[] = [];

  before(async () => {
    cert = makeCertificate();
    browser = await launchBrowser();
    pageServer = await servePage('many-streams.ts', { subscribe: ['*'] });
  });
  after(async () => {
    session?.destroy();
    await browser?.close();
    await Promise.all(hubs.map((hub) => hub.kill()));
    await pageServer?.close();
    cert?.remove();
  });

  const spawn = async (tls: boolean) => {
    const hub = await spawnHub([
      '--jwt-secret',
      SECRET,
      '--cors-origin',
      pageServer.origin,
      ...(tls ? ['--tls-cert', cert.certFile, '--tls-key', cert.keyFile] : []),
    ]);
    hubs.push(hub);
    return hub;
  };

  test(`one page holds ${STREAMS} streams to the hub over HTTP/2, more than HTTP/1.1's 6, and all receive events`, async () => {
    const hub = await spawn(true);
    session = await h2connect(hub.url, cert.cert);
    // The certificate is self-signed: this context trusts it, as a browser with its CA installed would.
    const context = await browser.newContext({ ignoreHTTPSErrors: true });
    const page = await context.newPage();
    const console = watchConsole(page);
    const protocols = await streamProtocols(page);
    await page.goto(pageServer.url({ hub: hub.url, topic: 'wide', streams: String(STREAMS) }));
    await until(async () => (await openStreams(session)) === STREAMS, `${STREAMS} open streams`);

    const published = await h2request(
      session,
      'POST',
      '/v1/publish',
      { 'content-type': 'application/json', ...bearer(await token({ publish: ['*'] })) },
      JSON.stringify([1, 2, 3, 4, 5].map((n) => ({ topic: 'wide', type: 'count', data: { n } }))),
    );
    assert.equal(published.status, 202, published.text);
    const ids = published.json().ids as string[];
    await page.waitForFunction((n) => window.many.received.every((seen) => seen.length >= n), ids.length, {
      timeout: 20_000,
    });
    const received = await page.evaluate(() => window.many.received);
    assert.equal(received.length, STREAMS);
    for (const seen of received) assert.deepEqual(seen, ids);
    assert.deepEqual(protocols, Array(STREAMS).fill('h2'));
    assert.deepEqual(console.errors, []);
    await context.close();
  });

  test('the reason: the same page over HTTP/1.1 gets only 6 of its streams open', async () => {
    const hub = await spawn(false);
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(pageServer.url({ hub: hub.url, topic: 'narrow', streams: String(STREAMS) }));
    const stats = async () => {
      const response = await fetch(`${hub.url}/v1/stats`, { headers: bearer(await token({ admin: true })) });
      return ((await response.json()) as { connections: { total: number } }).connections.total;
    };
    await until(async () => (await stats()) === 6, '6 open streams');
    // The browser holds the other 4 back for as long as the first 6 stay open.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    assert.equal(await stats(), 6);
    await context.close();
  });
});
