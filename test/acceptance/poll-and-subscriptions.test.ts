import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { BACKENDS, hubOn } from '../helpers/backends.ts';
import { sleep, type TestHub } from '../helpers/server.ts';

interface Polled {
  events: { id: string; type: string; data: string }[];
  lastEventId: string;
  gap?: string;
}

for (const backend of BACKENDS) {
  describe(`live subscription changes and long polling (${backend.name})`, () => {
    let hub: TestHub;
    before(async () => {
      hub = await hubOn(backend);
    });
    after(() => hub.close());

    const change = (body: unknown) =>
      fetch(`${hub.url}/v1/subscriptions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });

    test('one open stream subscribes to more topics and unsubscribes from some', async () => {
      const stream = await hub.subscribe('topic=page/a');
      await stream.until((s) => s.events.length >= 1);
      const { connectionId, secret } = JSON.parse(stream.events[0]?.data ?? '{}');
      await hub.publish({ topic: 'page/b', data: 'b before' });
      // Dispatched in log order: once a0 is here, 'b before' has gone by on this node (on NATS the
      // feed trails the publish answer), so the change below cannot catch it.
      await hub.publish({ topic: 'page/a', data: 'a0' });
      await stream.untilData(1);

      const added = await change({
        connectionId,
        secret,
        action: 'subscribe',
        topics: ['page/b', 'page/{x}/c'],
      });
      assert.equal(added.status, 200);
      assert.deepEqual((await added.json()).topics, ['page/a', 'page/b', 'page/{x}/c']);
      await hub.publish([
        { topic: 'page/a', data: 'a1' },
        { topic: 'page/b', data: 'b1' },
        { topic: 'page/1/c', data: 'c1' },
      ]);
      await stream.untilData(4);

      const removed = await change({ connectionId, secret, action: 'unsubscribe', topics: 'page/a' });
      assert.deepEqual((await removed.json()).topics, ['page/b', 'page/{x}/c']);
      await hub.publish([
        { topic: 'page/a', data: 'a2' },
        { topic: 'page/b', data: 'b2' },
      ]);
      await stream.untilData(5);
      await sleep(50);
      assert.deepEqual(
        stream.data.map((e) => e.data),
        ['a0', 'a1', 'b1', 'c1', 'b2'],
      );
      stream.close();
    });

    test('changing an unknown stream is 404; a malformed change is 400', async () => {
      const unknown = await change({
        connectionId: 'no-such-stream',
        secret: 'x',
        action: 'subscribe',
        topics: ['x'],
      });
      assert.equal(unknown.status, 404);
      assert.equal((await unknown.json()).code, 'connection-not-found');
      const bad = await change({ connectionId: 'x', secret: 'x', action: 'follow', topics: ['x'] });
      assert.equal(bad.status, 400);
      assert.equal((await bad.json()).code, 'invalid-action');
    });

    const poll = async (query: string): Promise<Polled> => {
      const response = await fetch(`${hub.url}/v1/events/poll?${query}`);
      assert.equal(response.status, 200);
      return (await response.json()) as Polled;
    };

    test('a poll returns what followed the id, then the next poll continues from where it stopped', async () => {
      const first = (await hub.publish({ topic: 'polled', data: 'p0' })).body.id as string;
      await hub.publish(['p1', 'p2', 'p3'].map((data) => ({ topic: 'polled', data })));
      await hub.publish({ topic: 'elsewhere', data: 'not for this poll' });
      const page = await poll(`topic=polled&after=${encodeURIComponent(first)}&limit=2`);
      assert.deepEqual(
        page.events.map((e) => e.data),
        ['p1', 'p2'],
      );
      assert.equal(page.lastEventId, page.events[1]?.id);
      const next = await poll(`topic=polled&after=${encodeURIComponent(page.lastEventId)}&wait=0`);
      assert.deepEqual(
        next.events.map((e) => [e.type, e.data]),
        [['message', 'p3']],
      );
      // Nothing new: the answer says how far the log was examined, so nothing is read twice.
      const empty = await poll(`topic=polled&after=${encodeURIComponent(next.lastEventId)}&wait=0`);
      assert.deepEqual(empty.events, []);
      const after = await hub.publish({ topic: 'polled', data: 'p4' });
      const last = await poll(`topic=polled&after=${encodeURIComponent(empty.lastEventId)}&wait=0`);
      assert.deepEqual(
        last.events.map((e) => e.id),
        [after.body.id],
      );
    });

    test('a poll with nothing to return waits for the next event', async () => {
      const started = Date.now();
      const waiting = poll('topic=later&wait=30');
      await sleep(200);
      await hub.publish({ topic: 'later', type: 'progress', data: 'arrived' });
      const result = await waiting;
      assert.deepEqual(
        result.events.map((e) => [e.type, e.data]),
        [['progress', 'arrived']],
      );
      // Generous for a busy machine, and still far from the 30 s wait.
      assert.ok(Date.now() - started < 15_000, 'answered when the event came, not at the end of the wait');
    });

    test('a poll that times out answers an empty batch with where to continue', async () => {
      const result = await poll('topic=never&wait=1');
      assert.deepEqual(result.events, []);
      assert.equal(typeof result.lastEventId, 'string');
    });

    test('a poll from an unknown id says so', async () => {
      const result = await poll('topic=polled&after=never-issued&wait=0');
      assert.equal(result.gap, 'unknown');
      assert.deepEqual(result.events, []);
    });
  });
}
