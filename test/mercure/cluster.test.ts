import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { BACKENDS, NATS_URL, REDIS_URL } from '../helpers/backends.ts';
import { type HubProcess, spawnHub } from '../helpers/nodes.ts';
import { bearer, MERCURE_SECRET, mercurePublish, mercureStream, mercureToken } from './mercure-client.ts';

const SUBSCRIPTIONS = '/.well-known/mercure/subscriptions';

for (const backend of BACKENDS.filter((b) => b.name !== 'memory')) {
  describe(`Mercure on two nodes sharing ${backend.name}`, () => {
    const stream = backend.newStream();
    let a: HubProcess;
    let b: HubProcess;
    let publisher: Record<string, string>;
    const args = [
      '--broker',
      backend.name === 'redis' ? REDIS_URL : NATS_URL,
      '--stream',
      stream,
      '--jwt-secret',
      MERCURE_SECRET,
      '--anonymous',
      '--mercure-subscriptions',
    ];
    before(async () => {
      [a, b] = await Promise.all([spawnHub(args), spawnHub(args)]);
      publisher = bearer(await mercureToken({ publish: ['*'] }));
    });
    after(async () => {
      await Promise.all([a?.stop(), b?.stop()]);
      await backend.drop(stream);
    });

    test('an update published to one node reaches Mercure subscribers on the other, private ones only where granted', async () => {
      const topic = `https://example.com/orders/${globalThis.crypto.randomUUID()}`;
      const granted = await mercureStream(b.url, ['https://example.com/orders/{id}'], {
        headers: bearer(await mercureToken({ subscribe: [topic] })),
      });
      const anonymous = await mercureStream(b.url, ['https://example.com/orders/{id}']);
      assert.equal(
        (await mercurePublish(a.url, { topic, data: 'secret', private: true }, publisher)).status,
        200,
      );
      const published = await mercurePublish(a.url, { topic, data: 'public', id: `urn:${topic}` }, publisher);
      assert.equal(published.body, `urn:${topic}`);
      await granted.untilData(2, 10_000);
      await anonymous.untilData(1, 10_000);
      assert.deepEqual(
        granted.events.map((e) => e.data),
        ['secret', 'public'],
      );
      assert.deepEqual(
        anonymous.events.map((e) => [e.id, e.data]),
        [[`urn:${topic}`, 'public']],
      );
      granted.close();
      anonymous.close();
    });

    test('a subscriber whose node is killed resumes on the other node from its last id, missing nothing', async () => {
      const c = await spawnHub(args);
      const topic = `https://example.com/feeds/${globalThis.crypto.randomUUID()}`;
      const first = await mercureStream(c.url, [topic]);
      for (let i = 0; i < 5; i++) await mercurePublish(a.url, { topic, data: `before ${i}` }, publisher);
      await first.untilData(5, 10_000);
      const lastSeen = first.events.at(-1)?.id as string;
      await c.kill();
      for (let i = 0; i < 5; i++) await mercurePublish(a.url, { topic, data: `while away ${i}` }, publisher);
      const resumed = await mercureStream(b.url, [topic], { lastEventId: lastSeen });
      assert.equal(resumed.headers['last-event-id'], lastSeen);
      await mercurePublish(a.url, { topic, data: 'live' }, publisher);
      await resumed.untilData(6, 10_000);
      assert.deepEqual(
        resumed.events.map((e) => e.data),
        [...Array.from({ length: 5 }, (_, i) => `while away ${i}`), 'live'],
      );
      resumed.close();
    });

    test("the subscriptions API of one node lists the other node's subscribers", async () => {
      const watcher = bearer(await mercureToken({ subscribe: [`${SUBSCRIPTIONS}{/topic}{/subscriber}`] }));
      const selector = `https://example.com/rooms/${globalThis.crypto.randomUUID()}`;
      const subscriber = await mercureStream(a.url, [selector], {
        headers: bearer(await mercureToken({ payload: { name: 'ann' } })),
      });
      const listed = async () => {
        const response = await fetch(`${b.url}${SUBSCRIPTIONS}`, { headers: watcher });
        const body = (await response.json()) as { subscriptions: { topic: string; payload?: unknown }[] };
        return body.subscriptions.filter((s) => s.topic === selector);
      };
      const deadline = Date.now() + 10_000;
      while ((await listed()).length === 0 && Date.now() < deadline) await sleep(50);
      assert.deepEqual(
        (await listed()).map((s) => s.payload),
        [{ name: 'ann' }],
      );
      subscriber.close();
      while ((await listed()).length > 0 && Date.now() < deadline) await sleep(50);
      assert.deepEqual(await listed(), []);
    });

    test('a node that starts later lists the subscriptions announced before it, from the history', async () => {
      const watcher = bearer(await mercureToken({ subscribe: [`${SUBSCRIPTIONS}{/topic}{/subscriber}`] }));
      const selector = `https://example.com/halls/${globalThis.crypto.randomUUID()}`;
      const subscriber = await mercureStream(a.url, [selector]);
      const listedOn = async (url: string) => {
        const response = await fetch(`${url}${SUBSCRIPTIONS}`, { headers: watcher });
        const body = (await response.json()) as { subscriptions: { topic: string }[] };
        return body.subscriptions.filter((s) => s.topic === selector).length;
      };
      const deadline = Date.now() + 10_000;
      while ((await listedOn(b.url)) === 0 && Date.now() < deadline) await sleep(50);
      const late = await spawnHub(args);
      try {
        assert.equal(await listedOn(late.url), 1);
        subscriber.close();
        while ((await listedOn(late.url)) > 0 && Date.now() < deadline) await sleep(50);
        assert.equal(await listedOn(late.url), 0);
      } finally {
        await late.stop();
      }
    });
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
