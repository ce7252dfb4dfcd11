import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { EventSource } from 'eventsource';
import { BACKENDS, hubOn } from '../helpers/backends.ts';
import { sleep } from '../helpers/server.ts';

for (const backend of BACKENDS) {
  describe(`connection lifetime (${backend.name})`, () => {
    test('a stream closed by the lifetime limit is resumed by a standard EventSource with nothing missed', async () => {
      // Streams end every ~400 ms; the retry hint brings the client back within ~100–200 ms.
      const hub = await hubOn(backend, { maxLifetimeMs: 400, retryMs: 100, heartbeatMs: 100 });
      const source = new EventSource(`${hub.url}/v1/events?topic=progress`);
      const received: string[] = [];
      let opens = 0;
      source.addEventListener('open', () => opens++);
      source.addEventListener('message', (event) => received.push(event.data));
      try {
        await new Promise<void>((resolve) =>
          source.addEventListener('herald.connected', () => resolve(), { once: true }),
        );
        const published: string[] = [];
        for (let i = 0; i < 150; i++) {
          const data = `step ${i}`;
          await hub.publish({ topic: 'progress', data });
          published.push(data);
          await sleep(10);
        }
        const deadline = Date.now() + 10_000;
        while (received.length < published.length && Date.now() < deadline) await sleep(20);
        assert.deepEqual(received, published);
        const stats = await hub.herald.stats();
        assert.ok(
          stats.events.closed.lifetime >= 2,
          `ended by lifetime ${stats.events.closed.lifetime} times`,
        );
        assert.ok(opens >= 3, `the client opened ${opens} streams`);
      } finally {
        source.close();
        await hub.close();
      }
    });
  });
}
