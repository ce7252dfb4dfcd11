import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { request } from 'node:http';
import { after, describe, test } from 'node:test';
import { createClient } from 'redis';
import { type HubProcess, killAllHubs, spawnHub } from '../helpers/nodes.ts';
import { deletePrefix, REDIS_URL } from '../helpers/redis-server.ts';
import { openStream, type SseStream } from '../helpers/sse-client.ts';
import { closedPort } from './run-cli.ts';

/**
 * README, "All cores: --workers": the claims test/server/workers.test.ts leaves open. With
 * `--on-broker-down local` every worker rides out a broker outage on its own; bridges run in
 * every worker and still make one event per message; a dead worker is restarted after 100 ms,
 * doubling on repeated deaths; `kill -TERM <worker pid>` restarts one worker gracefully.
 */

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Every worker process seen, killed in `after` should its primary have left it behind. */
const seenWorkers = new Set<number>();

after(async () => {
  await killAllHubs();
  for (const pid of seenWorkers) if (alive(pid)) process.kill(pid, 'SIGKILL');
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** One request on a connection of its own, so the kernel may hand it to either worker. */
function fresh(
  url: string,
  method = 'GET',
  body?: unknown,
): Promise<{ status: number; json: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { method, agent: false, headers: { 'content-type': 'application/json' } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          text += chunk;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, json: text ? JSON.parse(text) : {} }));
      },
    );
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

interface WorkerStats {
  readonly worker: { index: number; of: number; pid: number };
  readonly connections: { total: number };
  readonly bridges?: { published: number; bridges: { leader: boolean; standby: number }[] };
}

/** /v1/stats of each worker (by pid), asked on fresh connections until `count` have answered. */
async function workerStats(hub: HubProcess, count: number): Promise<Map<number, WorkerStats>> {
  const seen = new Map<number, WorkerStats>();
  for (let i = 0; i < 400 && seen.size < count; i++) {
    const { json } = await fresh(`${hub.url}/v1/stats`);
    const stats = json as unknown as WorkerStats;
    seen.set(stats.worker.pid, stats);
    seenWorkers.add(stats.worker.pid);
  }
  assert.equal(seen.size, count, `${count} workers answered /v1/stats`);
  return seen;
}

/** The primary's child processes: its workers, as `ps` sees them. */
function childPids(primary: number): number[] {
  let out = '';
  try {
    out = execFileSync('ps', ['--ppid', String(primary), '-o', 'pid='], { encoding: 'utf8' });
  } catch {
    // ps exits 1 when there is none.
  }
  const pids = out
    .split('\n')
    .map((line) => Number(line.trim()))
    .filter((pid) => pid > 0);
  for (const pid of pids) seenWorkers.add(pid);
  return pids;
}

async function until<T>(
  condition: () => T | undefined | false | Promise<T | undefined | false>,
  what: string,
  timeoutMs = 60_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await condition();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    await sleep(20);
  }
}

/** `count` streams on `topic`, opened on connections of their own, each past `herald.connected`. */
async function streams(hub: HubProcess, topic: string, count: number): Promise<SseStream[]> {
  const opened = await Promise.all(
    Array.from({ length: count }, () =>
      openStream(`${hub.url}/v1/events?topic=${encodeURIComponent(topic)}`),
    ),
  );
  await Promise.all(opened.map((stream) => stream.untilConnected(30_000)));
  return opened;
}

/** Both workers hold some of the streams, so what follows crosses workers. */
async function spreadOverBoth(hub: HubProcess, total: number): Promise<void> {
  const counts = [...(await workerStats(hub, 2)).values()].map((w) => w.connections.total);
  assert.equal(
    counts.reduce((a, b) => a + b, 0),
    total,
    `every stream is on a worker (${counts})`,
  );
  assert.ok(
    counts.every((n) => n > 0),
    `both workers serve streams (${counts})`,
  );
}

describe('--workers 2 --on-broker-down local, with the broker down at start', () => {
  test('starts, says degraded, and every worker serves on its own until the broker is back', async () => {
    const port = await closedPort();
    const hub = await spawnHub([
      '--workers',
      '2',
      '--broker',
      `redis://127.0.0.1:${port}`,
      '--on-broker-down',
      'local',
    ]);
    assert.match(hub.output(), /unreachable at start.*serves on its own/s);
    assert.match(hub.output(), /listening on .*broker: redis.*workers: 2/);

    // Whichever worker answers, /readyz says it is degraded the same way.
    const readiness = new Set<string>();
    for (let i = 0; i < 20; i++) {
      const ready = await fresh(`${hub.url}/readyz`);
      readiness.add(JSON.stringify(ready));
    }
    assert.deepEqual(
      [...readiness].map((r) => JSON.parse(r)),
      [{ status: 200, json: { status: 'degraded', broker: 'redis', degraded: 'fallback-local' } }],
    );

    const topic = 'fallback/events';
    const subscribers = await streams(hub, topic, 16);
    await spreadOverBoth(hub, 16);
    // Each on a connection of its own: publishes land on both workers too, each held by the
    // worker that accepted it (a held id), and delivered to that worker's streams at once.
    const ids: string[] = [];
    for (let n = 0; n < 30; n++) {
      const { status, json } = await fresh(`${hub.url}/v1/publish`, 'POST', { topic, data: `e${n}` });
      assert.equal(status, 202);
      assert.match(json.id as string, /^~[\w-]+~\d+$/);
      ids.push(json.id as string);
    }
    await sleep(500);
    const received = new Set(subscribers.flatMap((stream) => stream.data.map((e) => e.id)));
    assert.deepEqual(
      [...received].sort(),
      [...ids].sort(),
      'every accepted event reached the streams of its worker',
    );
    for (const stream of subscribers) stream.close();
    await hub.stop();
  });
});

describe('--workers 2 with a Redis bridge', () => {
  const unique = randomUUID().slice(0, 8);
  const stream = `test_workers_bridge_${unique}`;
  const channel = `herald-test:${unique}:jobs`;
  const topic = `bridged/${unique}`;
  const redis = createClient({ url: REDIS_URL });
  after(async () => {
    if (redis.isOpen) await redis.close();
    await deletePrefix(REDIS_URL, stream);
  });

  test('"Bridges run in every worker; … each message still becomes one event"', async () => {
    const hub = await spawnHub([
      '--workers',
      '2',
      '--broker',
      REDIS_URL,
      '--stream',
      stream,
      '--bridge',
      `redis:${channel} -> ${topic}`,
    ]);
    await redis.connect();
    const subscribers = await streams(hub, topic, 12);
    await spreadOverBoth(hub, 12);

    const count = 25;
    for (let n = 0; n < count; n++) {
      const receivers = await redis.publish(channel, JSON.stringify({ n }));
      assert.equal(receivers, 2, 'both workers listen to the channel');
    }
    await Promise.all(subscribers.map((s) => s.untilData(count, 30_000)));
    // Time for a second copy of any message to arrive, were there one.
    await sleep(1_500);
    const first = subscribers[0]?.data.map((e) => e.id) ?? [];
    assert.equal(new Set(first).size, count, 'distinct ids');
    for (const subscriber of subscribers) {
      assert.deepEqual(
        subscriber.data.map((e) => JSON.parse(e.data)),
        Array.from({ length: count }, (_, n) => ({ n })),
        'each message once, in order, not once per worker',
      );
      assert.deepEqual(
        subscriber.data.map((e) => e.id),
        first,
      );
    }
    const figures = [...(await workerStats(hub, 2)).values()].map((w) => w.bridges);
    assert.equal(
      figures.reduce((sum, f) => sum + (f?.published ?? 0), 0),
      count,
      `published by the lease holder only (${JSON.stringify(figures)})`,
    );
    assert.equal(figures.filter((f) => f?.bridges[0]?.leader).length, 1, 'one worker holds the lease');
    for (const subscriber of subscribers) subscriber.close();
    // A graceful stop releases the lease.
    await hub.stop();
  });
});

describe('--workers 2: a worker that dies is restarted', () => {
  test('after 100 ms, then doubling when the same worker dies again soon', async () => {
    const hub = await spawnHub(['--workers', '2']);
    const primary = hub.child.pid as number;
    const before = await workerStats(hub, 2);
    assert.deepEqual(new Set(childPids(primary)), new Set(before.keys()), 'ps shows the two workers');

    // Worker index by pid, and every pid seen in this hub.
    const slots = new Map([...before].map(([pid, stats]) => [pid, stats.worker.index]));
    const restart = async (victim: number, delayMs: number): Promise<number> => {
      const index = slots.get(victim) as number;
      const killed = performance.now();
      process.kill(victim, 'SIGKILL');
      const logged = new RegExp(
        `worker ${index} \\(pid ${victim}\\) exited \\(SIGKILL\\); restarting it in ${delayMs} ms`,
      );
      await until(() => logged.test(hub.output()), `"${logged.source}" in the log`);
      const replacement = await until(
        () => childPids(primary).find((pid) => !slots.has(pid)),
        'a new worker process',
      );
      const waited = performance.now() - killed;
      assert.ok(
        waited >= delayMs,
        `the new worker came after ${Math.round(waited)} ms, not before ${delayMs}`,
      );
      slots.set(replacement, index);
      // Serving: it answers /v1/stats in its slot, beside the other worker.
      await until(
        () =>
          workerStats(hub, 2).then(
            (now) => now.get(replacement)?.worker.index === index && !now.has(victim) && now,
            () => false,
          ),
        'the new worker serving in the same slot',
      );
      return replacement;
    };
    const [victim] = [...before.keys()];
    const second = await restart(victim as number, 100);
    // Killed again within 30 s of its start: a repeated death, so the wait doubles.
    await restart(second, 200);

    assert.equal(childPids(primary).length, 2, 'the worker count is back to 2');
    const subscriber = (await streams(hub, 'after/restarts', 1))[0] as SseStream;
    const { status } = await fresh(`${hub.url}/v1/publish`, 'POST', { topic: 'after/restarts', data: 'ok' });
    assert.equal(status, 202);
    await subscriber.untilData(1, 30_000);
    subscriber.close();
    await hub.stop();
  });

  test('"kill -TERM <worker pid> restarts one worker gracefully": its streams get a retry hint, the hub keeps serving', async () => {
    const hub = await spawnHub(['--workers', '2']);
    const primary = hub.child.pid as number;
    const topic = 'graceful/restart';
    const subscribers = await streams(hub, topic, 16);
    await spreadOverBoth(hub, 16);
    const before = await workerStats(hub, 2);
    const [victim, survivor] = [...before.keys()] as [number, number];
    const index = before.get(victim)?.worker.index;

    process.kill(victim, 'SIGTERM');
    await until(
      () =>
        new RegExp(`worker ${index} \\(pid ${victim}\\) exited \\(code 0\\); restarting it`).test(
          hub.output(),
        ),
      'the graceful exit and restart in the log',
    );
    const onVictim = before.get(victim)?.connections.total ?? 0;
    await until(
      () => subscribers.filter((s) => s.ended).length === onVictim,
      `the ${onVictim} streams of the stopped worker to end`,
      30_000,
    );
    for (const stream of subscribers.filter((s) => s.ended)) {
      assert.deepEqual(stream.retries.length, 2, 'a retry hint at the start and another before the end');
    }

    // Meanwhile the other worker serves: its streams stay open and still get events.
    const open = subscribers.filter((s) => !s.ended);
    assert.equal(open.length, before.get(survivor)?.connections.total);
    const { status } = await fresh(`${hub.url}/v1/publish`, 'POST', { topic, data: 'during' });
    assert.equal(status, 202);
    await Promise.all(open.map((s) => s.untilData(1, 30_000)));

    const replacement = await until(
      () => childPids(primary).find((pid) => pid !== victim && pid !== survivor),
      'the replacement worker',
    );
    await until(
      () =>
        workerStats(hub, 2).then(
          (now) => now.has(replacement) && now.has(survivor) && now,
          () => false,
        ),
      'both workers serving again',
    );
    assert.equal(alive(victim), false, 'the stopped worker is gone');
    for (const stream of subscribers) stream.close();
    await hub.stop();
  });
});
