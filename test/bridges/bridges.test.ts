import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createServer, Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { createClient, type RedisClientType } from 'redis';
import { MemoryBroker } from '../../src/backends/memory/broker.ts';
import {
  type BridgeError,
  type BridgeOptions,
  type Bridges,
  specHash,
  startBridges,
} from '../../src/bridges/index.ts';
import { parseBridgeSpec } from '../../src/bridges/spec.ts';
import { HeraldError } from '../../src/core/errors.ts';
import type { EventDraft, HeraldEvent } from '../../src/core/event.ts';
import { createHerald, type Herald } from '../../src/herald.ts';
import { startHub } from '../helpers/server.ts';

/*
 * Bridges against the real servers of this machine (.ci/run starts them): Redis 7 on 6379 and
 * nats-server on 4222. Unreachable servers fail the suite with the reason; nothing is skipped.
 */

const REDIS_URL = 'redis://127.0.0.1:6379';
const NATS_URL = 'nats://127.0.0.1:4222';

/** A memory log that also lets a test find its head, and can play a broker that is down. */
class TestLog extends MemoryBroker {
  private head: HeraldEvent | undefined;
  /** Appends to refuse with 503, as a broker that lost its backend does. */
  failures = 0;

  override async append(drafts: readonly EventDraft[]): Promise<HeraldEvent[]> {
    if (this.failures > 0) {
      this.failures--;
      throw new HeraldError(503, 'broker-unavailable', 'the log is unreachable (simulated)');
    }
    const events = await super.append(drafts);
    this.head = events.at(-1) ?? this.head;
    return events;
  }

  /** Every event in the log, oldest first. */
  async events(): Promise<HeraldEvent[]> {
    return this.head === undefined ? [] : this.read(null, this.head.pos, 10_000);
  }
}

interface Setup {
  readonly herald: Herald;
  readonly log: TestLog;
  readonly errors: BridgeError[];
  start(specs: string[], options?: BridgeOptions): Promise<Bridges>;
}

const cleanups: (() => Promise<unknown> | unknown)[] = [];

function setup(): Setup {
  const log = new TestLog();
  const herald = createHerald({ broker: log });
  const errors: BridgeError[] = [];
  cleanups.push(() => herald.close());
  return {
    herald,
    log,
    errors,
    async start(specs, options = {}) {
      const bridges = await startBridges(herald, specs, {
        redisUrl: REDIS_URL,
        natsUrl: NATS_URL,
        onError: (error) => errors.push(error),
        ...options,
      });
      cleanups.unshift(() => bridges.close());
      return bridges;
    },
  };
}

async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 5_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
}

/** The log once it holds `count` events, checked again a little later to catch any extra. */
async function settledLog(log: TestLog, count: number, timeoutMs = 5_000): Promise<HeraldEvent[]> {
  await waitFor(
    `${count} events in the log`,
    async () => ((await log.events()).length >= count ? true : undefined),
    timeoutMs,
  );
  await sleep(300);
  return log.events();
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
}

/** nats-server on `port`, resolved once it accepts connections (bounded). */
async function startNatsServer(port: number): Promise<ChildProcess> {
  const child = spawn('nats-server', ['-a', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' });
  const failed = new Promise<never>((_, reject) => {
    child.once('error', (error) => reject(new Error(`cannot start nats-server: ${error.message}`)));
  });
  const listening = waitFor(
    `nats-server to listen on ${port}`,
    () =>
      new Promise<true | undefined>((resolve) => {
        const socket = new Socket();
        socket.once('connect', () => {
          socket.destroy();
          resolve(true);
        });
        socket.once('error', () => resolve(undefined));
        socket.connect(port, '127.0.0.1');
      }),
  );
  await Promise.race([listening, failed]);
  return child;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const unique = () => randomUUID().slice(0, 8);

let redis: RedisClientType;
let nats: NatsConnection;

before(async () => {
  redis = createClient({
    url: REDIS_URL,
    socket: { connectTimeout: 2_000, reconnectStrategy: false },
  }) as RedisClientType;
  redis.on('error', () => {});
  try {
    await redis.connect();
  } catch (error) {
    throw new Error(
      `Redis is not reachable at ${REDIS_URL} (${(error as Error).message}); the bridge tests need it: run .ci/run or start redis-server`,
    );
  }
  try {
    nats = await connect({ servers: NATS_URL, timeout: 2_000, reconnect: false });
  } catch (error) {
    throw new Error(
      `NATS is not reachable at ${NATS_URL} (${(error as Error).message}); the bridge tests need it: run .ci/run or start nats-server`,
    );
  }
});

after(async () => {
  for (const cleanup of cleanups) await cleanup();
  await redis?.close();
  await nats?.close();
});

describe('Redis bridge', () => {
  it('turns a PUBLISH on a matching channel into an event with the mapped topic, tenant, type and data', async () => {
    const { log, errors, start } = setup();
    const prefix = `merchant-${unique()}`;
    const bridges = await start([
      `redis:${prefix}:*:progress -> merchants/{1}/progress tenant=merchantId type=type`,
    ]);
    const body = {
      type: 'progress',
      merchantId: 'm-42',
      poId: 'po-1',
      progress: 50,
      message: 'Test message',
    };

    assert.equal(await redis.publish(`${prefix}:m-42:progress`, JSON.stringify(body)), 1, 'one subscriber');
    assert.equal(
      await redis.publish(`${prefix}:m-42:stage`, JSON.stringify(body)),
      0,
      'other channels are not bridged',
    );

    const [event, ...rest] = await settledLog(log, 1);
    assert.deepEqual(rest, []);
    assert.deepEqual(event?.topics, ['merchants/m-42/progress']);
    assert.equal(event?.tenant, 'm-42');
    assert.equal(event?.type, 'progress');
    assert.deepEqual(JSON.parse(event?.data ?? ''), body);
    assert.deepEqual(errors, []);
    assert.deepEqual(
      { ...bridges.stats(), bridges: undefined },
      { received: 1, published: 1, rejected: 0, bridges: undefined },
    );
    assert.equal(bridges.stats().bridges[0]?.leader, true);
  });

  it('rejects and reports malformed messages, and the next good one still arrives', async () => {
    const { log, errors, start } = setup();
    const prefix = `merchant-${unique()}`;
    const bridges = await start([
      `redis:${prefix}:*:progress -> merchants/{1}/progress tenant=merchantId type=type`,
    ]);
    const channel = `${prefix}:m-1:progress`;

    await redis.publish(channel, 'this is not JSON');
    await redis.publish(channel, JSON.stringify({ type: 'progress' }));
    await redis.publish(channel, JSON.stringify({ type: 'herald.gap', merchantId: 'm-1' }));
    await redis.publish(channel, JSON.stringify({ type: 'progress', merchantId: 'm-1', progress: 100 }));

    const events = await settledLog(log, 1);
    assert.equal(events.length, 1);
    assert.deepEqual(JSON.parse(events[0]?.data ?? ''), {
      type: 'progress',
      merchantId: 'm-1',
      progress: 100,
    });
    const { received, published, rejected } = bridges.stats();
    assert.deepEqual({ received, published, rejected }, { received: 4, published: 1, rejected: 3 });

    assert.equal(errors.length, 3);
    for (const error of errors) {
      assert.equal(error.source, `redis:${prefix}:*:progress`);
      assert.equal(error.channel, channel);
    }
    assert.match(errors[0]?.reason ?? '', /not JSON/);
    assert.match(errors[1]?.reason ?? '', /no field "merchantId"/);
    assert.match(errors[2]?.reason ?? '', /Herald refused the event \(400\).*herald\./);
    assert.match(
      errors[2]?.message ?? '',
      new RegExp(`^bridge redis:${prefix}:\\*:progress \\(message on "${channel}"\\)`),
    );
  });

  it('delivers a bridged message to a live SSE stream', async () => {
    const hub = await startHub();
    cleanups.push(() => hub.close());
    const channel = `alerts-${unique()}`;
    const bridges = await startBridges(hub.herald, [`redis:${channel} -> alerts type='alert'`], {
      redisUrl: REDIS_URL,
    });
    cleanups.unshift(() => bridges.close());
    const stream = await hub.subscribe('topic=alerts');
    await redis.publish(channel, JSON.stringify({ level: 'high' }));
    await stream.until((s) => s.events.some((e) => e.type === 'alert'), 5_000, 'the bridged event');
    const event = stream.events.find((e) => e.type === 'alert');
    assert.equal(event?.data, '{"level":"high"}');
  });

  it('with two runners on one channel, publishes each message once: only the lease holder publishes', async () => {
    const { log, start } = setup();
    const channel = `dedup-${unique()}`;
    const spec = `redis:${channel}:* -> dedup/{1}`;
    const fast = { leaseMs: 1_000, renewEveryMs: 200 };
    const a = await start([spec], { nodeId: 'node-a', ...fast });
    const b = await start([spec], { nodeId: 'node-b', ...fast });
    const leader = a.stats().bridges[0]?.leader ? a : b;
    const standby = leader === a ? b : a;
    assert.equal(leader.stats().bridges[0]?.leader, true);
    assert.equal(standby.stats().bridges[0]?.leader, false);

    for (let i = 0; i < 20; i++) {
      assert.equal(await redis.publish(`${channel}:${i}`, String(i)), 2, 'both runners are subscribed');
    }
    const events = await settledLog(log, 20);
    assert.deepEqual(
      events.map((event) => event.topics[0]),
      Array.from({ length: 20 }, (_, i) => `dedup/${i}`),
      'each message once, in order',
    );
    assert.equal(leader.stats().received, 20);
    assert.equal(standby.stats().received, 0);
    assert.equal(standby.stats().bridges[0]?.standby, 20);

    // The holder leaves: it releases the lease and the other takes over at its next attempt.
    await leader.close();
    await waitFor(
      'the standby runner to take the lease',
      () => (standby.stats().bridges[0]?.leader ? true : undefined),
      3_000,
    );
    for (let i = 20; i < 25; i++) await redis.publish(`${channel}:${i}`, String(i));
    const later = await settledLog(log, 25);
    assert.equal(later.length, 25);
    assert.deepEqual(
      later.slice(20).map((event) => event.data),
      ['20', '21', '22', '23', '24'],
    );
  });

  it('takes over a lease that another node stopped renewing once it lapses, not before', async () => {
    const { log, start } = setup();
    const channel = `lapse-${unique()}`;
    const spec = `redis:${channel}`;
    const key = `herald:bridge:${specHash(parseBridgeSpec(spec))}`;
    // A node that took the lease and then died: nobody renews it.
    assert.equal(
      await redis.set(key, 'crashed-node', { condition: 'NX', expiration: { type: 'PX', value: 1_500 } }),
      'OK',
    );
    cleanups.push(() => redis.del(key));

    const bridges = await start([spec], { leaseMs: 1_000, renewEveryMs: 200 });
    assert.equal(bridges.stats().bridges[0]?.leader, false);
    await redis.publish(channel, 'while the dead node holds the lease');
    await sleep(200);
    assert.deepEqual(await log.events(), [], 'a standby runner publishes nothing');
    assert.equal(bridges.stats().bridges[0]?.standby, 1);

    await waitFor(
      'the lease to lapse and be taken',
      () => (bridges.stats().bridges[0]?.leader ? true : undefined),
      3_000,
    );
    assert.match((await redis.get(key)) ?? '', /-/, 'the key names the new holder');
    await redis.publish(channel, 'after the takeover');
    const events = await settledLog(log, 1);
    assert.deepEqual(
      events.map((event) => event.data),
      ['after the takeover'],
    );
  });

  it('reconnects and resubscribes after its connection to Redis is killed', async () => {
    const { log, errors, start } = setup();
    const channel = `reconnect-${unique()}`;
    const nodeId = `reconnect-${unique()}`;
    const bridges = await start([`redis:${channel}`], { nodeId, leaseMs: 1_000, renewEveryMs: 200 });

    const clients = (await redis.sendCommand(['CLIENT', 'LIST'])) as string;
    const line = clients
      .split('\n')
      .find((entry) => entry.includes(`name=herald-bridge:${nodeId}:subscriber`));
    const id = /\bid=(\d+)/.exec(line ?? '')?.[1];
    assert.ok(id, 'the bridge subscriber is in CLIENT LIST');
    await redis.sendCommand(['CLIENT', 'KILL', 'ID', id]);

    await waitFor('the connection loss to be reported', () => (errors.length > 0 ? true : undefined));
    assert.match(errors[0]?.reason ?? '', /subscriber connection to redis:\/\/127\.0\.0\.1:6379 lost/);
    // Each probe is published only while the runner leads; one that finds no subscriber is lost.
    await waitFor('the bridge to be subscribed and leading again', async () =>
      bridges.stats().bridges[0]?.leader && (await redis.publish(channel, 'probe')) > 0 ? true : undefined,
    );
    const events = await waitFor('a message after the reconnection', async () => {
      const all = await log.events();
      return all.length > 0 ? all : undefined;
    });
    assert.deepEqual(new Set(events.map((event) => event.data)), new Set(['probe']));
  });

  it('fails to start, saying why, when Redis cannot be reached', async () => {
    const herald = createHerald();
    cleanups.push(() => herald.close());
    const started = Date.now();
    await assert.rejects(
      startBridges(herald, ['redis:x:*'], { redisUrl: 'redis://:secret@127.0.0.1:1', connectTimeoutMs: 500 }),
      (error: Error) => {
        assert.match(error.message, /^Redis bridges: cannot use Redis at redis:\/\/:\*\*\*@127\.0\.0\.1:1/);
        assert.doesNotMatch(error.message, /secret/);
        return true;
      },
    );
    assert.ok(Date.now() - started < 3_000, 'within about connectTimeoutMs');
  });
});

describe('NATS bridge', () => {
  it('turns nc.publish on a matching subject into an event with the mapped topic, tenant, type and data', async () => {
    const { log, errors, start } = setup();
    const root = `t${unique()}`;
    const bridges = await start([
      `nats:${root}.metrics.* -> companies/{companyId}/metrics/{1} tenant=companyId type='metric_updated'`,
      `nats:${root}.journey.> -> companies/{companyId}/journey/{1} tenant=companyId type=kind id=eventId`,
    ]);
    const metric = { companyId: 'acme', metricName: 'integration_score', value: 0.85 };
    const journey = {
      companyId: 'acme',
      kind: 'journey_flag_updated',
      eventId: `e-${root}`,
      flag: 'struggling',
    };
    nats.publish(`${root}.metrics.calculated`, JSON.stringify(metric));
    nats.publish(`${root}.journey.flag.updated`, JSON.stringify(journey));
    await nats.flush();

    const events = await settledLog(log, 2);
    assert.equal(events.length, 2);
    const byTopic = new Map(events.map((event) => [event.topics[0], event]));
    const m = byTopic.get('companies/acme/metrics/calculated');
    assert.equal(m?.tenant, 'acme');
    assert.equal(m?.type, 'metric_updated');
    assert.deepEqual(JSON.parse(m?.data ?? ''), metric);
    const j = byTopic.get('companies/acme/journey/flag.updated');
    assert.equal(j?.tenant, 'acme');
    assert.equal(j?.type, 'journey_flag_updated');
    assert.equal(j?.id, `e-${root}`, 'the id from the message');
    assert.deepEqual(errors, []);
    assert.equal(bridges.stats().published, 2);
  });

  it('rejects and reports malformed messages, and the next good one still arrives', async () => {
    const { log, errors, start } = setup();
    const root = `t${unique()}`;
    const bridges = await start([
      `nats:${root}.metrics.* -> companies/{companyId}/metrics/{1} tenant=companyId`,
    ]);
    nats.publish(`${root}.metrics.a`, '{broken');
    nats.publish(`${root}.metrics.b`, JSON.stringify({ companyId: { nested: true } }));
    nats.publish(`${root}.metrics.c`, JSON.stringify({ companyId: 'x/../y' }));
    nats.publish(`${root}.metrics.d`, JSON.stringify({ companyId: 'acme', value: 1 }));
    await nats.flush();

    const events = await settledLog(log, 1);
    assert.deepEqual(
      events.map((event) => event.topics[0]),
      ['companies/acme/metrics/d'],
    );
    const { received, published, rejected } = bridges.stats();
    assert.deepEqual({ received, published, rejected }, { received: 4, published: 1, rejected: 3 });
    assert.deepEqual(
      errors.map((error) => [error.source, error.channel]),
      ['a', 'b', 'c'].map((last) => [`nats:${root}.metrics.*`, `${root}.metrics.${last}`]),
    );
    assert.match(errors[0]?.reason ?? '', /not JSON/);
    assert.match(errors[1]?.reason ?? '', /field "companyId" is an object/);
    assert.match(errors[2]?.reason ?? '', /may not contain "\/"/);
  });

  it('with two runners on one subject, publishes each message once (queue group)', async () => {
    const { log, start } = setup();
    const root = `t${unique()}`;
    const spec = `nats:${root}.orders.* -> orders/{1}`;
    const a = await start([spec], { nodeId: 'node-a' });
    const b = await start([spec], { nodeId: 'node-b' });
    for (let i = 0; i < 40; i++) nats.publish(`${root}.orders.${i}`, String(i));
    await nats.flush();

    const events = await settledLog(log, 40);
    assert.equal(events.length, 40);
    assert.deepEqual(
      events.map((event) => Number(event.data)).sort((x, y) => x - y),
      Array.from({ length: 40 }, (_, i) => i),
      'each message exactly once',
    );
    assert.equal(a.stats().received + b.stats().received, 40, 'the server gave each message to one runner');
  });

  it('holds messages while Herald answers 503 and publishes them once it accepts again', async () => {
    const { log, errors, start } = setup();
    const root = `t${unique()}`;
    const bridges = await start([`nats:${root}.x`]);
    log.failures = 3;
    nats.publish(`${root}.x`, 'one');
    nats.publish(`${root}.x`, 'two');
    await nats.flush();
    const events = await settledLog(log, 2);
    assert.deepEqual(
      events.map((event) => event.data),
      ['one', 'two'],
      'once each, in order',
    );
    assert.equal(errors.length, 1, 'the outage is reported once');
    assert.match(errors[0]?.reason ?? '', /Herald is unavailable/);
    const { received, published, rejected } = bridges.stats();
    assert.deepEqual({ received, published, rejected }, { received: 2, published: 2, rejected: 0 });
  });

  it('on close, counts and reports once what Herald has not accepted yet', async () => {
    const { log, errors, start } = setup();
    const root = `t${unique()}`;
    const bridges = await start([`nats:${root}.x`]);
    log.failures = Number.MAX_SAFE_INTEGER;
    for (const body of ['a', 'b', 'c']) nats.publish(`${root}.x`, body);
    await nats.flush();
    await waitFor('3 messages waiting', () => (bridges.stats().bridges[0]?.pending === 3 ? true : undefined));
    await bridges.close();
    const { received, published, rejected } = bridges.stats();
    assert.deepEqual({ received, published, rejected }, { received: 3, published: 0, rejected: 3 });
    assert.equal(errors.length, 2);
    assert.match(
      errors[0]?.reason ?? '',
      /^Herald is unavailable \(the log is unreachable \(simulated\)\); \d message\(s\) wait and are retried$/,
    );
    assert.equal(errors[1]?.reason, 'closed with 3 message(s) Herald had not accepted yet');
  });

  it('reconnects and resubscribes after the NATS server restarts', async () => {
    // A private nats-server, so that restarting it disturbs nobody else.
    const port = await freePort();
    let server = await startNatsServer(port);
    cleanups.push(() => server.kill());
    const url = `nats://127.0.0.1:${port}`;
    const { log, errors, start } = setup();
    const bridges = await start(['nats:restart.> -> restart/{1}'], { natsUrl: url });
    const publisher = await connect({ servers: url, reconnectTimeWait: 100, maxReconnectAttempts: -1 });
    cleanups.push(() => publisher.close());

    publisher.publish('restart.before', 'before');
    await publisher.flush();
    await settledLog(log, 1);

    server.kill();
    await waitFor('the disconnection to be reported', () => (errors.length > 0 ? true : undefined));
    assert.match(errors[0]?.message ?? '', /^bridge nats: connection to .* lost; reconnecting$/);
    server = await startNatsServer(port);

    let probes = 0;
    const events = await waitFor(
      'a message after the restart',
      async () => {
        const all = await log.events();
        if (all.length > 1) return all;
        if (publisher.isClosed()) return undefined;
        publisher.publish('restart.after', `probe ${probes++}`);
        return undefined;
      },
      10_000,
    );
    assert.equal(events[0]?.data, 'before');
    assert.match(events[1]?.data ?? '', /^probe \d+$/);
    assert.deepEqual(events[1]?.topics, ['restart/after']);
    assert.equal(bridges.stats().bridges[0]?.connected, true);
  });

  it('fails to start, saying why, when NATS cannot be reached', async () => {
    const herald = createHerald();
    cleanups.push(() => herald.close());
    await assert.rejects(
      startBridges(herald, ['nats:a.>'], { natsUrl: 'nats://127.0.0.1:1', connectTimeoutMs: 500 }),
      /^Error: NATS bridges: cannot reach NATS at nats:\/\/127\.0\.0\.1:1/,
    );
  });
});

describe('startBridges', () => {
  it('refuses an invalid spec, a spec given twice, and a source without its URL', async () => {
    const herald = createHerald();
    cleanups.push(() => herald.close());
    await assert.rejects(startBridges(herald, ['kafka:x']), /must start with "redis:" or "nats:"/);
    await assert.rejects(startBridges(herald, ['nats:a', 'nats:a ']), /bridge "nats:a" is given twice/);
    await assert.rejects(startBridges(herald, ['redis:a']), /needs a Redis URL/);
    await assert.rejects(startBridges(herald, ['nats:a']), /needs a NATS URL/);
    await assert.rejects(
      startBridges(herald, ['redis:a'], { redisUrl: REDIS_URL, leaseMs: 1_000, renewEveryMs: 800 }),
      /renewEveryMs \(800\) must be at most half of leaseMs/,
    );
  });

  it('does nothing, and closes, without specs', async () => {
    const herald = createHerald();
    cleanups.push(() => herald.close());
    const bridges = await startBridges(herald, []);
    assert.deepEqual(bridges.stats(), { received: 0, published: 0, rejected: 0, bridges: [] });
    await bridges.close();
  });
});
