import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { startPrivateNats } from '../helpers/nats-server.ts';
import { type HubProcess, spawnHub } from '../helpers/nodes.ts';
import { startPrivateRedis } from '../helpers/redis-server.ts';
import { sleep } from '../helpers/server.ts';
import { openStream, type SseStream } from '../helpers/sse-client.ts';

/**
 * Issue 12, item 5: a broker that loses its log (Redis without persistence, a nats-server whose
 * store is gone) is killed and restarted empty under load, with three `herald serve` nodes on it.
 * Every node must notice, a client resuming from before must be told (`herald.gap` "reset") and
 * then get every event published since, once, and every node must deliver the same events after
 * the reset. Prints one summary line per broker.
 */

/** A broker server of the test's own: killed, and started again with nothing. */
interface WipedBroker {
  readonly url: string;
  kill(): Promise<void>;
  /** Starts it again, empty (the kill took its data). */
  startEmpty(): Promise<void>;
  stop(): Promise<void>;
}

async function wipedBroker(name: 'redis' | 'nats'): Promise<WipedBroker> {
  if (name === 'redis') {
    // No persistence: what a restart finds is an empty server.
    const redis = await startPrivateRedis();
    return {
      url: redis.url,
      kill: () => redis.kill(),
      startEmpty: () => redis.restart(),
      stop: () => redis.stop(),
    };
  }
  const nats = await startPrivateNats();
  return {
    url: nats.url,
    kill: () => nats.kill(),
    startEmpty: () => nats.restartEmpty(),
    stop: () => nats.dispose(),
  };
}

interface Batch {
  readonly data: readonly string[];
  readonly startedAt: number;
  finishedAt: number;
  status: number;
}

async function publish(node: HubProcess, data: readonly string[]): Promise<number> {
  try {
    const response = await fetch(`${node.url}/v1/publish`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(data.map((d) => ({ topic: 'ticks', data: d }))),
    });
    await response.arrayBuffer();
    return response.status;
  } catch {
    return 0;
  }
}

async function until(condition: () => boolean, what: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}

const BATCH = 10;
/** Each node's publisher sends a batch this often: three of them, up to 1 000 events a second. */
const PACE_MS = 30;

for (const name of ['redis', 'nats'] as const) {
  describe(`a ${name} broker killed and restarted empty under load, three nodes on it`, () => {
    let broker: WipedBroker | undefined;
    const nodes: HubProcess[] = [];
    const streams: SseStream[] = [];
    let publishing = false;
    let publisher: Promise<unknown> | undefined;
    after(async () => {
      publishing = false;
      await publisher?.catch(() => {});
      for (const stream of streams) stream.close();
      await Promise.all(nodes.map((node) => node.kill()));
      await broker?.stop();
    });

    test('every node notices; a resume from before gets herald.gap "reset" and every later event once; all nodes deliver the same events after it', {
      timeout: 300_000,
    }, async () => {
      broker = await wipedBroker(name);
      const url = broker.url;
      nodes.push(
        ...(await Promise.all([0, 1, 2].map(() => spawnHub(['--broker', url, '--stream', 'reset'])))),
      );
      const live = await Promise.all(
        nodes.flatMap((node) => [0, 1].map(() => openStream(`${node.url}/v1/events?topic=ticks`))),
      );
      streams.push(...live);
      await Promise.all(live.map((stream) => stream.untilConnected(15_000)));

      const batches: Batch[] = [];
      publishing = true;
      // One publisher per node, each at its own steady pace (a slow answer does not slow the rest).
      publisher = Promise.all(
        nodes.map(async (node, n) => {
          let next = performance.now();
          for (let i = 0; publishing; i++) {
            const data = Array.from({ length: BATCH }, (_, j) => `n${n}-${i * BATCH + j}`);
            const batch: Batch = { data, startedAt: performance.now(), finishedAt: 0, status: 0 };
            batches.push(batch);
            batch.status = await publish(node, data);
            batch.finishedAt = performance.now();
            next += PACE_MS;
            await sleep(Math.max(0, next - performance.now()));
          }
        }),
      );
      const accepted = (from: number, to = Number.POSITIVE_INFINITY) =>
        batches
          .filter((b) => b.status === 202 && b.startedAt >= from && b.finishedAt <= to)
          .flatMap((b) => b.data);

      await until(() => accepted(0).length >= 1500, '1500 events accepted before the kill');
      // What every live subscriber had before the kill: a resume point from the old log.
      const resumeFrom = live[0]?.data.at(-1)?.id;
      assert.ok(resumeFrom !== undefined, 'a subscriber received events before the kill');

      const killStarted = performance.now();
      await broker.kill();
      const killed = performance.now();
      await sleep(1000);
      await broker.startEmpty();
      const restarted = performance.now();

      // After the restart: events accepted now are certainly in the new log.
      await until(() => accepted(restarted).length >= 500, '500 events accepted after the restart', 120_000);
      const during = await openStream(`${(nodes[2] as HubProcess).url}/v1/events?topic=ticks`, {
        lastEventId: resumeFrom,
      });
      streams.push(during);
      await until(
        () => accepted(restarted).length >= 2000,
        '2000 events accepted after the restart',
        120_000,
      );
      publishing = false;
      await publisher;

      // Pre: accepted and answered before the kill began. Post: asked after the server was dead,
      // so accepted into the new log. Between (asked before, answered after): either, so neither
      // is required, and none may come twice.
      const before = accepted(0, killStarted);
      const post = accepted(killed);
      const ambiguous = new Set(
        batches
          .filter((b) => b.status === 202 && b.startedAt < killed && b.finishedAt > killStarted)
          .flatMap((b) => b.data),
      );
      const postSet = new Set(post);

      const resumed = await openStream(`${(nodes[1] as HubProcess).url}/v1/events?topic=ticks`, {
        lastEventId: resumeFrom,
      });
      streams.push(resumed);
      const afterReset = (stream: SseStream) => stream.data.map((e) => e.data).filter((d) => postSet.has(d));
      await Promise.all(
        [...live, during, resumed].map((stream) =>
          stream.until(
            (s) => afterReset(s).length >= post.length,
            60_000,
            `all ${post.length} post-reset events`,
          ),
        ),
      );
      await sleep(500); // anything extra (a duplicate) would arrive now

      // The log's order after the reset, as the first subscriber received it: every event accepted
      // after the restart, once, and each publisher's in the order it published them.
      const order = afterReset(live[0] as SseStream);
      assert.deepEqual([...order].sort(), [...post].sort(), 'every event accepted after the reset, once');
      for (let n = 0; n < nodes.length; n++) {
        const own = post.filter((d) => d.startsWith(`n${n}-`));
        assert.deepEqual(
          order.filter((d) => d.startsWith(`n${n}-`)),
          own,
          `publisher ${n}'s events in its order`,
        );
      }

      // Resumes from before the reset: told why, then every event since, once, in order.
      for (const [what, stream] of [
        ['resumed while publishing', during],
        ['resumed after', resumed],
      ] as const) {
        const gaps = stream.events.filter((e) => e.type === 'herald.gap');
        assert.equal(gaps.length, 1, `${what}: one herald.gap`);
        assert.equal(JSON.parse(gaps[0]?.data ?? '{}').reason, 'reset', `${what}: the gap says reset`);
        assert.deepEqual(afterReset(stream), order, `${what}: every event after the reset, once, in order`);
        const got = stream.data.map((e) => e.data);
        assert.equal(new Set(got).size, got.length, `${what}: nothing twice`);
        const strays = got.filter((d) => !postSet.has(d) && !ambiguous.has(d));
        assert.deepEqual(strays, [], `${what}: nothing from the lost log`);
      }

      // Every node noticed, and said so once.
      await until(
        () => nodes.every((node) => /log reset/.test(node.output())),
        'every node to report the reset',
        30_000,
      );
      for (const [i, node] of nodes.entries()) {
        const reports = node.output().match(/broker: log reset/g)?.length ?? 0;
        assert.equal(
          reports,
          1,
          `node ${i} reported the reset ${reports} times:\n${node.output().slice(-3000)}`,
        );
      }

      // Live subscribers of every node: the same events after the reset, each once, in order.
      for (const [i, stream] of live.entries()) {
        assert.equal(stream.ended, false, `subscriber ${i} stayed connected`);
        // What the lost log held and this node had not fed yet is gone: the stream is told.
        const gaps = stream.events
          .filter((e) => e.type === 'herald.gap')
          .map((e) => JSON.parse(e.data).reason);
        assert.deepEqual(gaps, ['reset'], `subscriber ${i} is told of the reset once`);
        assert.deepEqual(afterReset(stream), order, `subscriber ${i} (node ${Math.floor(i / 2)})`);
        const got = stream.data.map((e) => e.data);
        assert.equal(new Set(got).size, got.length, `subscriber ${i}: nothing twice`);
      }

      const perNode = nodes.map((_, n) => live[n * 2]?.data.length ?? 0);
      const beforeSet = new Set(before);
      const lostPerNode = nodes.map(
        (_, n) => before.length - (live[n * 2]?.data.filter((e) => beforeSet.has(e.data)).length ?? 0),
      );
      const liveGaps = live.map((s) => s.events.filter((e) => e.type === 'herald.gap').length);
      const rate = Math.round(before.length / ((killStarted - (batches[0]?.startedAt ?? 0)) / 1000));
      const total = accepted(0).length;
      console.log(
        `${name} reset: accepted ${total} (${rate}/s before the kill; ${before.length} before it, ` +
          `${ambiguous.size} in flight at it, ${post.length} after); delivered per node ${perNode.join('/')} ` +
          `(accepted before the kill and never delivered ${lostPerNode.join('/')}) ` +
          `(after the reset ${nodes.map((_, n) => afterReset(live[n * 2] as SseStream).length).join('/')} of ${post.length}); ` +
          `gaps: resumes ${[during, resumed]
            .map((s) =>
              s.events
                .filter((e) => e.type === 'herald.gap')
                .map((e) => JSON.parse(e.data).reason)
                .join(','),
            )
            .join(' / ')}, ` +
          `live ${liveGaps.join('/')}`,
      );
    });
  });
}
