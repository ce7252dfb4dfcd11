import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type HubProcess, killAllHubs, spawnHub } from '../helpers/nodes.ts';

/**
 * README, "Long polling": `wait` (seconds to hold the request when nothing is there, 0–60,
 * default 25). Held against `herald serve` as its own process, so that no server timeout of the
 * standalone hub cuts a poll short of what the README promises. The default `limit` is pinned in
 * test/docs/claims.test.ts.
 */

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

interface Polled {
  readonly events: { id: string; type: string; data: unknown }[];
  readonly lastEventId: string;
}

/** Only lower bounds are exact; upper bounds leave a busy machine room to answer late. */
const SLACK_MS = 20_000;

describe('GET /v1/events/poll: the wait', { concurrency: true }, () => {
  let hub: HubProcess;
  before(async () => {
    hub = await spawnHub([]);
  });
  after(() => killAllHubs());

  /** Polls and says how long the answer took. */
  async function poll(query: string): Promise<{ status: number; body: Polled; ms: number }> {
    const started = performance.now();
    const response = await fetch(`${hub.url}/v1/events/poll?${query}`);
    const body = (await response.json()) as Polled;
    return { status: response.status, body, ms: performance.now() - started };
  }

  test('"default 25": a poll with nothing to return is held about 25 s, then answers an empty batch', async () => {
    const { status, body, ms } = await poll('topic=quiet/default');
    assert.equal(status, 200);
    assert.deepEqual(body.events, []);
    assert.equal(typeof body.lastEventId, 'string', 'where the next poll continues');
    assert.ok(ms >= 24_900, `held ${Math.round(ms)} ms: the default wait is 25 s`);
    assert.ok(ms < 25_000 + SLACK_MS, `held ${Math.round(ms)} ms: not much past the default wait`);
  });

  test('"0–60": wait=60 is accepted and holds the request the whole 60 s', async () => {
    const { status, body, ms } = await poll('topic=quiet/longest&wait=60');
    assert.equal(status, 200);
    assert.deepEqual(body.events, []);
    assert.ok(ms >= 59_900, `held ${Math.round(ms)} ms: wait=60 is 60 s`);
    assert.ok(ms < 60_000 + SLACK_MS, `held ${Math.round(ms)} ms`);
  });

  test('wait=60 still answers as soon as an event comes', async () => {
    const waiting = poll('topic=soon&wait=60');
    await sleep(300);
    const published = await fetch(`${hub.url}/v1/publish`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ topic: 'soon', data: 'here' }),
    });
    assert.equal(published.status, 202);
    const { status, body, ms } = await waiting;
    assert.equal(status, 200);
    assert.deepEqual(
      body.events.map((e) => e.data),
      ['here'],
    );
    assert.ok(ms < 30_000, `answered after ${Math.round(ms)} ms, when the event came`);
  });

  test('wait=0 answers at once', async () => {
    const { status, body, ms } = await poll('topic=quiet/now&wait=0');
    assert.equal(status, 200);
    assert.deepEqual(body.events, []);
    assert.ok(ms < SLACK_MS, `answered after ${Math.round(ms)} ms`);
  });

  test('a wait past the maximum (or not a whole number of seconds) is a 400 problem naming the range', async () => {
    for (const wait of ['61', '3600', '-1', '1.5', 'soon']) {
      const response = await fetch(`${hub.url}/v1/events/poll?topic=quiet/refused&wait=${wait}`);
      assert.equal(response.status, 400, `wait=${wait}`);
      assert.match(response.headers.get('content-type') ?? '', /^application\/problem\+json/, `wait=${wait}`);
      const problem = (await response.json()) as Record<string, unknown>;
      assert.equal(problem.status, 400);
      assert.equal(problem.code, 'invalid-wait', `wait=${wait}`);
      assert.match(String(problem.detail), /\bwait\b.*\b0\b.*\b60\b/, `the detail names the range 0 to 60`);
    }
  });
});
