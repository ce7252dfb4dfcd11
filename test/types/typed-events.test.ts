/**
 * Typed events end to end: one event map drives `createHerald`, `herald.publish`, `createClient`,
 * `client.on` and the React hooks. The type check (`tsc --noEmit`, part of `npm test`) is the
 * real test: each `@ts-expect-error` below must be an error, or the check fails. The code also
 * runs, so that what type-checks is shown to work: a typed event goes from `herald.publish` to a
 * typed handler over a real stream, and the typed hooks render.
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, test } from 'node:test';
import { createElement, type ReactNode } from 'react';
import { renderToString } from 'react-dom/server';
import { createClient, type HeraldMessage } from '../../src/client/index.ts';
import { createHeraldHooks, useHeraldEvent, useLatest } from '../../src/client/react.ts';
import { createHerald, type Herald } from '../../src/herald.ts';
import { nodeHandler } from '../../src/http/node.ts';

interface AiScore {
  vin: string;
  dealerId: string;
  avi: number;
  ati: number;
  cis: number;
}

type Events = {
  'ai-score': AiScore;
  msrp: { vin: string; old: number; new: number; deltaPct: number };
  ping: undefined;
};

/** Code the type check reads and nothing runs: its misuses would throw or connect. */
const compileOnly = (_code: () => unknown): void => {};

const hooks = createHeraldHooks<Events>();

/** The typed hooks as a page uses them (rendered on the server by the last test). */
function Tile(): ReactNode {
  const msrp = hooks.useLatest('msrp');
  const delta: number | undefined = msrp?.deltaPct;
  const avi = hooks.useLatest('ai-score', (score) => score.avi);
  const { events, clear } = hooks.useHeraldEvents('ai-score', { limit: 3 });
  const vins: string[] = events.map((event) => event.data.vin);
  hooks.useHeraldEvent('msrp', ({ data }) => data.new - data.old);
  hooks.useHeraldEvent('*', (message) => (message.type === 'ai-score' ? message.data.cis : undefined));
  const client = hooks.useHerald();
  // The untyped hooks are as they were: any type, a payload type of the caller's choosing.
  useHeraldEvent<AiScore>('anything', ({ data }) => data.avi);
  const any = useLatest<AiScore, number>('anything', (score) => score.cis);
  return createElement(
    'p',
    { onClick: clear },
    `${delta ?? '–'} ${avi ?? '–'} ${vins.length} ${any ?? '–'} ${client.status}`,
  );
}

/** The misuses of the typed hooks: never rendered. */
function MisusedHooks(): null {
  // @ts-expect-error a misspelt type
  hooks.useHeraldEvent('ai-scor', () => {});
  // @ts-expect-error a field the payload does not have
  hooks.useHeraldEvent('ai-score', ({ data }) => data.msrp);
  // @ts-expect-error a misspelt type
  hooks.useLatest('msrps');
  // @ts-expect-error a field the payload does not have
  hooks.useLatest('ai-score', (score) => score.price);
  // @ts-expect-error a field the latest value does not have
  void hooks.useLatest('msrp')?.avi;
  // @ts-expect-error a misspelt type
  hooks.useHeraldEvents('ai-scores', { limit: 3 });
  const { events } = hooks.useHeraldEvents('ai-score', { limit: 3 });
  // @ts-expect-error a field the listed events do not have
  void events[0]?.data.price;
  // @ts-expect-error the typed client: a misspelt type
  hooks.useHerald().on('msprp', () => {});
  return null;
}

describe('typed events', () => {
  const cleanups: (() => unknown)[] = [];
  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  test('herald.publish takes the events of the map, and only those', async () => {
    const herald = createHerald<Events>();
    cleanups.push(() => herald.close());
    const score = { vin: '1ABC', dealerId: 'S1', avi: 60, ati: 70, cis: 80 };
    assert.match(await herald.publish({ topic: 'dealers/S1', type: 'ai-score', data: score }), /\S/);
    const ids = await herald.publish([
      { topic: 'dealers/S1', type: 'msrp', data: { vin: '1ABC', old: 45000, new: 43000, deltaPct: -4.44 } },
      { topic: 'dealers/S1', type: 'ping' }, // a payload that may be undefined may be left out
    ]);
    assert.equal(ids.length, 2);

    compileOnly(() => [
      // @ts-expect-error a misspelt type
      herald.publish({ topic: 't', type: 'ai-scores', data: score }),
      // @ts-expect-error a wrong payload: a string where the map says number
      herald.publish({ topic: 't', type: 'ai-score', data: { ...score, avi: '60' } }),
      // @ts-expect-error a payload of another type of the map
      herald.publish({ topic: 't', type: 'msrp', data: score }),
      // @ts-expect-error a payload without one of its fields
      herald.publish({ topic: 't', type: 'ai-score', data: { vin: '1ABC', dealerId: 'S1', avi: 1, ati: 2 } }),
      // @ts-expect-error no type: an untyped `message` is not in the map
      herald.publish({ topic: 't', data: score }),
      // @ts-expect-error a misspelt type in a batch
      herald.publish([{ topic: 't', type: 'msrpp', data: {} }]),
    ]);

    // Untyped, anything goes, as before.
    const untyped = createHerald();
    cleanups.push(() => untyped.close());
    assert.match(await untyped.publish({ topic: 't', type: 'anything', data: { any: 'shape' } }), /\S/);
    assert.match(await untyped.publish({ topic: 't' }), /\S/);
    // A typed hub is still a hub: the adapters take it.
    const asHub: Herald = herald;
    assert.equal(typeof nodeHandler(asHub), 'function');
  });

  test('client.on: a typed handler gets the payload the publisher was held to', async () => {
    const herald = createHerald<Events>();
    const server = createServer(nodeHandler(herald));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    cleanups.push(async () => {
      await herald.close();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    });
    const client = createClient<Events>({ url, topics: ['dealers/S1'], store: null });
    cleanups.push(() => client.close());

    const averages: number[] = [];
    const types: string[] = [];
    client.on('ai-score', ({ data, type }) => {
      const exact: 'ai-score' = type;
      averages.push((data.avi + data.ati + data.cis) / 3);
      types.push(exact);
    });
    client.on('*', (message) => {
      // The type tells the payload apart.
      if (message.type === 'msrp') types.push(`msrp ${message.data.new}`);
    });
    client.on('herald.stats', (notice: HeraldMessage<unknown>) => void notice);
    compileOnly(() => [
      // @ts-expect-error a misspelt type
      client.on('ai-scor', () => {}),
      // @ts-expect-error a field the payload does not have
      client.on('ai-score', ({ data }) => data.msrp),
      // @ts-expect-error the payload of another type
      client.on('msrp', ({ data }) => data.avi),
      // @ts-expect-error `*` gets every type: a field of one is not on the others until narrowed
      client.on('*', ({ data }) => data?.avi),
    ]);

    await new Promise<void>((resolve) => client.onStatus(({ status }) => status === 'open' && resolve()));
    await herald.publish({
      topic: 'dealers/S1',
      type: 'ai-score',
      data: { vin: 'V', dealerId: 'S1', avi: 60, ati: 70, cis: 80 },
    });
    await herald.publish({
      topic: 'dealers/S1',
      type: 'msrp',
      data: { vin: 'V', old: 2, new: 1, deltaPct: -50 },
    });
    const deadline = Date.now() + 5000;
    while (types.length < 2 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
    assert.deepEqual(averages, [70]);
    assert.deepEqual(types, ['ai-score', 'msrp 1']);
  });

  test('the hooks: typed by the same map, checked the same way', () => {
    const html = renderToString(
      createElement(
        hooks.HeraldProvider,
        { options: { url: 'http://hub.invalid', topics: ['t'] } },
        createElement(Tile),
      ),
    );
    assert.equal(html, '<p>– – 0 – connecting</p>');
    compileOnly(MisusedHooks);
  });
});
