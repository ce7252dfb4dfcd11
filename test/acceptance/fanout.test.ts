import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { BACKENDS, hubOn } from '../helpers/backends.ts';

for (const backend of BACKENDS) {
  describe(`fan-out (${backend.name})`, () => {
    test('1 000 concurrent subscribers each receive all of 100 events, in order', async () => {
      const hub = await hubOn(backend);
      try {
        const streams = await Promise.all(Array.from({ length: 1000 }, () => hub.subscribe('topic=scores')));
        await Promise.all(streams.map((s) => s.until((x) => x.events.length >= 1, 10_000)));
        assert.equal((await hub.herald.stats()).connections.total, 1000);
        const expected: string[] = [];
        for (let i = 0; i < 100; i += 5) {
          const batch = Array.from({ length: 5 }, (_, j) => ({ topic: 'scores', data: { n: i + j } }));
          await hub.publish(batch);
          expected.push(...batch.map((e) => JSON.stringify(e.data)));
        }
        await Promise.all(streams.map((s) => s.untilData(100, 20_000)));
        for (const stream of streams) {
          assert.deepEqual(
            stream.data.map((e) => e.data),
            expected,
          );
        }
        const stats = await hub.herald.stats();
        assert.equal(stats.events.delivered, 100_000);
      } finally {
        await hub.close();
      }
    });
  });
}
