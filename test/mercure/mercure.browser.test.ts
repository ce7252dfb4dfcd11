import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { Browser } from 'playwright-core';
import { launchBrowser, watchConsole } from '../browser/harness.ts';
import { startHub, type TestHub } from '../helpers/server.ts';
import { bearer, MERCURE_SECRET, mercurePublish, mercureToken } from './mercure-client.ts';

interface Received {
  type: string;
  id: string;
  data: string;
}

/** An app's page on an origin of its own, as a Mercure app serves it beside the hub. */
async function appOrigin(): Promise<{ origin: string; server: Server }> {
  const server = createServer((_, response) => {
    response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    response.end(
      '<!doctype html><html><head><title>app</title><link rel="icon" href="data:,"></head></html>',
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

describe('Mercure subscribers in a real browser (EventSource in Chromium)', () => {
  let browser: Browser;
  let app: { origin: string; server: Server };
  let hub: TestHub;
  let publisher: Record<string, string>;

  before(async () => {
    browser = await launchBrowser();
    app = await appOrigin();
    hub = await startHub({
      auth: { jwt: { secrets: [MERCURE_SECRET] }, anonymous: true },
      corsOrigins: [app.origin],
      // Streams end every ~second; EventSource comes back with Last-Event-ID after 100 ms.
      maxLifetimeMs: 1000,
      retryMs: 100,
    });
    await hub.herald.hub.whenReady();
    publisher = bearer(await mercureToken({ publish: ['*'] }));
  });
  after(async () => {
    await browser?.close();
    await hub?.close();
    app?.server.close();
  });

  test('a cross-origin EventSource with the mercureAuthorization cookie gets public and granted private updates, typed and multi-line', async () => {
    const context = await browser.newContext();
    const hubHost = new URL(hub.url).hostname;
    await context.addCookies([
      {
        name: 'mercureAuthorization',
        value: await mercureToken({ subscribe: ['https://example.com/books/1'] }),
        domain: hubHost,
        path: '/.well-known/mercure',
        httpOnly: true,
        sameSite: 'Lax',
      },
    ]);
    const page = await context.newPage();
    const watched = watchConsole(page);
    await page.goto(app.origin);
    const url = `${hub.url}/.well-known/mercure?topic=${encodeURIComponent('https://example.com/books/{id}')}`;
    await page.evaluate((url) => {
      const received: Received[] = [];
      Object.assign(window, { received });
      const source = new EventSource(url, { withCredentials: true });
      const keep = (event: MessageEvent) =>
        received.push({ type: event.type, id: event.lastEventId, data: event.data });
      source.onmessage = keep;
      source.addEventListener('stock', keep);
      return new Promise<void>((resolve) => {
        source.onopen = () => resolve();
      });
    }, url);
    await mercurePublish(
      hub.url,
      { topic: 'https://example.com/books/1', data: 'first\nsecond', id: 'urn:b:1' },
      publisher,
    );
    await mercurePublish(
      hub.url,
      { topic: 'https://example.com/books/2', data: 'not granted', private: true },
      publisher,
    );
    await mercurePublish(
      hub.url,
      {
        topic: 'https://example.com/books/1',
        data: '{"stock":3}',
        type: 'stock',
        private: true,
        id: 'urn:b:2',
      },
      publisher,
    );
    await page.waitForFunction(() => (window as unknown as { received: Received[] }).received.length >= 2);
    const received = await page.evaluate(() => (window as unknown as { received: Received[] }).received);
    assert.deepEqual(received, [
      { type: 'message', id: 'urn:b:1', data: 'first\nsecond' },
      { type: 'stock', id: 'urn:b:2', data: '{"stock":3}' },
    ]);
    assert.deepEqual(watched.errors, []);
    await context.close();
  });

  test('EventSource that the hub disconnects comes back with Last-Event-ID and misses nothing: 40 updates, each once, in order', async () => {
    const page = await browser.newPage();
    const watched = watchConsole(page);
    await page.goto(app.origin);
    const topic = `https://example.com/ticks/${globalThis.crypto.randomUUID()}`;
    await page.evaluate(
      (url) => {
        const received: Received[] = [];
        let opens = 0;
        Object.assign(window, { received, opens: () => opens });
        const source = new EventSource(url);
        source.onmessage = (event) =>
          received.push({ type: event.type, id: event.lastEventId, data: event.data });
        return new Promise<void>((resolve) => {
          source.onopen = () => {
            opens++;
            resolve();
          };
        });
      },
      `${hub.url}/.well-known/mercure?topic=${encodeURIComponent(topic)}`,
    );
    const sent: string[] = [];
    for (let i = 0; i < 40; i++) {
      sent.push(`tick ${i}`);
      await mercurePublish(hub.url, { topic, data: `tick ${i}` }, publisher);
      await new Promise((resolve) => setTimeout(resolve, 75));
    }
    await page.waitForFunction(
      (count) => (window as unknown as { received: Received[] }).received.length >= count,
      sent.length,
      { timeout: 15_000 },
    );
    const { received, opens } = await page.evaluate(() => {
      const w = window as unknown as { received: Received[]; opens: () => number };
      return { received: w.received, opens: w.opens() };
    });
    assert.ok(opens >= 2, `the stream was reopened (${opens} opens)`);
    assert.deepEqual(
      received.map((r) => r.data),
      sent,
    );
    assert.deepEqual(watched.errors, []);
    await page.close();
  });
});
