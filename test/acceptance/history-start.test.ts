import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { PublishInput } from '../../src/core/event.ts';
import { parseSelector } from '../../src/core/topics.ts';
import { BACKENDS, hubOn } from '../helpers/backends.ts';
import { sleep, type TestHub } from '../helpers/server.ts';
import type { ReceivedEvent, SseStream } from '../helpers/sse-client.ts';
import { bearer, SECRET, token } from '../helpers/tokens.ts';

/**
 * A new stream or first poll that starts from recent history (`rewind`, `since`): the events it
 * may see, oldest first, then `herald.history` with the resume point, then live, with no gap and
 * no duplicate; within its tenant, grants, filters and redaction; bounded.
 */

interface Phases {
  readonly connected: ReceivedEvent;
  readonly history: ReceivedEvent[];
  readonly marker: ReceivedEvent;
  readonly live: ReceivedEvent[];
}

/** A stream's events split at `herald.history`. */
function phases(stream: SseStream): Phases {
  const events = stream.events.filter((e) => e.type !== 'herald.gap');
  const at = events.findIndex((e) => e.type === 'herald.history');
  assert.ok(at > 0, `a herald.history marker:\n${stream.raw.slice(0, 2000)}`);
  const connected = events[0] as ReceivedEvent;
  assert.equal(connected.type, 'herald.connected');
  return {
    connected,
    history: events.slice(1, at).filter((e) => !e.type.startsWith('herald.')),
    marker: events[at] as ReceivedEvent,
    live: events.slice(at + 1).filter((e) => !e.type.startsWith('herald.')),
  };
}

const hasMarker = (s: SseStream) => s.events.some((e) => e.type === 'herald.history');
const data = (events: readonly ReceivedEvent[]) => events.map((e) => e.data);
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => String(from + i));

for (const backend of BACKENDS) {
  describe(`starting from history: rewind and since (${backend.name})`, () => {
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

    test('rewind=5: the last 5 of its tenant and topic in order, herald.history with the resume point, then live', async () => {
      const events = Array.from({ length: 30 }, (_, i) => ({
        topic: i % 2 === 0 ? 'r1/a' : 'r1/b',
        tenant: i % 3 === 0 ? 'T2' : 'T1',
        data: `e${i}`,
      }));
      await publish(events);
      const stream = await open('topic=r1/a&rewind=5');
      await stream.until(hasMarker, 10_000, 'herald.history');
      const { connected, history, marker } = phases(stream);
      const expected = events.filter((e) => e.topic === 'r1/a' && e.tenant === 'T1').map((e) => e.data);
      assert.deepEqual(data(history), expected.slice(-5));
      assert.equal(connected.id, undefined, 'no id on herald.connected before history');
      assert.equal(JSON.parse(connected.data).history, 'rewind');
      assert.deepEqual(JSON.parse(marker.data), { kind: 'rewind', events: 5, complete: true });
      assert.ok(marker.id !== undefined && marker.id !== '', 'the marker carries the resume point');
      assert.equal(JSON.parse(connected.data).lastEventId, marker.id);
      for (const event of history) assert.ok(event.id, 'each history event has its id');
      await publish([{ topic: 'r1/a', tenant: 'T1', data: 'live' }]);
      await stream.until((s) => phases(s).live.length >= 1);
      assert.deepEqual(data(phases(stream).live), ['live']);
      stream.close();
    });

    test('rewind=50 with only 7 matching gives the 7', async () => {
      await publish(range(1, 7).map((n) => ({ topic: 'r2', tenant: 'T1', data: n })));
      const stream = await open('topic=r2&rewind=50');
      await stream.until(hasMarker, 10_000);
      const { history, marker } = phases(stream);
      assert.deepEqual(data(history), range(1, 7));
      assert.deepEqual(JSON.parse(marker.data), { kind: 'rewind', events: 7, complete: true });
      stream.close();
    });

    test('a publish storm while 20 streams open with rewind=10: each gets the last 10 before its hand-off and everything after, once, in order', async () => {
      let n = 0;
      await publish(Array.from({ length: 20 }, () => ({ topic: 'r3', tenant: 'T1', data: String(++n) })));
      let publishing = true;
      const publisher = (async () => {
        while (publishing) {
          await publish([{ topic: 'r3', tenant: 'T1', data: String(++n) }]);
          if (n % 5 === 0) await sleep(1);
        }
      })();
      const streams: SseStream[] = [];
      for (let i = 0; i < 20; i++) {
        streams.push(await open('topic=r3&rewind=10'));
        await sleep(3);
      }
      await Promise.all(streams.map((s) => s.until(hasMarker, 15_000)));
      await sleep(50);
      publishing = false;
      await publisher;
      const last = String(n);
      await Promise.all(
        streams.map((s) => s.until((x) => x.data.at(-1)?.data === last, 15_000, `event ${last}`)),
      );
      for (const stream of streams) {
        const { history, live } = phases(stream);
        assert.equal(history.length, 10, 'the last 10 before the hand-off');
        const received = data([...history, ...live]);
        const first = Number(received[0]);
        assert.deepEqual(received, range(first, n), 'no gap, no duplicate, in order');
        stream.close();
      }
    });

    test("another tenant's newer events on the same topic never appear", async () => {
      await publish(range(1, 5).map((d) => ({ topic: 'r4', tenant: 'T1', data: `t1-${d}` })));
      await publish(range(1, 100).map((d) => ({ topic: 'r4', tenant: 'T2', data: `t2-${d}` })));
      const stream = await open('topic=r4&rewind=50');
      await stream.until(hasMarker, 10_000);
      assert.deepEqual(
        data(phases(stream).history),
        range(1, 5).map((d) => `t1-${d}`),
      );
      stream.close();
    });

    test('private events appear only with a grant; redacted fields only with the permission', async () => {
      const events = range(1, 10).map((d) => ({
        topic: 'r5',
        tenant: 'T1',
        private: Number(d) % 2 === 0,
        data: { n: Number(d), secret: `s${d}` },
        redact: { '/secret': 'secret:read' },
      }));
      await publish(events);
      const plain = await open('topic=r5&rewind=3');
      const granted = await open(
        'topic=r5&rewind=3',
        bearer(await token({ tenant: 'T1', sub: 'u2', subscribe: ['r5'], permissions: ['secret:read'] })),
      );
      await Promise.all([plain, granted].map((s) => s.until(hasMarker, 10_000)));
      assert.deepEqual(
        phases(plain).history.map((e) => JSON.parse(e.data)),
        [{ n: 5 }, { n: 7 }, { n: 9 }],
      );
      for (const hidden of ['s5', 's7', 's9'])
        assert.ok(!plain.raw.includes(hidden), 'no redacted field in the bytes');
      assert.deepEqual(
        phases(granted).history.map((e) => JSON.parse(e.data)),
        [
          { n: 8, secret: 's8' },
          { n: 9, secret: 's9' },
          { n: 10, secret: 's10' },
        ],
      );
      plain.close();
      granted.close();
    });

    test('templates, type= and tag. filters apply to the history', async () => {
      await publish([
        { topic: 'r6/1/x', tenant: 'T1', type: 'score', tags: { d: 'S1' }, data: 'keep1' },
        { topic: 'r6/2/x', tenant: 'T1', type: 'msrp', tags: { d: 'S1' }, data: 'other type' },
        { topic: 'r6/3/x', tenant: 'T1', type: 'score', tags: { d: 'S2' }, data: 'other tag' },
        { topic: 'r6/4/y', tenant: 'T1', type: 'score', tags: { d: 'S1' }, data: 'other topic' },
        { topic: 'r6/5/x', tenant: 'T1', type: 'score', tags: { d: 'S1' }, data: 'keep2' },
      ]);
      const stream = await open(`topic=${encodeURIComponent('r6/{id}/x')}&type=score&tag.d=S1&rewind=10`);
      await stream.until(hasMarker, 10_000);
      assert.deepEqual(data(phases(stream).history), ['keep1', 'keep2']);
      assert.deepEqual(
        phases(stream).history.map((e) => e.type),
        ['score', 'score'],
      );
      stream.close();
    });

    test('since as a duration, an ISO time and epoch ms excludes older events; with rewind, the intersection', async () => {
      await publish([{ topic: 'r7', tenant: 'T1', data: 'old' }]);
      await sleep(1100);
      const cut = Date.now();
      await publish(range(1, 4).map((d) => ({ topic: 'r7', tenant: 'T1', data: `new${d}` })));
      const news = range(1, 4).map((d) => `new${d}`);
      for (const since of ['1s', new Date(cut).toISOString(), String(cut)]) {
        const stream = await open(`topic=r7&since=${encodeURIComponent(since)}`);
        await stream.until(hasMarker, 10_000);
        assert.deepEqual(data(phases(stream).history), news, `since=${since}`);
        stream.close();
      }
      const both = await open('topic=r7&since=1h&rewind=3');
      await both.until(hasMarker, 10_000);
      assert.deepEqual(data(phases(both).history), news.slice(-3));
      both.close();
      const all = await open('topic=r7&since=1h');
      await all.until(hasMarker, 10_000);
      assert.deepEqual(data(phases(all).history), ['old', ...news]);
      assert.equal(JSON.parse(phases(all).marker.data).complete, true);
      all.close();
    });

    test('a Last-Event-ID wins: rewind, since and snapshot are ignored, even malformed', async () => {
      const ids = await publish(range(1, 5).map((d) => ({ topic: 'r8', tenant: 'T1', data: d })));
      const stream = await open('topic=r8&rewind=abc&since=never&snapshot=oldest', t1, ids[2]);
      await stream.untilData(2);
      await sleep(50);
      assert.deepEqual(data(stream.data), ['4', '5']);
      assert.ok(!hasMarker(stream));
      const connected = stream.events[0] as ReceivedEvent;
      assert.equal(connected.id, ids[2]);
      assert.equal(JSON.parse(connected.data).history, undefined);
      stream.close();
      // The query's lastEventId counts as one too.
      const byQuery = await open(`topic=r8&rewind=5&lastEventId=${encodeURIComponent(ids[3] as string)}`);
      await byQuery.untilData(1);
      await sleep(50);
      assert.deepEqual(data(byQuery.data), ['5']);
      assert.ok(!hasMarker(byQuery));
      byQuery.close();
    });

    test('a first poll starts from the history; the next poll goes on from its lastEventId', async () => {
      await publish(range(1, 5).map((d) => ({ topic: 'r9', tenant: 'T1', data: d })));
      const poll = async (query: string) => {
        const response = await fetch(`${hub.url}/v1/events/poll?${query}`, { headers: t1 });
        assert.equal(response.status, 200);
        return (await response.json()) as {
          events: { id: string; data: string }[];
          lastEventId: string;
          history?: unknown;
        };
      };
      const first = await poll('topic=r9&rewind=3&wait=0');
      assert.deepEqual(
        first.events.map((e) => e.data),
        ['3', '4', '5'],
      );
      assert.deepEqual(first.history, { kind: 'rewind', events: 3, complete: true });
      await publish([{ topic: 'r9', tenant: 'T1', data: '6' }]);
      const next = await poll(`topic=r9&after=${encodeURIComponent(first.lastEventId)}&rewind=3&wait=5`);
      assert.deepEqual(
        next.events.map((e) => e.data),
        ['6'],
      );
      assert.equal(next.history, undefined);

      // More history than the poll's limit: the oldest first, the rest on the next poll.
      const part = await poll('topic=r9&rewind=4&limit=2&wait=0');
      assert.deepEqual(
        part.events.map((e) => e.data),
        ['3', '4'],
      );
      assert.equal(part.lastEventId, part.events[1]?.id);
      const rest = await poll(`topic=r9&after=${encodeURIComponent(part.lastEventId)}&wait=0`);
      assert.deepEqual(
        rest.events.map((e) => e.data),
        ['5', '6'],
      );

      // Nothing to rewind: the poll waits for live events as any first poll does.
      const waiting = poll('topic=r9-empty&rewind=3&wait=5');
      await sleep(200);
      await publish([{ topic: 'r9-empty', tenant: 'T1', data: 'live' }]);
      const woken = await waiting;
      assert.deepEqual(
        woken.events.map((e) => e.data),
        ['live'],
      );
      assert.deepEqual(woken.history, { kind: 'rewind', events: 0, complete: true });
    });
  });

  describe(`starting from history: the hub's bounds (${backend.name})`, () => {
    let hub: TestHub;
    before(async () => {
      hub = await hubOn(backend, {
        rewind: { maxEvents: 5, maxScan: 40 },
        replayPageSize: 8,
        outbox: { maxEvents: 4, maxBytes: 4 * 1024 * 1024, policy: 'disconnect' },
      });
    });
    after(() => hub.close());
    const publish = (events: readonly PublishInput[]) => hub.herald.publish(events);

    test('complete:false when the log entries examined reach the bound', async () => {
      await publish([{ topic: 'rare', data: 'too far' }]);
      await publish(range(1, 60).map((d) => ({ topic: 'common', data: d })));
      const stream = await hub.subscribe('topic=rare&rewind=5');
      await stream.until(hasMarker, 10_000);
      const { history, marker } = phases(stream);
      assert.deepEqual(data(history), []);
      assert.deepEqual(JSON.parse(marker.data), { kind: 'rewind', events: 0, complete: false });
      stream.close();
    });

    test('since alone gets at most the bound, the newest, and says it is incomplete', async () => {
      await publish(range(1, 7).map((d) => ({ topic: 'capped', data: d })));
      const stream = await hub.subscribe('topic=capped&since=1h');
      await stream.until(hasMarker, 10_000);
      const { history, marker } = phases(stream);
      assert.deepEqual(data(history), range(3, 7));
      assert.deepEqual(JSON.parse(marker.data), { kind: 'rewind', events: 5, complete: false });
      stream.close();
    });

    test('an outbox that overflows while the history is sent: still no gap and no duplicate', async () => {
      let n = 0;
      await publish(range(1, 5).map(() => ({ topic: 'flood', data: String(++n) })));
      const storm = (async () => {
        for (let i = 0; i < 20; i++) {
          await publish(Array.from({ length: 10 }, () => ({ topic: 'flood', data: String(++n) })));
        }
      })();
      const stream = await hub.subscribe('topic=flood&rewind=5');
      await storm;
      await stream.until((s) => s.data.at(-1)?.data === String(n), 15_000, `event ${n}`);
      await sleep(50);
      const { history, live } = phases(stream);
      const received = data([...history, ...live]);
      assert.deepEqual(received, range(Number(received[0]), n));
      assert.equal(stream.ended, false);
      stream.close();
    });

    test('the same, with the publishes landing while the history is read: the replay reads on to the moved bound', async () => {
      let n = 0;
      await publish(range(1, 5).map(() => ({ topic: 'flood2', data: String(++n) })));
      const text: string[] = [];
      const subscriber = hub.herald.hub.subscribe(
        { tenant: '', selectors: [parseSelector('flood2')], grants: [], start: { kind: 'rewind', count: 5 } },
        {
          write(chunks) {
            for (const chunk of chunks) text.push(Buffer.from(chunk).toString());
            return true;
          },
          end() {},
          destroy() {},
        },
      );
      await hub.herald.hub.whenReady();
      const registeredAt = subscriber.replayUntil;
      await Promise.all(
        Array.from({ length: 20 }, () =>
          publish(Array.from({ length: 10 }, () => ({ topic: 'flood2', data: String(++n) }))),
        ),
      );
      const received = () =>
        text
          .join('')
          .split('\n')
          .filter((line) => line.startsWith('data: ') && /^\d+$/.test(line.slice(6)))
          .map((line) => line.slice(6));
      const deadline = Date.now() + 10_000;
      while (received().at(-1) !== String(n) && Date.now() < deadline) await sleep(20);
      assert.deepEqual(received(), range(1, n));
      if (backend.name === 'memory') {
        assert.notEqual(subscriber.replayUntil, registeredAt, 'the outbox overflowed and the bound moved');
      }
      subscriber.closed();
    });
  });
}
