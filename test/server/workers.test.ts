import assert from 'node:assert/strict';
import { request } from 'node:http';
import { type AddressInfo, createServer } from 'node:net';
import { availableParallelism } from 'node:os';
import { after, describe, test } from 'node:test';
import { resolveConfig } from '../../src/server/config.ts';
import { REDIS_URL } from '../helpers/backends.ts';
import { type HubProcess, spawnHub } from '../helpers/nodes.ts';
import { deletePrefix } from '../helpers/redis-server.ts';
import { ResumingClient } from '../helpers/resuming-client.ts';
import { sleep } from '../helpers/server.ts';
import { openStream, type SseStream } from '../helpers/sse-client.ts';

/** One request on a connection of its own, so the kernel may hand it to any worker. */
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

interface WorkerView {
  readonly pid: number;
  readonly connections: number;
}

/** Asks /v1/stats on fresh connections until every worker has answered: what each one holds. */
async function workers(hub: HubProcess, count: number): Promise<Map<number, WorkerView>> {
  const seen = new Map<number, WorkerView>();
  for (let i = 0; i < 400 && seen.size < count; i++) {
    const { json } = await fresh(`${hub.url}/v1/stats`);
    const worker = json.worker as { pid: number; of: number };
    assert.equal(worker.of, count);
    seen.set(worker.pid, {
      pid: worker.pid,
      connections: (json.connections as { total: number }).total,
    });
  }
  assert.equal(seen.size, count, `${count} workers answered /v1/stats`);
  return seen;
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

async function until(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

const datas = (stream: SseStream | ResumingClient) => stream.data.map((event) => event.data);

/** Publishes `count` events to `topic` in batches, each on a fresh connection (any worker). */
async function publishAll(hub: HubProcess, topic: string, prefix: string, count: number): Promise<string[]> {
  const sent: string[] = [];
  for (let i = 0; i < count; i += 10) {
    const batch = Array.from({ length: Math.min(10, count - i) }, (_, j) => ({
      topic,
      data: `${prefix}-${i + j}`,
    }));
    const { status } = await fresh(`${hub.url}/v1/publish`, 'POST', batch);
    assert.equal(status, 202);
    sent.push(...batch.map((event) => event.data));
  }
  return sent;
}

/** What every configuration must do: one log, whichever worker a client or a publisher lands on. */
async function oneHub(hub: HubProcess): Promise<void> {
  const streams = await Promise.all(
    Array.from({ length: 40 }, () =>
      openStream(`${hub.url}/v1/events?topic=${encodeURIComponent('jobs/{id}')}`),
    ),
  );
  await Promise.all(streams.map((s) => s.until((x) => x.events.length >= 1)));
  const held = await workers(hub, 2);
  const counts = [...held.values()].map((w) => w.connections);
  assert.equal(
    counts.reduce((a, b) => a + b, 0),
    40,
    `every stream is on a worker (${counts})`,
  );
  assert.ok(
    counts.every((n) => n > 0),
    `both workers serve streams (${counts})`,
  );

  const sent = await publishAll(hub, 'jobs/1', 'e', 200);
  await Promise.all(streams.map((s) => s.untilData(200, 20_000)));
  await sleep(200);
  for (const stream of streams) assert.deepEqual(datas(stream), sent, 'every event once, in log order');
  const ids = streams[0]?.data.map((e) => e.id) ?? [];

  // Resuming lands on any worker and gets exactly what was missed, then live events.
  const resumed = await Promise.all(
    Array.from({ length: 10 }, () =>
      openStream(`${hub.url}/v1/events?topic=jobs/1`, { lastEventId: ids[149] }),
    ),
  );
  const more = await publishAll(hub, 'jobs/1', 'f', 20);
  await Promise.all(resumed.map((s) => s.untilData(70, 10_000)));
  await sleep(200);
  for (const stream of resumed) {
    assert.deepEqual(datas(stream), [...sent.slice(150), ...more]);
    assert.equal(stream.events.filter((e) => e.type === 'herald.gap').length, 0, 'no gap');
  }
  for (const stream of [...streams, ...resumed]) stream.close();
}

describe('herald serve --workers 2 on the memory broker', () => {
  let hub: HubProcess;
  after(() => hub?.kill());

  test('starts two workers on one port and says so once', async () => {
    hub = await spawnHub(['--workers', '2']);
    assert.match(hub.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(hub.output().match(/listening on/g)?.length, 1);
    assert.match(hub.output(), /broker: memory.*workers: 2/);
    const ready = await fresh(`${hub.url}/readyz`);
    assert.deepEqual(ready, { status: 200, json: { status: 'ok', broker: 'memory' } });
  });

  test('one log: every stream on either worker gets every event once, in order, and resumes on any', async () => {
    await oneHub(hub);
  });

  test('a killed worker is restarted, and its clients resume without loss or repetition', async () => {
    const before = await workers(hub, 2);
    const clients = Array.from({ length: 20 }, () => new ResumingClient(() => [hub.url], 'topic=ticks'));
    // Stopped whatever happens: a client left running would keep the test process alive.
    after(() => Promise.all(clients.map((c) => c.stop())));
    await sleep(500);
    const accepted: string[] = [];
    let publishing = true;
    // Each event has its own id: a publish whose answer died with a worker is sent again, and
    // a 409 then says the first attempt was in fact accepted.
    const publisher = (async () => {
      for (let i = 0; publishing && i < 2_000; i++) {
        const event = { topic: 'ticks', id: `tick-${i}`, data: `tick-${i}` };
        for (;;) {
          const status = await fresh(`${hub.url}/v1/publish`, 'POST', event).then(
            (r) => r.status,
            () => 0,
          );
          if (status === 202 || status === 409) break;
          await sleep(20);
        }
        accepted.push(event.data);
        await sleep(5);
      }
    })();
    await sleep(700);
    const [victim] = [...before.keys()];
    process.kill(victim as number, 'SIGKILL');
    await until(
      () => /worker \d \(pid \d+\) exited \(SIGKILL\); restarting/.test(hub.output()),
      'the restart',
    );
    await until(
      () =>
        workers(hub, 2).then(
          (now) => !now.has(victim as number),
          () => false,
        ),
      'a new worker in place of the killed one',
    );
    await sleep(700);
    publishing = false;
    await publisher;
    await until(
      () => clients.every((c) => c.data.length >= accepted.length),
      `all ${accepted.length} events`,
    );
    await sleep(200);
    for (const client of clients) assert.deepEqual(datas(client), accepted);
    const moved = clients.filter((c) => c.reconnects > 0).length;
    assert.ok(moved > 0, 'some clients were on the killed worker and reconnected');
    assert.ok(accepted.length >= 50, `${accepted.length} events published across the kill`);
    await Promise.all(clients.map((c) => c.stop()));
  });

  test('SIGTERM to the primary ends every stream with a retry hint and stops every worker', async () => {
    const pids = [...(await workers(hub, 2)).keys()];
    const stream = await openStream(`${hub.url}/v1/events?topic=x`);
    await stream.until((s) => s.events.length >= 1);
    assert.equal(await hub.stop(), 0);
    await stream.untilEnded();
    assert.equal(stream.raw.match(/^retry: \d+$/gm)?.length, 2, 'a retry hint at the start and at the end');
    await until(() => pids.every((pid) => !alive(pid)), 'every worker gone', 5_000);
  });
});

test('workers whose primary was killed close their streams and exit', async () => {
  const hub = await spawnHub(['--workers', '2']);
  const pids = [...(await workers(hub, 2)).keys()];
  const stream = await openStream(`${hub.url}/v1/events?topic=x`);
  await stream.until((s) => s.events.length >= 1);
  await hub.kill();
  await stream.untilEnded();
  await until(() => pids.every((pid) => !alive(pid)), 'every worker gone', 8_000);
});

describe('herald serve --workers 2 on Redis', () => {
  const stream = `test_workers_${process.pid}_${Date.now()}`;
  let hub: HubProcess | undefined;
  after(async () => {
    await hub?.kill();
    await deletePrefix(REDIS_URL, stream);
  });

  test('each worker is a node on the broker: one log, replay from any worker', async () => {
    hub = await spawnHub(['--workers', '2', '--broker', REDIS_URL, '--stream', stream]);
    assert.match(hub.output(), /broker: redis.*workers: 2/);
    await oneHub(hub);
  });
});

describe('workers that cannot start', () => {
  test('the primary exits non-zero with the reason', async () => {
    await assert.rejects(
      spawnHub(['--workers', '2', '--host', '0.0.0.0']),
      /workers could not start: refusing to listen on 0\.0\.0\.0/,
    );
  });

  test('a port another program holds is refused, not silently shared', async () => {
    const holder = createServer();
    await new Promise<void>((resolve) =>
      holder.listen({ host: '127.0.0.1', port: 0, reusePort: true }, resolve),
    );
    const { port } = holder.address() as AddressInfo;
    try {
      await assert.rejects(
        spawnHub(['--workers', '2', '--port', String(port)]),
        new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port}: .*EADDRINUSE.*--port`, 's'),
      );
    } finally {
      holder.close();
    }
  });

  test('auto is one worker per CPU', () => {
    assert.equal(resolveConfig({ workers: 'auto' }, {}).workers, availableParallelism());
    assert.equal(resolveConfig({}, { HERALD_WORKERS: '3' }).workers, 3);
    assert.equal(resolveConfig({}, {}).workers, 1);
  });

  test('--workers takes a number or auto', async () => {
    await assert.rejects(
      spawnHub(['--workers', 'many']),
      /--workers \(HERALD_WORKERS\): "many" is not a number/,
    );
  });
});
