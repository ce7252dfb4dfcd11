import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { PublishInput } from '../../src/core/event.ts';
import { BACKENDS, hubOn } from '../helpers/backends.ts';
import { sleep, type TestHub } from '../helpers/server.ts';
import type { ReceivedEvent, SseStream } from '../helpers/sse-client.ts';
import { bearer, SECRET, token } from '../helpers/tokens.ts';

/**
 * The latest event per key: `snapshot=latest` on a stream or first poll, and `GET /v1/latest`.
 * One event per (tenant, topic, key), the newest, that the subscriber matches and may see; then
 * live with no gap and no duplicate, on every backend.
 */

const hasMarker = (s: SseStream) => s.events.some((e) => e.type === 'herald.history');

/** The events before `herald.history`, the marker, and those after it. */
function split(stream: SseStream) {
  const at = stream.events.findIndex((e) => e.type === 'herald.history');
  assert.ok(at > 0, `a herald.history marker:\n${stream.raw.slice(0, 2000)}`);
  const user = (events: ReceivedEvent[]) => events.filter((e) => !e.type.startsWith('herald.'));
  return {
    connected: stream.events[0] as ReceivedEvent,
    snapshot: user(stream.events.slice(1, at)),
    marker: stream.events[at] as ReceivedEvent,
    live: user(stream.events.slice(at + 1)),
  };
}

interface Latest {
  events: { id: string; type: string; data: string; topic: string; key: string; time: string }[];
  lastEventId: string;
  complete: boolean;
}

for (const backend of BACKENDS) {
  describe(`the latest value per key (${backend.name})`, () => {
    let hub: TestHub;
    let t1: Record<string, string>;
    before(async () => {
      hub = await hubOn(backend, { auth: { jwt: { secrets: [SECRET] } }, replayPageSize: 16 });
      t1 = bearer(await token({ tenant: 'T1', sub: 'u1' }));
    });
    after(() => hub.close());

    const publish = (events: readonly PublishInput[]) => hub.herald.publish(events);
    const open = async (query: string, headers = t1, lastEventId?: string) => {
      const stream = await hub.subscribe(query, {
        headers,
        ...(lastEventId === undefined ? {} : { lastEventId }),
      });
      assert.equal(stream.status, 200);
      return stream;
    };
    const latest = async (query: string, headers = t1) => {
      const response = await fetch(`${hub.url}/v1/latest?${query}`, { headers });
      assert.equal(response.status, 200, await response.clone().text());
      assert.equal(response.headers.get('cache-control'), 'no-store');
      return (await response.json()) as Latest;
    };

    test('snapshot=latest: one event per key, the newest, in log order; herald.history; then live', async () => {
      for (let round = 1; round <= 3; round++) {
        await publish(
          ['k1', 'k2', 'k3'].map((key) => ({ topic: 'l1', tenant: 'T1', key, data: `${key}@${round}` })),
        );
      }
      await publish([
        { topic: 'l1', tenant: 'T1', key: 'k2', data: 'k2@4' },
        { topic: 'l1', tenant: 'T1', data: 'no key: not kept' },
        // The same key on another topic is another slot.
        { topic: 'l1-other', tenant: 'T1', key: 'k1', data: 'elsewhere' },
      ]);
      const stream = await open('topic=l1&snapshot=latest');
      await stream.until(hasMarker, 10_000);
      const { connected, snapshot, marker } = split(stream);
      assert.deepEqual(
        snapshot.map((e) => e.data),
        ['k1@3', 'k3@3', 'k2@4'],
      );
      assert.equal(connected.id, undefined);
      assert.equal(JSON.parse(connected.data).history, 'snapshot');
      assert.deepEqual(JSON.parse(marker.data), { kind: 'snapshot', events: 3, complete: true });
      assert.ok(marker.id);
      await publish([{ topic: 'l1', tenant: 'T1', key: 'k1', data: 'k1@5' }]);
      await stream.until((s) => split(s).live.length >= 1);
      assert.deepEqual(
        split(stream).live.map((e) => e.data),
        ['k1@5'],
      );
      const both = await open('topic=l1&topic=l1-other&snapshot=latest');
      await both.until(hasMarker, 10_000);
      assert.deepEqual(
        split(both).snapshot.map((e) => e.data),
        ['k3@3', 'k2@4', 'elsewhere', 'k1@5'],
      );
      stream.close();
      both.close();
    });

    test('updates racing with 20 streams opening: every stream ends with each key at its latest value, no id twice', async () => {
      const keys = Array.from({ length: 10 }, (_, i) => `r${i}`);
      const latestOf = new Map<string, string>();
      let n = 0;
      const update = async () => {
        const key = keys[n % keys.length] as string;
        const value = `${key}:${++n}`;
        latestOf.set(key, value);
        await publish([{ topic: 'l2', tenant: 'T1', key, data: value }]);
      };
      for (let i = 0; i < 30; i++) await update();
      let publishing = true;
      const publisher = (async () => {
        while (publishing) {
          await update();
          if (n % 4 === 0) await sleep(1);
        }
      })();
      const streams: SseStream[] = [];
      for (let i = 0; i < 20; i++) {
        streams.push(await open('topic=l2&snapshot=latest'));
        await sleep(3);
      }
      await Promise.all(streams.map((s) => s.until(hasMarker, 15_000)));
      await sleep(50);
      publishing = false;
      await publisher;
      const last = `${keys[(n - 1) % keys.length]}:${n}`;
      await Promise.all(streams.map((s) => s.until((x) => x.data.at(-1)?.data === last, 15_000, last)));
      for (const stream of streams) {
        const ids = stream.data.map((e) => e.id);
        assert.equal(new Set(ids).size, ids.length, 'no id twice');
        const final = new Map<string, string>();
        for (const event of stream.data) final.set(event.data.split(':')[0] as string, event.data);
        assert.deepEqual(final, latestOf, 'each key at its latest value');
        // Each key's values arrive in the order they were published.
        const counters = new Map<string, number>();
        for (const event of stream.data) {
          const [key, count] = event.data.split(':') as [string, string];
          assert.ok(Number(count) > (counters.get(key) ?? 0), `${event.data} after ${counters.get(key)}`);
          counters.set(key, Number(count));
        }
        stream.close();
      }
    });

    test("another tenant's slot of the same topic and key is never shown", async () => {
      await publish([
        { topic: 'l3', tenant: 'T1', key: 'shared', data: 't1' },
        { topic: 'l3', tenant: 'T2', key: 'shared', data: 't2' },
        { topic: 'l3', tenant: 'T2', key: 'theirs', data: 't2 only' },
      ]);
      const stream = await open('topic=l3&snapshot=latest');
      await stream.until(hasMarker, 10_000);
      assert.deepEqual(
        split(stream).snapshot.map((e) => e.data),
        ['t1'],
      );
      const answer = await latest('topic=l3');
      assert.deepEqual(
        answer.events.map((e) => e.data),
        ['t1'],
      );
      stream.close();
    });

    test('private values only with a grant, redacted fields only with the permission, in both', async () => {
      await publish([
        {
          topic: 'l4',
          tenant: 'T1',
          key: 'public',
          data: { v: 1, card: '4242' },
          redact: { '/card': 'pay' },
        },
        { topic: 'l4', tenant: 'T1', key: 'private', private: true, data: { v: 2 } },
      ]);
      const plain = await open('topic=l4&snapshot=latest');
      const grantedHeaders = bearer(
        await token({ tenant: 'T1', sub: 'u2', subscribe: ['l4'], permissions: ['pay'] }),
      );
      const granted = await open('topic=l4&snapshot=latest', grantedHeaders);
      await Promise.all([plain, granted].map((s) => s.until(hasMarker, 10_000)));
      assert.deepEqual(
        split(plain).snapshot.map((e) => JSON.parse(e.data)),
        [{ v: 1 }],
      );
      assert.ok(!plain.raw.includes('4242'));
      assert.deepEqual(
        split(granted).snapshot.map((e) => JSON.parse(e.data)),
        [{ v: 1, card: '4242' }, { v: 2 }],
      );
      const plainJson = await latest('topic=l4');
      assert.deepEqual(
        plainJson.events.map((e) => JSON.parse(e.data)),
        [{ v: 1 }],
      );
      const grantedJson = await latest('topic=l4', grantedHeaders);
      assert.deepEqual(
        grantedJson.events.map((e) => JSON.parse(e.data)),
        [{ v: 1, card: '4242' }, { v: 2 }],
      );
      plain.close();
      granted.close();
    });

    test('templates, type= and tag. filters apply', async () => {
      await publish([
        { topic: 'l5/1', tenant: 'T1', key: 'a', type: 'score', tags: { d: 'S1' }, data: 'keep' },
        { topic: 'l5/2', tenant: 'T1', key: 'a', type: 'msrp', tags: { d: 'S1' }, data: 'other type' },
        { topic: 'l5/3', tenant: 'T1', key: 'a', type: 'score', tags: { d: 'S2' }, data: 'other tag' },
        { topic: 'l5x/4', tenant: 'T1', key: 'a', type: 'score', tags: { d: 'S1' }, data: 'other topic' },
      ]);
      const query = `topic=${encodeURIComponent('l5/{id}')}&type=score&tag.d=S1`;
      const stream = await open(`${query}&snapshot=latest`);
      await stream.until(hasMarker, 10_000);
      assert.deepEqual(
        split(stream).snapshot.map((e) => e.data),
        ['keep'],
      );
      assert.deepEqual(
        (await latest(query)).events.map((e) => e.data),
        ['keep'],
      );
      stream.close();
    });

    test('GET /v1/latest, then a stream from its lastEventId and one publish: exactly that event', async () => {
      const [id] = await publish([{ topic: 'l6', tenant: 'T1', key: 'tile', type: 'score', data: { s: 1 } }]);
      const answer = await latest('topic=l6');
      assert.equal(answer.complete, true);
      assert.equal(answer.events.length, 1);
      const [event] = answer.events;
      assert.deepEqual(
        { ...event, time: undefined },
        { id, type: 'score', data: '{"s":1}', topic: 'l6', key: 'tile', time: undefined },
      );
      assert.ok(Math.abs(Date.parse(event?.time ?? '') - Date.now()) < 60_000, 'time is ISO 8601');
      const stream = await open(`topic=l6&lastEventId=${encodeURIComponent(answer.lastEventId)}`);
      await stream.untilConnected();
      await publish([{ topic: 'l6', tenant: 'T1', key: 'tile', type: 'score', data: { s: 2 } }]);
      await stream.untilData(1);
      await sleep(100);
      assert.deepEqual(
        stream.data.map((e) => e.data),
        ['{"s":2}'],
      );
      assert.ok(!hasMarker(stream));
      stream.close();
    });

    test('a first poll with snapshot=latest: the values, history, and where to go on from', async () => {
      await publish(['p1', 'p2', 'p3'].map((key) => ({ topic: 'l7', tenant: 'T1', key, data: key })));
      const poll = async (query: string) => {
        const response = await fetch(`${hub.url}/v1/events/poll?${query}`, { headers: t1 });
        assert.equal(response.status, 200);
        return (await response.json()) as {
          events: { data: string }[];
          lastEventId: string;
          history?: unknown;
        };
      };
      const first = await poll('topic=l7&snapshot=latest&wait=0');
      assert.deepEqual(
        first.events.map((e) => e.data),
        ['p1', 'p2', 'p3'],
      );
      assert.deepEqual(first.history, { kind: 'snapshot', events: 3, complete: true });
      await publish([{ topic: 'l7', tenant: 'T1', key: 'p1', data: 'p1 again' }]);
      const next = await poll(`topic=l7&after=${encodeURIComponent(first.lastEventId)}&wait=5`);
      assert.deepEqual(
        next.events.map((e) => e.data),
        ['p1 again'],
      );
      const newest = await poll('topic=l7&snapshot=latest&limit=2&wait=0');
      assert.deepEqual(
        newest.events.map((e) => e.data),
        ['p3', 'p1 again'],
      );
      assert.deepEqual(newest.history, { kind: 'snapshot', events: 2, complete: false });
    });

    test('herald.latest() in-process, for server rendering', async () => {
      await publish([
        { topic: 'l8', tenant: 'T1', key: 'x', data: 'x1' },
        { topic: 'l8', tenant: 'T1', key: 'x', data: 'x2' },
      ]);
      const answer = await hub.herald.latest({ topics: 'l8', tenant: 'T1' });
      assert.deepEqual(
        answer.events.map((e) => e.data),
        ['x2'],
      );
      assert.equal(answer.complete, true);
    });

    test('time to the herald.history marker of a snapshot of 1 000 keys', async (t) => {
      for (let i = 0; i < 1000; i += 250) {
        await publish(
          Array.from({ length: 250 }, (_, j) => ({
            topic: 'tiles',
            tenant: 'T1',
            key: `tile-${i + j}`,
            data: { score: i + j },
          })),
        );
      }
      const times: number[] = [];
      for (let run = 0; run < 3; run++) {
        const startedAt = performance.now();
        const stream = await open('topic=tiles&snapshot=latest');
        await stream.until(hasMarker, 30_000);
        const marker = stream.events.find((e) => e.type === 'herald.history') as ReceivedEvent;
        times.push(marker.at - startedAt);
        assert.equal(split(stream).snapshot.length, 1000);
        stream.close();
      }
      t.diagnostic(
        `${backend.name}: request to herald.history for 1 000 keys: ${times.map((ms) => `${ms.toFixed(1)} ms`).join(', ')}`,
      );
      console.log(`# latest-paint ${backend.name}: ${times.map((ms) => ms.toFixed(1)).join(' / ')} ms`);
    });
  });

  describe(`the latest value per key: bounds (${backend.name})`, () => {
    let hub: TestHub;
    before(async () => {
      hub = await hubOn(backend, { snapshot: { maxEvents: 3 } });
    });
    after(() => hub.close());

    test('more values than --max-snapshot: the newest, and complete:false', async () => {
      await hub.herald.publish(['a', 'b', 'c', 'd', 'e'].map((key) => ({ topic: 'b1', key, data: key })));
      const stream = await hub.subscribe('topic=b1&snapshot=latest');
      await stream.until(hasMarker, 10_000);
      const { snapshot, marker } = split(stream);
      assert.deepEqual(
        snapshot.map((e) => e.data),
        ['c', 'd', 'e'],
      );
      assert.deepEqual(JSON.parse(marker.data), { kind: 'snapshot', events: 3, complete: false });
      const answer = (await (await fetch(`${hub.url}/v1/latest?topic=b1&limit=2`)).json()) as Latest;
      assert.deepEqual(
        answer.events.map((e) => e.data),
        ['d', 'e'],
      );
      assert.equal(answer.complete, false);
      stream.close();
    });
  });
}
