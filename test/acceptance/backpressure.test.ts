import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { describe, test } from 'node:test';
import { BACKENDS, hubOn } from '../helpers/backends.ts';
import { sleep, type TestHub } from '../helpers/server.ts';
import type { SseStream } from '../helpers/sse-client.ts';

/** A client that sends its request and then never reads: its socket fills and stays full. */
async function stalledClient(hub: TestHub, query: string): Promise<Socket> {
  const { port } = new URL(hub.url);
  const socket = connect(Number(port), '127.0.0.1');
  await new Promise<void>((resolve) => socket.once('connect', resolve));
  socket.write(`GET /v1/events?${query} HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\r\n`);
  socket.pause();
  return socket;
}

const bulk = 'x'.repeat(64 * 1024);
const OUTBOX = { maxEvents: 1000, maxBytes: 1024 * 1024 };

async function openNormal(hub: TestHub, n: number): Promise<SseStream[]> {
  const streams = await Promise.all(Array.from({ length: n }, () => hub.subscribe('topic=ticks')));
  await Promise.all(streams.map((s) => s.until((x) => x.events.length >= 1)));
  return streams;
}

/** Publishes 40 ticks 10 ms apart, each with its send time, interleaved with bulk data for the stalled client. */
async function publishUnderPressure(hub: TestHub): Promise<number[]> {
  const sentAt: number[] = [];
  for (let i = 0; i < 40; i++) {
    sentAt.push(performance.now());
    await hub.publish({ topic: 'ticks', data: String(i) });
    await hub.publish(Array.from({ length: 8 }, () => ({ topic: 'bulk', data: bulk })));
    await sleep(10);
  }
  return sentAt;
}

for (const backend of BACKENDS) {
  describe(`backpressure (${backend.name})`, () => {
    test('disconnect policy: one stalled client is cut off, 100 others get every event without delay, memory stays bounded', async () => {
      const hub = await hubOn(backend, { outbox: { ...OUTBOX, policy: 'disconnect' } });
      let stalled: Socket | undefined;
      let sampler: ReturnType<typeof setInterval> | undefined;
      try {
        stalled = await stalledClient(hub, 'topic=ticks&topic=bulk');
        const normal = await openNormal(hub, 100);
        let maxQueued = 0;
        sampler = setInterval(async () => {
          maxQueued = Math.max(maxQueued, (await hub.herald.stats()).outbox.queuedBytes);
        }, 5);
        const sentAt = await publishUnderPressure(hub);
        await Promise.all(normal.map((s) => s.untilData(40, 10_000)));
        clearInterval(sampler);

        for (const stream of normal) {
          assert.deepEqual(
            stream.data.map((e) => e.data),
            Array.from({ length: 40 }, (_, i) => String(i)),
          );
        }
        // Delay: from publish to arrival, across all 100 clients and 40 events.
        const delays = normal
          .flatMap((s) => s.data.map((e, i) => e.at - (sentAt[i] as number)))
          .sort((a, b) => a - b);
        const p99 = delays[Math.floor(delays.length * 0.99)] as number;
        // Generous, so that a machine busy with other work keeps it (tens of ms on a quiet one):
        // a stalled client that held the others back would hold them for as long as it stalls.
        assert.ok(p99 < 2000, `p99 publish-to-receive ${p99.toFixed(1)} ms`);

        const stats = await hub.herald.stats();
        assert.equal(stats.events.closed.overflow, 1, 'the stalled client was cut off');
        assert.equal(stats.connections.total, 100);
        assert.ok(maxQueued <= OUTBOX.maxBytes + bulk.length * 2, `queued at most ${maxQueued} bytes`);
        assert.equal(stats.outbox.queuedBytes, 0);
      } finally {
        clearInterval(sampler);
        stalled?.destroy();
        await hub.close();
      }
    });

    test('drop-oldest policy: the stalled client stays, its queue stays bounded, and on resuming it is told of the gap', async () => {
      const hub = await hubOn(backend, { outbox: { ...OUTBOX, policy: 'drop-oldest' } });
      let stalled: Socket | undefined;
      try {
        stalled = await stalledClient(hub, 'topic=ticks&topic=bulk');
        const normal = await openNormal(hub, 10);
        await publishUnderPressure(hub);
        await Promise.all(normal.map((s) => s.untilData(40, 10_000)));
        const stats = await hub.herald.stats();
        assert.equal(stats.connections.total, 11, 'nobody was cut off');
        assert.ok(stats.events.droppedEvents > 0, 'events were dropped');
        assert.ok(stats.outbox.queuedBytes <= OUTBOX.maxBytes, `queued ${stats.outbox.queuedBytes} bytes`);

        // The client reads again: it gets a herald.gap saying what it missed, then the newest events.
        let received = '';
        stalled.setEncoding('utf8');
        stalled.on('data', (text: string) => {
          received += text;
        });
        stalled.resume();
        const deadline = Date.now() + 10_000;
        while (!/event: herald\.gap\n/.test(received) && Date.now() < deadline) await sleep(20);
        const gap = /event: herald\.gap\ndata: (.*)\n/.exec(received);
        assert.ok(gap, 'a herald.gap event arrived');
        const body = JSON.parse(gap[1] as string);
        assert.equal(body.reason, 'overflow');
        assert.ok(body.dropped > 0);
      } finally {
        stalled?.destroy();
        await hub.close();
      }
    });
  });
}

describe('conflation on a healthy stream', () => {
  test('events with the same key published together reach even an idle, fast stream as the latest value', async () => {
    const memory = BACKENDS.find((backend) => backend.name === 'memory');
    assert.ok(memory);
    const hub = await hubOn(memory);
    try {
      const stream = await hub.subscribe('topic=tiles');
      await stream.untilConnected();
      // One publish, so one feed batch and one flush: the documented merge within a tick.
      await hub.publish([
        { topic: 'tiles', key: 'k', data: 1 },
        { topic: 'tiles', key: 'k', data: 2 },
        { topic: 'tiles', data: 3 },
      ]);
      await stream.untilData(2);
      await sleep(50);
      assert.deepEqual(
        stream.data.map((e) => e.data),
        ['2', '3'],
      );
      // A replay is the log as it is: every event, none merged.
      const start = stream.events.find((e) => e.type === 'herald.connected')?.id;
      const replay = await hub.subscribe('topic=tiles', { lastEventId: start as string });
      await replay.untilData(3);
      assert.deepEqual(
        replay.data.map((e) => e.data),
        ['1', '2', '3'],
      );
    } finally {
      await hub.close();
    }
  });
});
