import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { templateMatching } from '../../src/core/topics.ts';
import { startServe, type TestHub } from '../helpers/server.ts';
import type { SseStream } from '../helpers/sse-client.ts';
import { bearer, SECRET, token } from '../helpers/tokens.ts';

/**
 * Issue 12, "matching cost is unbounded": what anonymous subscribers and one publisher can make a
 * hub do, at the limits and past them. Ten anonymous streams of 100 templates of 32 variables and
 * a publish of 32 topics of ~1 000 characters held the event loop 4.6 s; a JSON body nested a
 * million levels deep held it a second before its 400.
 *
 * The machine running the suite is shared and busy: the bounds on time are generous (a second,
 * where the attacks took several), and the assertions that matter are on the amount of work
 * (matcher runs) and on what comes back.
 */

/** The limits under test. */
const TEMPLATES_PER_STREAM = 32;
const VARIABLES_PER_TEMPLATE = 16;
const TOPICS_PER_EVENT = 32;
const TOPIC_LENGTH = 1024;
const JSON_DEPTH = 64;
const JSON_ITEMS = 200_000;
/** How long the event loop may stall here, where the attacks held it for seconds. */
const GENEROUS_MS = 1_000;
const LETTERS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';

/**
 * Template `k`: `{?a:P,b:Q,c:99,…}`, of the shape that costs the matcher most, distinct through its
 * first two prefix lengths, with no literal an index could file it under.
 */
const template = (k: number, variables = VARIABLES_PER_TEMPLATE) =>
  `{?${LETTERS.slice(0, variables)
    .split('')
    .map((name, i) => `${name}:${i === 0 ? 1 + (k % 99) : i === 1 ? 1 + (Math.floor(k / 99) % 99) : 99}`)
    .join(',')}}`;

/** A topic of the longest length that every such template tests to its last character, then rejects. */
const attackTopic = (serial: number) => {
  const end = `${String(serial).padStart(5, '0')}!`;
  return `?${'==a'.repeat(TOPIC_LENGTH)}`.slice(0, TOPIC_LENGTH - end.length) + end;
};

/** `topic=` parameters, unencoded but for what must be, as a browser's address bar sends them. */
const query = (selectors: readonly string[]) =>
  selectors.map((selector) => `topic=${selector.replace(/[%&#+ ]/g, encodeURIComponent)}`).join('&');

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** A raw request on its own connection: nothing on the client side changes what is sent. */
function send(
  url: string,
  options: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { method: options.method ?? 'GET', headers: options.headers, agent: false },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (text: string) => {
          body += text;
          if (res.headers['content-type']?.startsWith('text/event-stream')) res.destroy();
        });
        res.on('close', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on('error', (error: NodeJS.ErrnoException) =>
      error.code === 'ECONNRESET' ? undefined : reject(error),
    );
    req.end(options.body);
  });
}

function assertProblem(answer: Answer, code: string, detail: RegExp): Record<string, unknown> {
  assert.equal(answer.status, 400, answer.body.slice(0, 500));
  assert.equal(answer.headers['content-type'], 'application/problem+json; charset=utf-8');
  const problem = JSON.parse(answer.body) as Record<string, unknown>;
  assert.equal(problem.code, code);
  assert.match(String(problem.detail), detail);
  return problem;
}

/**
 * The longest the event loop stalled while `run` ran, ms (how late a 5 ms timer fired at most),
 * and what `run` returned. The timer has ticked before `run` starts and ticks once more after it
 * ends, so a stall at either end counts too. (`monitorEventLoopDelay` loses a stall that comes
 * before its first sample.)
 */
async function stalls<T>(run: () => Promise<T>): Promise<{ stallMs: number; result: T }> {
  let last = performance.now();
  let longest = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    longest = Math.max(longest, now - last - 5);
    last = now;
  }, 5);
  const ticks = () => new Promise((resolve) => setTimeout(resolve, 20));
  try {
    await ticks();
    const result = await run();
    await ticks();
    return { stallMs: longest, result };
  } finally {
    clearInterval(timer);
  }
}

/** `/healthz` every 20 ms while `run` runs: the slowest answer, ms (each timed from when it was due). */
async function probingHealth<T>(
  url: string,
  run: () => Promise<T>,
): Promise<{ slowestMs: number; result: T }> {
  let slowest = 0;
  const probes: Promise<void>[] = [];
  const timer = setInterval(() => {
    const due = performance.now();
    probes.push(
      send(`${url}/healthz`).then((answer) => {
        assert.equal(answer.status, 200);
        slowest = Math.max(slowest, performance.now() - due);
      }),
    );
  }, 20);
  try {
    const result = await run();
    return { slowestMs: slowest, result };
  } finally {
    clearInterval(timer);
    await Promise.all(probes);
  }
}

describe('bounded work per request (issue 12: matching cost, JSON depth)', () => {
  let hub: TestHub;
  let publisher: Record<string, string>;
  let serial = 0;
  const streams: SseStream[] = [];

  before(async () => {
    hub = await startServe({ jwtSecret: SECRET, jwtAudience: 'herald-tests', anonymous: true });
    publisher = bearer(await token({ publish: ['*'], sub: 'publisher', audience: 'herald-tests' }));
  });

  after(async () => {
    for (const stream of streams) stream.close();
    await hub.close();
  });

  /** Anonymous streams holding the most templates a stream may, none shared with another. */
  async function attackers(count: number, extra: string[] = [], lastEventId?: string): Promise<SseStream[]> {
    const opened: SseStream[] = [];
    for (let s = 0; s < count; s++) {
      const selectors = Array.from({ length: TEMPLATES_PER_STREAM }, () => template(serial++));
      const stream = await hub.subscribe(
        query([...selectors, ...extra]),
        lastEventId === undefined ? {} : { lastEventId },
      );
      streams.push(stream);
      opened.push(stream);
    }
    return opened;
  }

  const attackEvent = () => ({
    topic: Array.from({ length: TOPICS_PER_EVENT }, () => attackTopic(serial++)),
    data: 'x',
  });

  test('ten anonymous streams at the limits and an event of 32 topics of 1 024 characters: the loop keeps turning, nothing is lost', async () => {
    const held = await attackers(10);
    for (const stream of held) await stream.untilConnected();
    const control = await hub.subscribe('topic=control');
    streams.push(control);
    await control.untilConnected();
    const runs = templateMatching.runs;

    const { stallMs, result } = await stalls(() =>
      probingHealth(hub.url, async () => {
        const attack = await hub.publish(attackEvent(), publisher);
        assert.equal(attack.status, 202, JSON.stringify(attack.body));
        const after = await hub.publish({ topic: 'control', data: 'after the attack' }, publisher);
        assert.equal(after.status, 202);
        await control.until((s) => s.data.some((e) => e.data === 'after the attack'), 60_000);
      }),
    );
    const open = held.filter((stream) => !stream.ended).length;
    for (const stream of held) stream.close();
    assert.equal(open, held.length, 'every attacking stream stayed open');
    // Each of the 320 templates tested against each of the 33 topics (the control event's too)
    // once at most, however the work was spread.
    const tested = templateMatching.runs - runs;
    assert.ok(tested <= 10 * TEMPLATES_PER_STREAM * (TOPICS_PER_EVENT + 1), `${tested} matcher runs`);
    assert.ok(stallMs < GENEROUS_MS, `the event loop stalled ${stallMs.toFixed(0)} ms`);
    assert.ok(result.slowestMs < GENEROUS_MS, `/healthz took ${result.slowestMs.toFixed(0)} ms`);
  });

  test('a stream at the limits resuming through a history of such events keeps the loop turning', async () => {
    const marker = await hub.publish({ topic: 'marker', data: 'before' }, publisher);
    assert.equal(marker.status, 202);
    const from = String(marker.body.id);
    const events = 10;
    for (let i = 0; i < events; i++) assert.equal((await hub.publish(attackEvent(), publisher)).status, 202);
    const runs = templateMatching.runs;
    const { stallMs } = await stalls(async () => {
      // It replays the ten events, whose 320 topics its 32 templates must be tested against.
      const [resumed] = await attackers(1, ['marker'], from);
      assert.ok(resumed !== undefined);
      assert.equal((await hub.publish({ topic: 'marker', data: 'live' }, publisher)).status, 202);
      await resumed.until((s) => s.data.some((e) => e.data === 'live'), 60_000, 'the live marker');
      assert.deepEqual(
        resumed.data.map((e) => e.data),
        ['live'],
        'none of the replayed events matches, and the live one arrives',
      );
      resumed.close();
    });
    // Each template against each replayed topic (and the live marker's) once at most.
    const tested = templateMatching.runs - runs;
    assert.ok(tested <= TEMPLATES_PER_STREAM * (events * TOPICS_PER_EVENT + 1), `${tested} matcher runs`);
    assert.ok(stallMs < GENEROUS_MS, `the event loop stalled ${stallMs.toFixed(0)} ms`);
  });

  test('more templates than a stream may hold, or more variables than a template may have: 400 naming the limit', async () => {
    const many = Array.from({ length: TEMPLATES_PER_STREAM + 1 }, (_, i) => `rooms/${i}/{id}`);
    const problem = assertProblem(
      await send(`${hub.url}/v1/events?${query(many)}`),
      'too-many-templates',
      /^33 URI templates in one subscription; the limit is 32 /,
    );
    assert.equal(problem.limit, TEMPLATES_PER_STREAM);
    assert.equal(problem.parameter, 'topic');
    // Exact topics do not count.
    const mixed = [
      ...many.slice(0, TEMPLATES_PER_STREAM),
      ...Array.from({ length: 60 }, (_, i) => `exact/${i}`),
    ];
    assert.equal((await send(`${hub.url}/v1/events?${query(mixed)}`)).status, 200);
    // The Mercure endpoint takes the same selectors.
    assertProblem(
      await send(`${hub.url}/.well-known/mercure?${query(many)}`),
      'too-many-templates',
      /the limit is 32/,
    );
    assertProblem(
      await send(`${hub.url}/v1/events?${query([template(0, VARIABLES_PER_TEMPLATE + 1)])}`),
      'invalid-template',
      /has 17 variables; the maximum is 16/,
    );
    assert.equal((await send(`${hub.url}/v1/events?${query([template(0)])}`)).status, 200);
  });

  test('a stream cannot grow past the limit through POST /v1/subscriptions', async () => {
    const stream = await hub.subscribe(
      query(Array.from({ length: TEMPLATES_PER_STREAM - 2 }, (_, i) => `halls/${i}/{id}`)),
    );
    streams.push(stream);
    await stream.untilConnected();
    const { connectionId, secret } = JSON.parse(stream.events[0]?.data ?? '{}');
    const change = (topics: string[]) =>
      send(`${hub.url}/v1/subscriptions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ connectionId, secret, action: 'subscribe', topics }),
      });
    assertProblem(
      await change(['more/1/{id}', 'more/2/{id}', 'more/3/{id}']),
      'too-many-templates',
      /^33 URI templates in one subscription; the limit is 32 /,
    );
    assert.equal((await change(['more/1/{id}', 'more/2/{id}'])).status, 200);
    stream.close();
  });

  test('a JSON body nested deeper than 64 levels is refused before it is parsed', async () => {
    const depth = 2_000_000;
    const { stallMs, result } = await stalls(() =>
      send(`${hub.url}/v1/publish`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...publisher },
        body: '['.repeat(depth) + ']'.repeat(depth),
      }),
    );
    const problem = assertProblem(result, 'json-too-deep', /more than 64 levels deep .*; the limit is 64$/);
    assert.equal(problem.limit, JSON_DEPTH);
    assert.ok(stallMs < GENEROUS_MS, `the event loop stalled ${stallMs.toFixed(0)} ms`);
    // At the limit: the batch's array and the event's object, and `data` 62 deep.
    const nested = (levels: number): unknown => (levels === 0 ? 'leaf' : [nested(levels - 1)]);
    const publish = (data: unknown) =>
      send(`${hub.url}/v1/publish`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...publisher },
        body: JSON.stringify([{ topic: 'deep', data }]),
      });
    assert.equal((await publish(nested(JSON_DEPTH - 2))).status, 202);
    assertProblem(await publish(nested(JSON_DEPTH - 1)), 'json-too-deep', /the limit is 64/);
  });

  test('a JSON body of more than 200 000 items is refused before it is parsed', async () => {
    const { stallMs, result } = await stalls(() =>
      send(`${hub.url}/v1/publish`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...publisher },
        // 4 MB of empty arrays: 1.4 million items, each of which JSON.parse would build.
        body: `[${Array(1_390_000).fill('[]').join(',')}]`,
      }),
    );
    const problem = assertProblem(result, 'json-too-many-items', /the limit is 200000/);
    assert.equal(problem.limit, JSON_ITEMS);
    assert.ok(stallMs < GENEROUS_MS, `the event loop stalled ${stallMs.toFixed(0)} ms`);
  });
});
