import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { BACKENDS, hubOn } from '../helpers/backends.ts';
import type { TestHub } from '../helpers/server.ts';

for (const backend of BACKENDS) {
  describe(`streaming over a real server (${backend.name})`, () => {
    let hub: TestHub;
    before(async () => {
      hub = await hubOn(backend, { heartbeatMs: 1000 });
    });
    after(() => hub.close());

    test('the response is an event stream that opens with retry and herald.connected', async () => {
      const stream = await hub.subscribe('topic=greetings');
      assert.equal(stream.status, 200);
      assert.equal(stream.headers['content-type'], 'text/event-stream; charset=utf-8');
      assert.equal(stream.headers['cache-control'], 'no-cache, no-transform');
      assert.equal(stream.headers['x-accel-buffering'], 'no');
      await stream.until((s) => s.events.length >= 1);
      assert.equal(stream.retry, 1000);
      assert.equal(stream.events[0]?.type, 'herald.connected');
      stream.close();
    });

    test('multi-line and non-ASCII data round-trip byte-exact', async () => {
      const stream = await hub.subscribe('topic=text');
      await stream.until((s) => s.events.length >= 1);
      const texts = [
        'first line\nsecond line\n\nafter a blank line',
        'Zürich · 東京 · São Paulo · 🎉🚗',
        '  leading spaces\ttab\nid: not-a-field\nevent: not-a-field',
        '',
        'trailing newline\n',
      ];
      for (const data of texts) assert.equal((await hub.publish({ topic: 'text', data })).status, 202);
      // JSON data is serialized once and arrives as the same JSON text.
      const json = { vin: '1ABC', note: 'multi\nline', price: 43000.5, tags: ['ü', '✓'] };
      await hub.publish({ topic: 'text', type: 'json', data: json });
      await stream.untilData(texts.length + 1);
      assert.deepEqual(
        stream.data.slice(0, texts.length).map((e) => e.data),
        texts,
      );
      const last = stream.data[texts.length];
      assert.equal(last?.type, 'json');
      assert.deepEqual(JSON.parse(last?.data ?? ''), json);
      assert.equal(last?.data, JSON.stringify(json));
      stream.close();
    });

    test('a quiet stream gets a heartbeat comment on its interval (1 s here, 15 s by default)', async () => {
      const stream = await hub.subscribe('topic=quiet');
      await stream.until((s) => s.events.length >= 1);
      // Two heartbeats take about 2 s; the bound is generous for a busy machine, and still far
      // from the 30 s two would take at the default interval.
      await stream.until((s) => s.comments.length >= 2, 10_000, 'two heartbeats');
      assert.match(stream.raw, /\n: hb\n\n/);
      stream.close();
    });

    test('a URI template selects dealers/STORE1/scores but not dealers/STORE1/msrp', async () => {
      const stream = await hub.subscribe(`topic=${encodeURIComponent('dealers/{dealerId}/scores')}`);
      await stream.until((s) => s.events.length >= 1);
      await hub.publish({ topic: 'dealers/STORE1/msrp', data: 'msrp' });
      await hub.publish({ topic: 'dealers/STORE1/scores', type: 'ai-score', data: 'score 1' });
      await hub.publish({ topic: 'dealers/STORE2/scores', type: 'ai-score', data: 'score 2' });
      await stream.untilData(2);
      assert.deepEqual(
        stream.data.map((e) => [e.type, e.data]),
        [
          ['ai-score', 'score 1'],
          ['ai-score', 'score 2'],
        ],
      );
      stream.close();
    });

    test('with tag.vin=1ABC a subscriber gets only the events tagged so', async () => {
      const stream = await hub.subscribe(
        `topic=${encodeURIComponent('dealers/{dealerId}/scores')}&tag.vin=1ABC`,
      );
      await stream.until((s) => s.events.length >= 1);
      await hub.publish([
        { topic: 'dealers/S1/scores', tags: { vin: '2DEF' }, data: 'other vin' },
        { topic: 'dealers/S1/scores', data: 'untagged' },
        { topic: 'dealers/S1/scores', tags: { vin: '1ABC', dealerId: 'S1' }, data: 'match' },
      ]);
      await hub.publish({ topic: 'dealers/S1/scores', tags: { vin: '1ABC' }, data: 'match 2' });
      await stream.untilData(2);
      assert.deepEqual(
        stream.data.map((e) => e.data),
        ['match', 'match 2'],
      );
      stream.close();
    });

    test('with type=ai-score a subscriber gets only that event type', async () => {
      const stream = await hub.subscribe('topic=*&type=ai-score');
      await stream.until((s) => s.events.length >= 1);
      await hub.publish([
        { topic: 'x', type: 'msrp', data: 'no' },
        { topic: 'y', type: 'ai-score', data: 'yes' },
        { topic: 'z', data: 'untyped: no' },
      ]);
      await stream.untilData(1);
      await hub.publish({ topic: 'x', type: 'ai-score', data: 'yes again' });
      await stream.untilData(2);
      assert.deepEqual(
        stream.data.map((e) => e.data),
        ['yes', 'yes again'],
      );
      stream.close();
    });

    test('an event published in-process reaches HTTP subscribers and returns its id', async () => {
      const stream = await hub.subscribe('topic=inproc');
      await stream.until((s) => s.events.length >= 1);
      const id = await hub.herald.publish({ topic: 'inproc', type: 'ai-score', data: { avi: 66 } });
      await stream.untilData(1);
      assert.equal(stream.data[0]?.id, id);
      assert.equal(stream.data[0]?.data, '{"avi":66}');
      const ids = await hub.herald.publish([
        { topic: 'inproc', data: 1 },
        { topic: 'inproc', data: 2 },
      ]);
      await stream.untilData(3);
      assert.deepEqual(
        stream.data.slice(1).map((e) => e.id),
        ids,
      );
      stream.close();
    });
  });
}
