import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { createElement, type ReactNode, StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import {
  createClient,
  type HeraldClient,
  HeraldClientError,
  type StatusChange,
} from '../../src/client/index.ts';
import { HeraldProvider, type PresenceState, usePresence } from '../../src/client/react.ts';
import { startHub, type TestHub } from '../helpers/server.ts';
import { bearer, SECRET, token } from '../helpers/tokens.ts';
import { fakeContainer } from './fake-dom.ts';
import { until } from './helpers.ts';

/**
 * herald/client and herald/react against a real hub, for what an operator's actions and presence
 * mean to a page: `herald.disconnect` with `reconnect: false` stops the client (and it does not
 * come back with the same token), `reconnect: true` reconnects; `presence()` and `usePresence()`.
 */

const auth = { jwt: { secrets: [SECRET] } };

/** What `Who` rendered last. */
let seen: PresenceState | undefined;
function Who(): ReactNode {
  seen = usePresence('room');
  return null;
}

describe('herald/client in a cluster', () => {
  const cleanups: (() => unknown)[] = [];
  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  const hubWithAuth = async (): Promise<TestHub> => {
    const hub = await startHub({ auth });
    cleanups.push(() => hub.close());
    return hub;
  };

  const disconnect = async (hub: TestHub, body: unknown) => {
    const response = await fetch(`${hub.url}/v1/connections/disconnect`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...bearer(await token({ admin: true })) },
      body: JSON.stringify(body),
    });
    return (await response.json()) as { disconnected: number };
  };

  const open = (client: HeraldClient) => until(() => client.status === 'open', 5000, 'open');

  test('reconnect: false closes the client with the reason, and it does not come back', async () => {
    const hub = await hubWithAuth();
    const jwt = await token({ tenant: 'acme', sub: 'kicked', subscribe: ['room'] });
    const client = createClient({ url: hub.url, topics: ['room'], token: jwt, store: null });
    cleanups.push(() => client.close());
    const changes: StatusChange[] = [];
    client.onStatus((change) => changes.push(change));
    const notices: unknown[] = [];
    client.on('herald.disconnect', (message) => notices.push(message.data));
    await open(client);
    assert.equal(
      (await disconnect(hub, { subject: 'kicked', reason: 'account suspended', reconnect: false }))
        .disconnected,
      1,
    );
    await until(() => client.status === 'closed', 5000, 'closed');
    const closed = changes.at(-1);
    assert.match(closed?.reason ?? '', /account suspended/);
    assert.ok(closed?.error instanceof HeraldClientError);
    assert.equal(closed?.error?.code, 'disconnected');
    assert.deepEqual(notices, [{ reason: 'account suspended', reconnect: false }]);
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    const stats = await hub.herald.stats();
    assert.equal(stats.connections.total, 0, 'no stream came back');
    assert.equal(stats.events.opened, 1);
  });

  test('reconnect: true (the default) comes back on its own', async () => {
    const hub = await hubWithAuth();
    const jwt = await token({ tenant: 'acme', sub: 'bounced', subscribe: ['room'] });
    const client = createClient({
      url: hub.url,
      topics: ['room'],
      token: jwt,
      store: null,
      backoff: { initialMs: 10, maxMs: 50 },
    });
    cleanups.push(() => client.close());
    await open(client);
    const first = client.connectionId;
    await disconnect(hub, { subject: 'bounced', reason: 'rebalancing' });
    await until(() => client.status === 'open' && client.connectionId !== first, 10_000, 'reconnected');
  });

  test('presence() asks the hub who is on a topic; a refusal rejects with the problem', async () => {
    const hub = await hubWithAuth();
    const members = await token({
      tenant: 'acme',
      sub: 'ann',
      subscribe: ['room'],
      permissions: ['presence:members'],
    });
    const client = createClient({ url: hub.url, topics: ['room'], token: members, store: null });
    cleanups.push(() => client.close());
    await open(client);
    const info = await client.presence('room');
    assert.deepEqual(info.members, [{ subject: 'ann', connections: 1 }]);
    assert.equal(info.connections, 1);
    const outsider = createClient({
      url: hub.url,
      topics: [],
      token: await token({ tenant: 'acme', subscribe: ['other'] }),
      store: null,
    });
    cleanups.push(() => outsider.close());
    await assert.rejects(
      outsider.presence('room'),
      (error: HeraldClientError) => error.code === 'presence-forbidden',
    );
  });

  test('usePresence: the members at mount, then who joins and leaves, live', async () => {
    const hub = await hubWithAuth();
    const viewer = await token({
      tenant: 'acme',
      sub: 'viewer',
      subscribe: ['room'],
      permissions: ['presence:members'],
    });
    const root = createRoot(fakeContainer());
    root.render(
      createElement(
        StrictMode,
        null,
        createElement(
          HeraldProvider,
          { options: { url: hub.url, topics: ['room'], token: viewer, presence: true, store: null } },
          createElement(Who),
        ),
      ),
    );
    cleanups.push(() => root.unmount());
    await until(
      () => seen?.loading === false && seen.members?.some((m) => m.subject === 'viewer') === true,
      5000,
      'the viewer itself',
    );
    const guest = createClient({
      url: hub.url,
      topics: ['room'],
      token: await token({ tenant: 'acme', sub: 'guest' }),
      store: null,
    });
    await open(guest);
    await until(() => seen?.members?.some((m) => m.subject === 'guest') === true, 5000, 'the guest joining');
    assert.equal(seen?.subjects, 2);
    guest.close();
    await until(() => seen?.members?.some((m) => m.subject === 'guest') === false, 5000, 'the guest leaving');
    assert.equal(seen?.connections, 1);
  });
});
