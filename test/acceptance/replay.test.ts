import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { BACKENDS, hubOn } from '../helpers/backends.ts';
import { sleep, startHub, type TestHub } from '../helpers/server.ts';

const seq = (prefix: string, n: number, from = 0) =>
  Array.from({ length: n }, (_, i) => `${prefix}${from + i}`);

for (const backend of BACKENDS) {
  describe(`resuming with Last-Event-ID over a real server (${backend.name})`, () => {
    let hub: TestHub;
    before(async () => {
      hub = await hubOn(backend, { replayPageSize: 16 });
    });
    after(() => hub.close());

    test('a client that missed 100 events gets exactly those, in order, then live events, while publishing goes on', async () => {
      const first = await hub.subscribe('topic=orders');
      await first.until((s) => s.events.length >= 1);
      await hub.publish(seq('before', 5).map((data) => ({ topic: 'orders', data })));
      await first.untilData(5);
      const lastSeen = first.data[4]?.id as string;
      first.close();

      // 100 events are published while the client is away (in small batches, some to other topics).
      for (let i = 0; i < 100; i += 10) {
        await hub.publish([
          ...seq('missed', 10, i).map((data) => ({ topic: 'orders', data })),
          { topic: 'elsewhere', data: 'not for this client' },
        ]);
      }

      // Another task keeps publishing while the client reconnects and replays.
      let publishing = true;
      const live: string[] = [];
      const publisher = (async () => {
        for (let i = 0; publishing && i < 1000; i++) {
          const data = `live${i}`;
          await hub.publish({ topic: 'orders', data });
          live.push(data);
          await sleep(2);
        }
      })();
      await sleep(10);
      const second = await hub.subscribe('topic=orders', { lastEventId: lastSeen });
      await second.until((s) => s.data.length >= 100 + 20, 10_000, 'the replay and 20 live events');
      publishing = false;
      await publisher;
      await second.untilData(100 + live.length, 5000);
      await sleep(50);

      // Everything after the last event seen, in log order: the 100 missed, then every live one
      // (some published before the reconnect and replayed, the rest delivered live), each once.
      assert.deepEqual(
        second.data.map((e) => e.data),
        [...seq('missed', 100), ...live],
      );
      assert.equal(second.events.filter((e) => e.type === 'herald.gap').length, 0);
      second.close();
    });

    test('the lastEventId query parameter resumes too, and the Last-Event-ID header wins over it', async () => {
      const ids = (await hub.publish([1, 2, 3].map((n) => ({ topic: 'q', data: `q${n}` })))).body
        .ids as string[];
      const byQuery = await hub.subscribe(`topic=q&lastEventId=${encodeURIComponent(ids[0] as string)}`);
      await byQuery.untilData(2);
      assert.deepEqual(
        byQuery.data.map((e) => e.data),
        ['q2', 'q3'],
      );
      byQuery.close();

      const both = await hub.subscribe(`topic=q&lastEventId=${encodeURIComponent(ids[0] as string)}`, {
        lastEventId: ids[1] as string,
      });
      await both.untilData(1);
      await sleep(50);
      assert.deepEqual(
        both.data.map((e) => e.data),
        ['q3'],
      );
      both.close();
    });

    test('herald.connected carries the resume point, so a client that saw no event resumes from there', async () => {
      const quiet = await hub.subscribe('topic=quiet');
      await quiet.until((s) => s.events.length >= 1);
      const connected = quiet.events[0];
      assert.equal(connected?.type, 'herald.connected');
      const resumeFrom = connected?.id as string;
      assert.equal(JSON.parse(connected?.data ?? '{}').lastEventId, resumeFrom);
      quiet.close();
      await hub.publish({ topic: 'quiet', data: 'while away' });
      const back = await hub.subscribe('topic=quiet', { lastEventId: resumeFrom });
      await back.untilData(1);
      assert.equal(back.data[0]?.data, 'while away');
      back.close();
    });

    for (const [name, id] of [
      ['unknown', 'never-issued'],
      ['malformed', 'x'.repeat(300)],
      ['from the future', `${'zzzzzzzzz'}-1`],
    ] as const) {
      test(`an ${name} Last-Event-ID gives herald.gap (unknown), then live events`, async () => {
        const stream = await hub.subscribe('topic=gap', { lastEventId: id });
        await stream.until((s) => s.events.some((e) => e.type === 'herald.gap'));
        const gap = stream.events.find((e) => e.type === 'herald.gap');
        assert.deepEqual(JSON.parse(gap?.data ?? '{}'), { lastEventId: id, reason: 'unknown' });
        await hub.publish({ topic: 'gap', data: 'live' });
        await stream.untilData(1);
        assert.deepEqual(
          stream.data.map((e) => e.data),
          ['live'],
        );
        stream.close();
      });
    }
  });
}

for (const backend of BACKENDS) {
  describe(`history limits and restarts (${backend.name})`, () => {
    test('an expired Last-Event-ID gives herald.gap (expired), then what history holds, then live', async () => {
      const hub = await hubOn(backend, { history: { maxEvents: 10 } });
      try {
        const ids = (await hub.publish(seq('e', 30).map((data) => ({ topic: 't', data })))).body
          .ids as string[];
        const stream = await hub.subscribe('topic=t', { lastEventId: ids[2] });
        await stream.untilData(10);
        await hub.publish({ topic: 't', data: 'live' });
        await stream.untilData(11);
        assert.equal(
          JSON.parse(stream.events.find((e) => e.type === 'herald.gap')?.data ?? '{}').reason,
          'expired',
        );
        assert.deepEqual(
          stream.data.map((e) => e.data),
          [...seq('e', 10, 20), 'live'],
        );
        stream.close();
      } finally {
        await hub.close();
      }
    });

    test('after a restart, an id from the old process replays everything published since', async () => {
      const stream = backend.newStream();
      const old = await startHub({ broker: await backend.broker(stream) });
      await old.publish({ topic: 't', data: 'before restart 1' });
      const oldId = (await old.publish({ topic: 't', data: 'before restart 2' })).body.id as string;
      await old.publish({ topic: 't', data: 'missed before the restart' });
      await old.close();
      await sleep(5); // a new epoch for the memory broker
      const restarted = await startHub({ broker: await backend.broker(stream) });
      try {
        await restarted.publish([
          { topic: 't', data: 'after restart 1' },
          { topic: 't', data: 'after restart 2' },
        ]);
        const resumed = await restarted.subscribe('topic=t', { lastEventId: oldId });
        if (backend.name === 'memory') {
          // The old process's history died with it: the client is told, then gets all there is.
          await resumed.untilData(2);
          assert.equal(
            JSON.parse(resumed.events.find((e) => e.type === 'herald.gap')?.data ?? '{}').reason,
            'expired',
          );
          assert.deepEqual(
            resumed.data.map((e) => e.data),
            ['after restart 1', 'after restart 2'],
          );
        } else {
          // The log outlives the node: exactly what the client missed, no gap.
          await resumed.untilData(3);
          assert.equal(
            resumed.events.find((e) => e.type === 'herald.gap'),
            undefined,
          );
          assert.deepEqual(
            resumed.data.map((e) => e.data),
            ['missed before the restart', 'after restart 1', 'after restart 2'],
          );
        }
        resumed.close();
      } finally {
        await restarted.close();
        await backend.drop(stream);
      }
    });

    test('a publisher-chosen id is what clients see and resume from', async () => {
      const hub = await hubOn(backend);
      try {
        const response = await hub.publish({ topic: 't', id: 'urn:uuid:42', data: 'chosen' });
        assert.equal(response.body.id, 'urn:uuid:42');
        await hub.publish({ topic: 't', data: 'next' });
        const stream = await hub.subscribe('topic=t', { lastEventId: 'urn:uuid:42' });
        await stream.untilData(1);
        assert.deepEqual(
          stream.data.map((e) => e.data),
          ['next'],
        );
        const conflict = await hub.publish({ topic: 't', id: 'urn:uuid:42', data: 'again' });
        assert.equal(conflict.status, 409);
        stream.close();
      } finally {
        await hub.close();
      }
    });
  });
}
