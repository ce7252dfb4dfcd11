import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { BACKENDS, hubOn } from '../helpers/backends.ts';
import { sleep, type TestHub } from '../helpers/server.ts';
import type { SseStream } from '../helpers/sse-client.ts';
import { bearer, SECRET, token } from '../helpers/tokens.ts';
import { mercurePublish, mercureStream } from '../mercure/mercure-client.ts';

/**
 * The paths an attacker takes across the tenant boundary, on every broker: another tenant's
 * chosen ids (taken, reused, resumed from, polled from), the answers that would confirm they
 * exist, and streams changed by someone who does not hold them.
 */

interface Polled {
  events: { id: string; type: string; data: string }[];
  lastEventId: string;
  gap?: string;
}

const gapsOf = (stream: SseStream) =>
  stream.events.filter((e) => e.type === 'herald.gap').map((e) => JSON.parse(e.data).reason);

for (const backend of BACKENDS) {
  describe(`the tenant boundary holds against an attacker (${backend.name})`, () => {
    let hub: TestHub;
    /** The victim's publisher and subscriber, in tenant "victim". */
    let victimPublisher: Record<string, string>;
    let victimReader: Record<string, string>;
    /** The attacker may publish only to a junk topic of its own tenant, and read its own. */
    let attackerPublisher: Record<string, string>;
    let attackerReader: Record<string, string>;

    before(async () => {
      hub = await hubOn(backend, { auth: { jwt: { secrets: [SECRET] }, anonymous: true } });
      victimPublisher = bearer(await token({ tenant: 'victim', publish: ['*'], sub: 'v-pub' }));
      victimReader = bearer(await token({ tenant: 'victim', subscribe: ['*'], sub: 'v-read' }));
      attackerPublisher = bearer(await token({ tenant: 'attacker', publish: ['junk'], sub: 'a-pub' }));
      attackerReader = bearer(await token({ tenant: 'attacker', subscribe: ['*'], sub: 'a-read' }));
    });
    after(() => hub.close());

    const run = `${backend.name}-${Date.now()}`;

    test("another tenant's events with the victim's chosen ids neither collide nor move the victim's resume point", async () => {
      const ids = [0, 1, 2, 3].map((i) => `urn:order:${run}:${i}`);
      for (const [i, id] of ids.entries()) {
        const sent = await hub.publish({ topic: 'orders', id, data: `v${i}` }, victimPublisher);
        assert.equal(sent.status, 202, JSON.stringify(sent.body));
      }
      // The attacker takes every one of the victim's ids (native), and reuses them (Mercure).
      for (const id of ids) {
        const taken = await hub.publish({ topic: 'junk', id, data: 'hijack' }, attackerPublisher);
        assert.equal(
          taken.status,
          202,
          `a fresh id in the attacker's own namespace: ${JSON.stringify(taken.body)}`,
        );
        const reused = await mercurePublish(
          hub.url,
          { topic: 'junk', id, data: 'hijack' },
          attackerPublisher,
        );
        assert.equal(reused.status, 200, reused.body);
      }
      // The victim resumes from its second event and gets exactly the two that followed it.
      const stream = await hub.subscribe('topic=orders', { headers: victimReader, lastEventId: ids[1] });
      await stream.untilData(2);
      await sleep(100);
      assert.deepEqual(
        stream.data.map((e) => [e.id, e.data]),
        [
          [ids[2], 'v2'],
          [ids[3], 'v3'],
        ],
      );
      assert.deepEqual(gapsOf(stream), []);
      stream.close();
      // And a poll from the same id says the same.
      const response = await fetch(
        `${hub.url}/v1/events/poll?topic=orders&after=${encodeURIComponent(ids[1] as string)}&wait=0`,
        { headers: victimReader },
      );
      const polled = (await response.json()) as Polled;
      assert.deepEqual(
        polled.events.map((e) => e.data),
        ['v2', 'v3'],
      );
      assert.equal(polled.gap, undefined);
    });

    test("resuming with another tenant's chosen id is indistinguishable from resuming with one that never existed", async () => {
      const victimId = `urn:secret-deal:${run}`;
      const victimOther = `urn:secret-deal:${run}-2`;
      for (const id of [victimId, victimOther]) {
        const sent = await hub.publish({ topic: 'deals', id, data: 'x', private: true }, victimPublisher);
        assert.equal(sent.status, 202);
      }
      // Publishing with the victim's id or with one nobody used: the same answer.
      const takenVictim = await hub.publish(
        { topic: 'junk', id: victimOther, data: 'probe' },
        attackerPublisher,
      );
      const takenNever = await hub.publish(
        { topic: 'junk', id: `urn:secret-deal:${run}-never`, data: 'probe' },
        attackerPublisher,
      );
      assert.equal(takenVictim.status, 202);
      assert.equal(takenNever.status, 202);

      const probe = async (id: string) => {
        // A fresh id for each probe, so the attacker's own events do not answer it.
        const stream = await hub.subscribe('topic=deals', { headers: attackerReader, lastEventId: id });
        await stream.untilConnected();
        await sleep(100);
        stream.close();
        const poll = await fetch(
          `${hub.url}/v1/events/poll?topic=deals&after=${encodeURIComponent(id)}&wait=0`,
          {
            headers: attackerReader,
          },
        );
        const polled = (await poll.json()) as Polled;
        const mercure = await mercureStream(hub.url, ['deals'], { headers: attackerReader, lastEventId: id });
        await sleep(50);
        mercure.close();
        return {
          status: stream.status,
          gaps: gapsOf(stream),
          data: stream.data.length,
          pollStatus: poll.status,
          pollGap: polled.gap,
          pollEvents: polled.events.length,
          mercureStatus: mercure.status,
          mercureLastEventId: mercure.headers['last-event-id'],
          mercureEvents: mercure.events.length,
        };
      };
      const victims = await probe(victimId);
      const nevers = await probe(`urn:secret-deal:${run}-other`);
      assert.deepEqual(victims, nevers);
      assert.deepEqual(victims.gaps, ['unknown']);
      assert.equal(victims.mercureLastEventId, 'earliest');
    });

    test('a chosen id shaped like a log position is refused on every route, with the reason', async () => {
      const head = (await hub.publish({ topic: 'orders', data: 'auto' }, victimPublisher)).body.id as string;
      const [left] = head.split('-');
      // Future positions of this very log, and the shapes of the other brokers.
      for (const id of [`${left}-999999`, '999999', '1700000000000-0', head]) {
        const native = await hub.publish({ topic: 'junk', id, data: 'x' }, attackerPublisher);
        assert.equal(native.status, 400, id);
        assert.equal(native.body.code, 'invalid-id');
        assert.match(String(native.body.detail), /log position/);
        const mercure = await mercurePublish(hub.url, { topic: 'junk', id, data: 'x' }, attackerPublisher);
        assert.equal(mercure.status, 400, `${id}: ${mercure.body}`);
      }
    });

    test('a chosen id that is not well-formed UTF-16 is refused: it could never be resumed from', async () => {
      const answer = await hub.publish({ topic: 'junk', id: `urn:x:\ud800`, data: 'x' }, attackerPublisher);
      assert.equal(answer.status, 400);
      assert.equal(answer.body.code, 'invalid-id');
      assert.match(String(answer.body.detail), /surrogate/);
      const topic = await hub.publish({ topic: 'junk\udc00', data: 'x' }, attackerPublisher);
      assert.equal(topic.status, 400);
    });

    test('a chosen id with any whole characters can be resumed from, through either header, and costs no stream slot', async () => {
      const id = `rev-€-😀-é-${run}`;
      // Header values travel as bytes: what a browser sends for this id is its UTF-8.
      const wire = Buffer.from(id, 'utf8').toString('latin1');
      assert.equal((await hub.publish({ topic: 'utf', id, data: 'first' }, victimPublisher)).status, 202);
      assert.equal((await hub.publish({ topic: 'utf', data: 'second' }, victimPublisher)).status, 202);
      const before = hub.herald.limits.snapshot().openStreams as number;
      for (let i = 0; i < 3; i++) {
        const native = await hub.subscribe('topic=utf', { headers: victimReader, lastEventId: wire });
        await native.untilData(1);
        assert.deepEqual(gapsOf(native), []);
        assert.deepEqual(
          native.data.map((e) => e.data),
          ['second'],
        );
        native.close();
        const mercure = await mercureStream(hub.url, ['utf'], { headers: victimReader, lastEventId: wire });
        assert.equal(mercure.status, 200);
        assert.equal(Buffer.from(String(mercure.headers['last-event-id']), 'latin1').toString('utf8'), id);
        await mercure.untilData(1);
        mercure.close();
      }
      const deadline = Date.now() + 5000;
      while ((hub.herald.limits.snapshot().openStreams as number) > before && Date.now() < deadline)
        await sleep(20);
      assert.equal(hub.herald.limits.snapshot().openStreams as number, before);
    });

    test("Mercure's reserved topics cannot be published through the native API", async () => {
      const admin = bearer(await token({ admin: true, publish: ['*'] }));
      for (const topic of [
        '/.well-known/mercure/subscriptions/x/urn:uuid:forged',
        'https://example.com/.well-known/mercure/subscriptions',
      ]) {
        const answer = await hub.publish({ topic, data: '{"active":true}' }, admin);
        assert.equal(answer.status, 403, topic);
        assert.equal(answer.body.code, 'reserved-topic');
        const batch = await hub.publish(
          [
            { topic: 'ok', data: 'x' },
            { topic: ['ok', topic], data: 'x' },
          ],
          admin,
        );
        assert.equal(batch.status, 403, `${topic} as an alternate in a batch`);
      }
    });

    test('an anonymous caller cannot change the stream of another anonymous caller', async () => {
      const victim = await hub.subscribe('topic=lobby');
      await victim.untilConnected();
      const { connectionId, secret } = JSON.parse(victim.events[0]?.data ?? '{}');
      assert.equal(typeof secret, 'string');
      const change = (body: unknown) =>
        fetch(`${hub.url}/v1/subscriptions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(body),
        });
      // The attacker learned the connection id (it is in logs and lists) but not the secret.
      const missing = await change({ connectionId, action: 'unsubscribe', topics: ['lobby'] });
      assert.equal(missing.status, 400);
      assert.equal((await missing.json()).code, 'secret-required');
      const wrong = await change({
        connectionId,
        secret: `${secret.slice(0, -1)}${secret.endsWith('A') ? 'B' : 'A'}`,
        action: 'unsubscribe',
        topics: ['lobby'],
      });
      assert.equal(wrong.status, 404);
      const none = await change({
        connectionId: 'no-such',
        secret,
        action: 'unsubscribe',
        topics: ['lobby'],
      });
      assert.equal(wrong.status, none.status, 'a wrong secret answers as a stream that does not exist');
      assert.equal((await wrong.json()).code, (await none.json()).code);
      // The victim's stream still has its topic.
      const lobbyPublisher = bearer(await token({ publish: ['*'] }));
      assert.equal((await hub.publish({ topic: 'lobby', data: 'still here' }, lobbyPublisher)).status, 202);
      await victim.untilData(1);
      // Whoever holds the stream can change it.
      const own = await change({ connectionId, secret, action: 'subscribe', topics: ['hall'] });
      assert.equal(own.status, 200);
      victim.close();
    });
  });
}
