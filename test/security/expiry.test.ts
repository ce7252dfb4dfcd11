import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { sleep, startHub } from '../helpers/server.ts';
import type { SseStream } from '../helpers/sse-client.ts';
import { bearer, SECRET, token } from '../helpers/tokens.ts';

describe('token expiry mid-stream', () => {
  test('the client is told with herald.reauth, reconnects with a new token and Last-Event-ID, and misses nothing', async () => {
    const hub = await startHub({
      auth: { jwt: { secrets: [SECRET], clockToleranceSec: 0 } },
      reauthLeadMs: 1000,
    });
    const publisher = bearer(await token({ publish: ['progress'], sub: 'worker' }));
    try {
      const first = await hub.subscribe('topic=progress', {
        headers: bearer(await token({ sub: 'user', expiresIn: 2 })),
      });
      await first.until((s) => s.events.length >= 1);

      const published: string[] = [];
      let publishing = true;
      const worker = (async () => {
        for (let i = 0; publishing && i < 500; i++) {
          const data = `step ${i}`;
          assert.equal((await hub.publish({ topic: 'progress', data }, publisher)).status, 202);
          published.push(data);
          await sleep(15);
        }
      })();

      // What a client does on herald.reauth: fetch a fresh token, resume from the last id it has.
      await first.until((s) => s.events.some((e) => e.type === 'herald.reauth'), 3000, 'herald.reauth');
      const reauth = first.events.find((e) => e.type === 'herald.reauth');
      assert.ok(
        Date.parse(JSON.parse(reauth?.data ?? '{}').expiresAt) > Date.now(),
        'told before the expiry',
      );
      const lastSeen = first.data.at(-1)?.id ?? first.events[0]?.id;
      const second: SseStream = await hub.subscribe('topic=progress', {
        headers: bearer(await token({ sub: 'user', expiresIn: 3600 })),
        lastEventId: lastSeen,
      });
      await first.untilEnded(3000);
      assert.match(first.raw, /\nretry: \d+\n\n$/, 'the expired stream ends with a retry hint');
      assert.equal((await hub.herald.stats()).events.closed.expired, 1);
      await sleep(300);
      publishing = false;
      await worker;
      await second.until((s) => s.data.at(-1)?.data === published.at(-1), 5000, 'the last event');

      // Both streams overlap for a while: a client keeps each id once.
      const seen = new Map<string, string>();
      for (const event of [...first.data, ...second.data]) seen.set(event.id as string, event.data);
      assert.deepEqual([...seen.values()], published);
      assert.ok(second.data.length > 0 && first.data.length > 0);
    } finally {
      await hub.close();
    }
  });
});
