import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { createClient, type HeraldMessage } from '../../src/client/index.ts';
import { STATS_TOPIC, STATS_TYPE } from '../../src/dashboard/stats-feed.ts';
import { startHub } from '../helpers/server.ts';
import { record, until, untilStatus } from './helpers.ts';

describe('herald/client: hub notices and the tenant option', () => {
  const cleanups: (() => unknown)[] = [];
  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  test('a herald.stats notice reaches on("herald.stats") only, without an id, while events keep theirs', async () => {
    const hub = await startHub();
    cleanups.push(() => hub.close());
    const client = createClient({ url: hub.url, topics: [STATS_TOPIC, '*'], tenant: '*', store: null });
    cleanups.push(() => client.close());
    const seen = record(client);
    const notices: HeraldMessage[] = [];
    client.on(STATS_TYPE, (message) => notices.push(message));
    await untilStatus(client, 'open');

    const { body } = await hub.publish({ topic: 'orders', type: 'placed', data: { n: 1 } });
    // Two notices after the event: the second proves the first did not make it a duplicate.
    await until(() => notices.length >= 2 && seen.messages.length === 1, 5_000, 'two notices and the event');
    assert.deepEqual(
      seen.messages.map((message) => [message.id, message.type]),
      [[body.id, 'placed']],
    );
    for (const notice of notices) {
      assert.equal(notice.id, '');
      assert.equal((notice.data as { broker: string }).broker, 'memory');
    }
    // The resume point is the event's, not moved by a notice.
    assert.equal(client.lastEventId, body.id);
  });

  test('the tenant option watches another tenant with admin credentials', async () => {
    const hub = await startHub();
    cleanups.push(() => hub.close());
    const client = createClient({ url: hub.url, topics: ['orders'], tenant: 'acme', store: null });
    cleanups.push(() => client.close());
    const seen = record(client);
    await untilStatus(client, 'open');
    await hub.publish([
      { topic: 'orders', data: 'default tenant' },
      { topic: 'orders', tenant: 'acme', data: 'acme' },
    ]);
    await until(() => seen.messages.length === 1, 5_000, 'the acme event');
    assert.deepEqual(seen.data(), ['acme']);
  });
});
