import assert from 'node:assert/strict';
import { describe, mock, test } from 'node:test';
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { MemoryBroker } from '../../src/backends/memory/broker.ts';
import { HeraldError } from '../../src/core/errors.ts';
import type { HeraldEvent } from '../../src/core/event.ts';
import { EventFilter } from '../../src/core/filters.ts';
import { Hub, type HubOptions } from '../../src/core/hub.ts';
import type { Broker } from '../../src/core/log.ts';
import { OPEN_PRINCIPAL, type Principal } from '../../src/core/principal.ts';
import type { Sink, Subscriber, Subscription } from '../../src/core/subscriber.ts';
import { parseSelector } from '../../src/core/topics.ts';

/** A sink that parses what it is given and can play a full socket. */
class RecordingSink implements Sink {
  readonly events: EventSourceMessage[] = [];
  writes = 0;
  full = false;
  ended = false;
  destroyed = false;
  private readonly parser = createParser({ onEvent: (event) => this.events.push(event) });
  private readonly decoder = new TextDecoder();

  write(chunks: readonly Uint8Array[]): boolean {
    this.writes++;
    for (const chunk of chunks) this.parser.feed(this.decoder.decode(chunk, { stream: true }));
    return !this.full;
  }
  end(): void {
    this.ended = true;
  }
  destroy(): void {
    this.destroyed = true;
  }
  get data(): string[] {
    return this.events.filter((e) => !e.event?.startsWith('herald.')).map((e) => e.data);
  }
  system(type: string): EventSourceMessage[] {
    return this.events.filter((e) => e.event === type);
  }
}

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));
async function settle(times = 3) {
  for (let i = 0; i < times; i++) await tick();
}

function hub(options: Partial<HubOptions> = {}) {
  return new Hub(new MemoryBroker(), options);
}

function subscription(topics: string[], extra: Partial<Subscription> = {}): Subscription {
  return { tenant: '', selectors: topics.map(parseSelector), grants: OPEN_PRINCIPAL.subscribe, ...extra };
}

async function open(h: Hub, topics: string[], extra: Partial<Subscription> = {}) {
  const sink = new RecordingSink();
  const subscriber = h.subscribe(subscription(topics, extra), sink);
  await settle();
  return { sink, subscriber };
}

const publish = (h: Hub, ...inputs: unknown[]) => h.publish(inputs, OPEN_PRINCIPAL);

describe('hub', () => {
  test('a stream starts with a retry hint and herald.connected carrying its resume point', async () => {
    const h = hub({ retryMs: 1234 });
    const { sink, subscriber } = await open(h, ['t']);
    const connected = sink.system('herald.connected')[0];
    assert.ok(connected);
    const body = JSON.parse(connected.data);
    assert.equal(body.connectionId, subscriber.id);
    assert.equal(connected.id, body.lastEventId);
    assert.equal(subscriber.state, 'live');
    await h.close();
  });

  test('each event reaches each matching subscriber once, even when several of its topics match', async () => {
    const h = hub();
    const both = await open(h, ['a', 'b', '*']);
    const onlyB = await open(h, ['b']);
    const none = await open(h, ['c']);
    await publish(h, { topic: ['a', 'b'], data: 'x' });
    await settle();
    assert.deepEqual(both.sink.data, ['x']);
    assert.deepEqual(onlyB.sink.data, ['x']);
    assert.deepEqual(none.sink.data, []);
    await h.close();
  });

  test('a burst published in one tick reaches a socket in one write, encoded once for all', async () => {
    const h = hub();
    const first = await open(h, ['t']);
    const second = await open(h, ['t']);
    const before = first.sink.writes;
    const events = await h.publish(
      Array.from({ length: 50 }, (_, i) => ({ topic: 't', data: i })),
      OPEN_PRINCIPAL,
    );
    await settle();
    assert.equal(first.sink.writes - before, 1);
    assert.equal(first.sink.data.length, 50);
    assert.equal(second.sink.data.length, 50);
    // The frame cached on the event is the one shared by every recipient.
    assert.ok(events.every((event) => event.frame instanceof Uint8Array));
    await h.close();
  });

  test('type and tag filters narrow what a subscriber gets', async () => {
    const h = hub();
    const { sink } = await open(h, ['*'], {
      filter: EventFilter.of(['ai-score'], new Map([['vin', ['1ABC']]])),
    });
    await publish(
      h,
      { topic: 't', type: 'ai-score', tags: { vin: '1ABC' }, data: 'yes' },
      { topic: 't', type: 'ai-score', tags: { vin: '2DEF' }, data: 'other vin' },
      { topic: 't', type: 'msrp', tags: { vin: '1ABC' }, data: 'other type' },
    );
    await settle();
    assert.deepEqual(sink.data, ['yes']);
    await h.close();
  });

  test('tenants are isolated', async () => {
    const h = hub();
    const t1 = await open(h, ['*'], { tenant: 't1' });
    const t2 = await open(h, ['*'], { tenant: 't2' });
    await publish(h, { topic: 'x', data: 'for t1', tenant: 't1' });
    await settle();
    assert.deepEqual(t1.sink.data, ['for t1']);
    assert.deepEqual(t2.sink.data, []);
    await h.close();
  });

  test('private events reach only subscribers granted one of their topics', async () => {
    const h = hub();
    const granted = await open(h, ['*'], { grants: [parseSelector('orders/{id}')] });
    const notGranted = await open(h, ['*'], { grants: [] });
    await publish(
      h,
      { topic: ['orders/1'], private: true, data: 'secret' },
      { topic: 'orders/1', data: 'public' },
    );
    await settle();
    assert.deepEqual(granted.sink.data, ['secret', 'public']);
    assert.deepEqual(notGranted.sink.data, ['public']);
    await h.close();
  });

  test('publishing checks tenant and publish grants', async () => {
    const h = hub();
    const publisher: Principal = {
      ...OPEN_PRINCIPAL,
      tenant: 't1',
      admin: false,
      publish: [parseSelector('a/{x}')],
    };
    await assert.rejects(
      h.publish([{ topic: 'b', data: 1 }], publisher),
      (e: unknown) => e instanceof HeraldError && e.status === 403 && /topic "b"/.test(e.detail),
    );
    await assert.rejects(
      h.publish([{ topic: 'a/1', data: 1, tenant: 't2' }], publisher),
      (e: unknown) => e instanceof HeraldError && e.status === 403 && e.code === 'tenant-forbidden',
    );
    const [event] = await h.publish([{ topic: 'a/1', data: 1 }], publisher);
    assert.equal(event?.tenant, 't1');
    await h.close();
  });

  test('a batch is all or nothing: one bad event rejects it with its position', async () => {
    const h = hub();
    const { sink } = await open(h, ['*']);
    await assert.rejects(h.publish([{ topic: 'a' }, { topic: '' }], OPEN_PRINCIPAL), /event 1: /);
    await settle();
    assert.deepEqual(sink.data, []);
    await assert.rejects(
      h.publish([], OPEN_PRINCIPAL),
      (e: unknown) => e instanceof HeraldError && e.status === 400,
    );
    await h.close();
  });

  test('replay hands off to live with no gap and no duplicate while events keep coming', async () => {
    const h = hub({ replayPageSize: 7 });
    const ids = (
      await h.publish(
        Array.from({ length: 30 }, (_, i) => ({ topic: 't', data: `old${i}` })),
        OPEN_PRINCIPAL,
      )
    ).map((e) => e.id);
    const sink = new RecordingSink();
    h.subscribe(subscription(['t'], { lastEventId: ids[9] }), sink);
    // Publish while the replay is in progress, from another task.
    const live = (async () => {
      for (let i = 0; i < 20; i++) {
        await publish(h, { topic: 't', data: `new${i}` });
        await tick();
      }
    })();
    await live;
    await settle();
    const expected = [
      ...Array.from({ length: 20 }, (_, i) => `old${i + 10}`),
      ...Array.from({ length: 20 }, (_, i) => `new${i}`),
    ];
    assert.deepEqual(sink.data, expected);
    await h.close();
  });

  test('a replay that outgrows the outbox reads the live events from the log instead', async () => {
    const h = hub({ replayPageSize: 5, outbox: { maxEvents: 3, maxBytes: 1 << 20, policy: 'disconnect' } });
    const [first] = await publish(h, { topic: 't', data: 'start' });
    const sink = new RecordingSink();
    sink.full = true; // the socket takes the first bytes, then is full: the replay must wait
    const subscriber = h.subscribe(subscription(['t'], { lastEventId: first?.id }), sink);
    await settle();
    for (let i = 0; i < 20; i++) await publish(h, { topic: 't', data: `e${i}` });
    assert.equal(subscriber.isClosed, false);
    assert.notEqual(subscriber.state, 'live');
    sink.full = false;
    for (let i = 0; i < 10 && subscriber.state !== 'live'; i++) {
      subscriber.drained();
      await settle();
    }
    await settle();
    assert.equal(subscriber.state, 'live');
    assert.deepEqual(
      sink.data,
      Array.from({ length: 20 }, (_, i) => `e${i}`),
    );
    await h.close();
  });

  test('a client that resumes ahead of this node feed gets nothing twice', async () => {
    // A node whose feed lags: events reach the log (another node served them) before this hub.
    const memory = new MemoryBroker();
    let held: HeraldEvent[] = [];
    let hubFeed: (events: readonly HeraldEvent[]) => void = () => {};
    const lagging: Broker = Object.assign(Object.create(memory) as Broker, {
      start: (feed: (events: readonly HeraldEvent[]) => void) =>
        memory
          .start((events) => {
            held.push(...events);
          })
          .then((head) => {
            hubFeed = feed;
            return head;
          }),
    });
    const h = new Hub(lagging);
    await h.whenReady();
    const events = await h.publish(
      ['1', '2', '3', '4'].map((data) => ({ topic: 't', data })),
      OPEN_PRINCIPAL,
    );
    const release = () => {
      const batch = held;
      held = [];
      hubFeed(batch);
    };
    hubFeed(held.splice(0, 1)); // this node has dispatched event 1 only
    const { sink } = await open(h, ['t'], { lastEventId: events[2]?.id });
    release();
    await publish(h, { topic: 't', data: '5' });
    release();
    await settle();
    assert.deepEqual(sink.data, ['4', '5']);
    await h.close();
  });

  test('an unknown Last-Event-ID gives herald.gap, then live events', async () => {
    const h = hub();
    await publish(h, { topic: 't', data: 'before' });
    const { sink } = await open(h, ['t'], { lastEventId: 'no-such-id' });
    await publish(h, { topic: 't', data: 'after' });
    await settle();
    assert.deepEqual(JSON.parse(sink.system('herald.gap')[0]?.data ?? '{}'), {
      lastEventId: 'no-such-id',
      reason: 'unknown',
    });
    assert.deepEqual(sink.data, ['after']);
    await h.close();
  });

  test('an expired Last-Event-ID gives herald.gap, then what history still holds, then live', async () => {
    const h = new Hub(new MemoryBroker({ maxEvents: 3 }));
    const events = await h.publish(
      ['1', '2', '3', '4', '5'].map((data) => ({ topic: 't', data })),
      OPEN_PRINCIPAL,
    );
    const { sink } = await open(h, ['t'], { lastEventId: events[0]?.id });
    await publish(h, { topic: 't', data: 'live' });
    await settle();
    assert.equal(JSON.parse(sink.system('herald.gap')[0]?.data ?? '{}').reason, 'expired');
    assert.deepEqual(sink.data, ['3', '4', '5', 'live']);
    await h.close();
  });

  test('slow consumer, disconnect policy: cut off, the others unaffected', async () => {
    const h = hub({ outbox: { maxEvents: 5, maxBytes: 1 << 20, policy: 'disconnect' } });
    const slow = await open(h, ['t']);
    const fast = await open(h, ['t']);
    slow.sink.full = true;
    await publish(h, { topic: 't', data: 'fills the socket' });
    await settle();
    for (let i = 0; i < 10; i++) await publish(h, { topic: 't', data: i });
    await settle();
    assert.equal(slow.sink.destroyed, true);
    assert.equal(slow.subscriber.state, 'closed');
    assert.equal(fast.sink.data.length, 11);
    assert.equal(h.counters.closed.overflow, 1);
    await h.close();
  });

  test('slow consumer, drop-oldest policy: herald.gap says how many were dropped, high priority kept', async () => {
    const h = hub({ outbox: { maxEvents: 3, maxBytes: 1 << 20, policy: 'drop-oldest' } });
    const slow = await open(h, ['t']);
    await publish(h, { topic: 't', data: 'sent' });
    await settle();
    slow.sink.full = true;
    await publish(h, { topic: 't', data: 'queued-but-socket-full' });
    await settle();
    await publish(
      h,
      { topic: 't', data: 'important', priority: 'high' },
      ...Array.from({ length: 5 }, (_, i) => ({ topic: 't', data: `n${i}` })),
    );
    await settle();
    slow.sink.full = false;
    slow.subscriber.drained();
    await settle();
    assert.deepEqual(slow.sink.data, ['sent', 'queued-but-socket-full', 'important', 'n3', 'n4']);
    const gap = JSON.parse(slow.sink.system('herald.gap')[0]?.data ?? '{}');
    assert.equal(gap.reason, 'overflow');
    assert.equal(gap.dropped, 3);
    assert.equal(gap.lastEventId, slow.sink.events.find((e) => e.data === 'queued-but-socket-full')?.id);
    await h.close();
  });

  test('the lifetime limit ends a stream after 90 to 100 % of it, never later', async () => {
    const h = hub({ maxLifetimeMs: 60_000 });
    const opened = Date.now();
    const deadlines: number[] = [];
    for (let i = 0; i < 200; i++) deadlines.push((await open(h, ['t'])).subscriber.deadline - opened);
    assert.ok(Math.max(...deadlines) <= 60_000 + (Date.now() - opened), `latest ${Math.max(...deadlines)}`);
    assert.ok(Math.min(...deadlines) >= 54_000, `earliest ${Math.min(...deadlines)}`);
    // Spread out, not all at the limit: 200 draws all in the top 1 % would be a broken jitter.
    assert.ok(Math.min(...deadlines) < 59_400, `earliest ${Math.min(...deadlines)}`);
    await h.close();
  });

  test('conflation: a slow tile gets the latest value per key, in log order', async () => {
    const h = hub();
    const tile = await open(h, ['scores']);
    tile.sink.full = true;
    await publish(h, { topic: 'scores', data: 'first' });
    await settle();
    for (let i = 0; i < 5; i++) {
      await publish(
        h,
        { topic: 'scores', key: 'S1', data: `S1=${i}` },
        { topic: 'scores', key: 'S2', data: `S2=${i}` },
      );
    }
    tile.sink.full = false;
    tile.subscriber.drained();
    await settle();
    assert.deepEqual(tile.sink.data, ['first', 'S1=4', 'S2=4']);
    await h.close();
  });

  // The hub's shared timer (setInterval) and its clock (Date.now) are faked in the tests of what
  // happens over time: `passes(ms)` is then exactly that much time, however busy the machine.
  async function passes(ms: number): Promise<void> {
    for (let step = 0; step < ms; step += 10) {
      mock.timers.tick(Math.min(10, ms - step));
      await settle();
    }
  }

  test('heartbeats come from the shared timer on quiet streams', async (t) => {
    t.after(() => mock.timers.reset());
    mock.timers.enable({ apis: ['setInterval', 'Date'], now: 1_000_000 });
    const h = hub({ heartbeatMs: 100 });
    const { sink } = await open(h, ['t']);
    const before = sink.writes;
    await passes(450);
    // One every 100 ms, checked by a timer several times as fine.
    assert.ok(sink.writes - before >= 3, `heartbeats written in 450 ms: ${sink.writes - before}`);
    await h.close();
  });

  test('the lifetime limit ends a stream with a retry hint; the idle timeout ends a quiet one', async (t) => {
    t.after(() => mock.timers.reset());
    mock.timers.enable({ apis: ['setInterval', 'Date'], now: 1_000_000 });
    const h = hub({ maxLifetimeMs: 150, heartbeatMs: 40 });
    const { sink, subscriber } = await open(h, ['t']);
    await passes(300);
    assert.equal(subscriber.state, 'closed');
    assert.equal(sink.ended, true);
    assert.equal(h.counters.closed.lifetime, 1);
    await h.close();

    const idle = hub({ idleTimeoutMs: 100, heartbeatMs: 40 });
    const quiet = await open(idle, ['t']);
    await passes(50);
    assert.equal(quiet.subscriber.state, 'live', 'not idle yet');
    await passes(250);
    assert.equal(quiet.subscriber.state, 'closed');
    assert.equal(idle.counters.closed.idle, 1);
    await idle.close();
  });

  test('close ends every stream with a retry hint and refuses publishes', async () => {
    const h = hub();
    const { sink } = await open(h, ['t']);
    await h.close();
    assert.equal(sink.ended, true);
    await assert.rejects(
      publish(h, { topic: 't' }),
      (e: unknown) => e instanceof HeraldError && e.status === 503,
    );
  });

  test('an admin stream on tenant * watches every tenant, each event once', async () => {
    const h = hub();
    const admin = await open(h, ['*'], { tenant: '*' });
    const t1 = await open(h, ['*'], { tenant: 't1' });
    await publish(
      h,
      { topic: 'a', data: 'in t1', tenant: 't1' },
      { topic: 'a', data: 'in t2', tenant: 't2' },
    );
    await settle();
    assert.deepEqual(admin.sink.data, ['in t1', 'in t2']);
    assert.deepEqual(t1.sink.data, ['in t1']);
    await assert.rejects(publish(h, { topic: 'a', tenant: '*' }), /reserved/);
    await h.close();
  });

  test('privateByDefault: every event is private, so only granted subscribers see it', async () => {
    const h = hub({ privateByDefault: true });
    const granted = await open(h, ['*'], { grants: [parseSelector('orders/{id}')] });
    const other = await open(h, ['*'], { grants: [parseSelector('news')] });
    await publish(h, { topic: 'orders/1', data: 'order' }, { topic: 'news', data: 'news', private: false });
    await settle();
    assert.deepEqual(granted.sink.data, ['order']);
    assert.deepEqual(other.sink.data, ['news']);
    await h.close();
  });

  test('redacted fields reach only subscribers with the permission, live and in replay', async () => {
    const h = hub();
    const clerk = await open(h, ['orders'], { permissions: [] });
    const billing = await open(h, ['orders'], { permissions: ['billing:read'] });
    const [first] = await publish(h, {
      topic: 'orders',
      data: { id: 1, card: '4242' },
      redact: { '/card': 'billing:read' },
    });
    await settle();
    assert.deepEqual(clerk.sink.data, ['{"id":1}']);
    assert.deepEqual(billing.sink.data, ['{"id":1,"card":"4242"}']);
    const replayed = await open(h, ['orders'], {
      permissions: [],
      lastEventId: `${first?.pos.split('-')[0]}-0`,
    });
    assert.deepEqual(replayed.sink.data, ['{"id":1}']);
    await h.close();
  });

  test('a stream is told herald.reauth before its credential expires, then ended with a retry hint', async (t) => {
    t.after(() => mock.timers.reset());
    mock.timers.enable({ apis: ['setInterval', 'Date'], now: 1_000_000 });
    const h = hub({ reauthLeadMs: 200, heartbeatMs: 40 });
    const { sink, subscriber } = await open(h, ['t'], { expiresAt: Date.now() + 400 });
    let closes = 0;
    const released = h.subscribe(
      subscription(['t'], { expiresAt: Date.now() + 100, onClose: () => closes++ }),
      new RecordingSink(),
    );
    await passes(250);
    const reauth = sink.system('herald.reauth');
    assert.equal(reauth.length, 1);
    assert.equal(reauth[0]?.id, undefined, 'no id: the resume point stays where it was');
    assert.equal(JSON.parse(reauth[0]?.data ?? '{}').expiresAt, new Date(subscriber.expiresAt).toISOString());
    assert.equal(subscriber.state, 'live');
    assert.equal(released.state, 'closed');
    assert.equal(closes, 1, 'onClose runs once');
    await passes(300);
    assert.equal(subscriber.state, 'closed');
    assert.equal(sink.ended, true);
    assert.equal(h.counters.closed.expired, 2);
    await h.close();
  });

  test('a long poll stops waiting when its client leaves, or when the hub closes', async () => {
    const h = hub();
    const left = new AbortController();
    const started = Date.now();
    const polling = h.poll(subscription(['t']), 30_000, 10, left.signal);
    await settle();
    left.abort();
    assert.deepEqual((await polling).events, []);
    const waiting = h.poll(subscription(['t']), 30_000, 10);
    await settle();
    await h.close();
    assert.deepEqual((await waiting).events, []);
    // Generous for a busy machine, and still far from the 30 s.
    assert.ok(Date.now() - started < 10_000, 'neither waited out its 30 s');
  });

  test('tenant stats show one tenant only', async () => {
    const h = hub();
    await open(h, ['a'], { tenant: 't1' });
    await open(h, ['b'], { tenant: 't2' });
    assert.deepEqual(h.tenantStats('t1'), { tenant: 't1', connections: { total: 1, byTopic: { a: 1 } } });
    assert.deepEqual(h.tenantStats('t3'), { tenant: 't3', connections: { total: 0, byTopic: {} } });
    await h.close();
  });

  test('stats count connections by tenant and topic, events and history', async () => {
    const h = hub();
    const subs: Subscriber[] = [];
    subs.push(
      (await open(h, ['a'])).subscriber,
      (await open(h, ['a', 'rooms/{id}'], { tenant: 't2' })).subscriber,
    );
    await publish(h, { topic: 'a', data: 1 });
    await settle();
    const stats = await h.stats();
    assert.equal(stats.connections.total, 2);
    assert.deepEqual(stats.connections.byTenant, { '': 1, t2: 1 });
    assert.deepEqual(stats.connections.byTopic, { a: 2, 'rooms/{id}': 1 });
    assert.equal(stats.events.published, 1);
    assert.equal(stats.events.delivered, 1);
    assert.equal(stats.history?.size, 1);
    subs[0]?.closed();
    assert.equal((await h.stats()).connections.total, 1);
    await h.close();
  });
});
