import assert from 'node:assert/strict';
import { test } from 'node:test';

/**
 * Server rendering: importing herald/client and herald/react, and rendering every hook with
 * react-dom/server, reads no browser global. Each is a trap that notes a read made from src/client/
 * (React's own feature checks are its business), installed before the modules are imported; this
 * file runs in a process of its own, so no other test has put a fake `window` in place.
 */

const BROWSER_GLOBALS = [
  'window',
  'document',
  'location',
  'navigator',
  'EventSource',
  'sessionStorage',
  'localStorage',
  'addEventListener',
  'removeEventListener',
] as const;

const reads: string[] = [];
for (const name of BROWSER_GLOBALS) {
  const before = Object.getOwnPropertyDescriptor(globalThis, name);
  Object.defineProperty(globalThis, name, {
    configurable: true,
    get() {
      const stack = new Error().stack ?? '';
      if (stack.includes('/src/client/')) reads.push(`${name}\n${stack}`);
      return before?.get ? before.get.call(globalThis) : before?.value;
    },
  });
}

// Imported once every trap is in place.
const { createElement } = await import('react');
const { renderToString } = await import('react-dom/server');
await import('../../src/client/index.ts');
const { createHeraldHooks } = await import('../../src/client/react.ts');

type Events = { 'ai-score': { avi: number }; msrp: { new: number } };
const hooks = createHeraldHooks<Events>();

function Tile() {
  const score = hooks.useLatest('ai-score', (data) => data.avi);
  const { events } = hooks.useHeraldEvents('msrp', { limit: 3 });
  hooks.useHeraldEvent('ai-score', () => {});
  const { status } = hooks.useHeraldStatus();
  const reconnect = hooks.useReconnect();
  const client = hooks.useHerald();
  return createElement(
    'p',
    { onClick: reconnect },
    `${score ?? '–'} ${events.length} ${status} ${client.topics.join(',')}`,
  );
}

test('importing herald/client and herald/react and rendering every hook on the server reads no browser global', () => {
  const html = renderToString(
    createElement(
      hooks.HeraldProvider,
      { options: { url: 'https://hub.example.com', topics: ['dealers/S1'], snapshot: 'latest' } },
      createElement(Tile),
    ),
  );
  assert.equal(html, '<p>– 0 connecting dealers/S1</p>');
  assert.deepEqual(reads, []);
});
