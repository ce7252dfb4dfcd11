import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { MemoryBroker } from '../../src/backends/memory/broker.ts';
import { STATS_TOPIC, STATS_TYPE } from '../../src/dashboard/stats-feed.ts';
import { sleep, startHub, type TestHub } from '../helpers/server.ts';
import type { SseStream } from '../helpers/sse-client.ts';
import { bearer, SECRET, token } from '../helpers/tokens.ts';

const statsOf = (stream: SseStream) => stream.events.filter((event) => event.type === STATS_TYPE);

/** Waits until `stream` has `count` stats notices; the feed sends one a second. */
async function notices(stream: SseStream, count: number, timeoutMs = 5_000) {
  const deadline = Date.now() + timeoutMs;
  while (statsOf(stream).length < count) {
    if (Date.now() > deadline)
      throw new Error(`${statsOf(stream).length} stats notices after ${timeoutMs} ms`);
    await sleep(25);
  }
  return statsOf(stream).map((event) => JSON.parse(event.data));
}

describe('the dashboard stats feed', () => {
  const hubs: TestHub[] = [];
  after(() => Promise.all(hubs.map((hub) => hub.close())));

  test('an admin stream of herald/stats gets the real figures once a second, without ids and outside the log', async () => {
    const hub = await startHub();
    hubs.push(hub);
    const watcher = await hub.subscribe(`topic=${STATS_TOPIC}&tenant=*`);
    const plain = await hub.subscribe('topic=orders');
    const acme = await hub.subscribe('topic=orders&tenant=acme');
    const everything = await hub.subscribe('topic=*&tenant=*');
    assert.equal(hub.herald.hub.watchers('*', STATS_TOPIC), 1);

    await hub.publish([1, 2, 3].map((n) => ({ topic: 'orders', data: { n } })));
    const [first, second] = await notices(watcher, 2);
    assert.ok(first && second);
    for (const event of statsOf(watcher)) assert.equal(event.id, undefined, 'a notice carries no id');
    // What the hub itself says about its streams.
    const real = await hub.herald.stats();
    assert.deepEqual(second.connections, real.connections);
    assert.deepEqual(second.connections.byTenant, { '': 1, acme: 1, '*': 2 });
    assert.equal(second.connections.byTopic.orders, 2);
    assert.equal(second.broker, 'memory');
    assert.deepEqual(second.health, { ok: true });
    assert.equal(second.watchers, 1);
    assert.equal(second.events.published, 3);
    assert.ok(second.rates.intervalMs > 0);
    // The three events fell in one interval: its published rate counts them, the next is zero.
    const publishedRates = statsOf(watcher).map((event) => JSON.parse(event.data).rates.published);
    assert.ok(
      publishedRates.some((rate: number) => rate > 0),
      `rates ${publishedRates}`,
    );

    // Nobody else sees a notice: not `*` (it stands for the log), not another tenant's streams.
    assert.equal(statsOf(everything).length, 0);
    assert.equal(everything.data.length, 3);
    assert.equal(statsOf(plain).length + statsOf(acme).length, 0);
    // The log holds the three events only: a reconnect replays no notice.
    assert.equal(real.history?.size, 3);
    const replay = await hub.subscribe(
      `topic=${STATS_TOPIC}&topic=*&tenant=*&lastEventId=${first.history.oldestId}`,
    );
    await sleep(300);
    assert.deepEqual(
      replay.data.map((event) => event.data),
      ['{"n":2}', '{"n":3}'],
    );
  });

  test('the figures stop when the last dashboard leaves, and a long poll of herald/stats is not woken by them', async () => {
    // A real memory broker, counting the health checks each set of figures makes.
    const broker = new MemoryBroker();
    let checks = 0;
    const health = broker.health.bind(broker);
    broker.health = () => {
      checks++;
      return health();
    };
    const hub = await startHub({ broker });
    hubs.push(hub);
    await sleep(1_500);
    assert.equal(checks, 0, 'no figures are taken while no one watches');
    const watcher = await hub.subscribe(`topic=${STATS_TOPIC}&tenant=*`);
    await notices(watcher, 1);
    const started = Date.now();
    const response = await fetch(`${hub.url}/v1/events/poll?topic=${STATS_TOPIC}&tenant=*&wait=2`);
    const body = (await response.json()) as { events: unknown[] };
    assert.equal(response.status, 200);
    assert.deepEqual(body.events, []);
    assert.ok(Date.now() - started >= 1_900, `the poll returned after ${Date.now() - started} ms`);

    watcher.close();
    const deadline = Date.now() + 2_000;
    while (hub.herald.hub.watchers('*', STATS_TOPIC) > 0 && Date.now() < deadline) await sleep(20);
    assert.equal(hub.herald.hub.watchers('*', STATS_TOPIC), 0);
    const taken = checks;
    await sleep(2_200);
    assert.equal(checks, taken, 'no figures are taken once the last dashboard left');
  });

  test('with JWT, a non-admin credential cannot watch the figures, even on its own tenant', async () => {
    const hub = await startHub({ auth: { jwt: { secrets: [SECRET] } } });
    hubs.push(hub);
    const user = await token({ tenant: 'acme', subscribe: ['*'] });
    const refused = await fetch(`${hub.url}/v1/events?topic=${STATS_TOPIC}&tenant=*`, {
      headers: bearer(user),
    });
    assert.equal(refused.status, 403);
    assert.match(refused.headers.get('content-type') ?? '', /application\/problem\+json/);
    assert.match(((await refused.json()) as { detail: string }).detail, /only admin credentials/);

    const own = await hub.subscribe(`topic=${STATS_TOPIC}`, { headers: bearer(user) });
    const admin = await hub.subscribe(`topic=${STATS_TOPIC}&tenant=*`, {
      headers: bearer(await token({ admin: true })),
    });
    await notices(admin, 2);
    assert.equal(own.status, 200);
    assert.equal(statsOf(own).length, 0, 'a tenant stream of herald/stats never gets the figures');
  });
});
