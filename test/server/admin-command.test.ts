import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type HubProcess, killAllHubs, spawnHub } from '../helpers/nodes.ts';
import { bearer, SECRET, token } from '../helpers/tokens.ts';
import { closedPort, killAllCli, runCli } from './run-cli.ts';

/**
 * `herald admin history` against a real `herald serve`: a topic's events, newest first, one JSON
 * line each, pages followed up to `--limit`, and where to go on from; refusals and an unreachable
 * hub exit non-zero with what to do, and never print the token.
 */

let hub: HubProcess;
let admin: string;

before(async () => {
  hub = await spawnHub(['--jwt-secret', SECRET]);
  admin = await token({ tenant: 'T1', admin: true, sub: 'ops' });
  const events = [
    ...Array.from({ length: 5 }, (_, i) => ({ topic: `orders/${i + 1}`, data: { n: i + 1 } })),
    { topic: 'orders/1', data: 'plain text' },
    { topic: 'other', data: 'not an order' },
    { topic: 'orders/9', tenant: 'T2', data: 't2' },
  ];
  const response = await fetch(`${hub.url}/v1/publish`, {
    method: 'POST',
    headers: { ...bearer(admin), 'content-type': 'application/json' },
    body: JSON.stringify(events),
  });
  assert.equal(response.status, 202, await response.clone().text());
});

after(async () => {
  await killAllCli();
  await killAllHubs();
});

const lines = (stdout: string) =>
  stdout
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as { id: string; data: unknown; topics: string[]; tenant?: string });

describe('herald admin history', () => {
  test('prints the events newest first, a JSON line each, and where to go on from past --limit', async () => {
    const all = await runCli([
      'admin',
      'history',
      '--topic',
      'orders/{id}',
      '--url',
      hub.url,
      '--token',
      admin,
    ]);
    assert.equal(all.code, 0, all.stderr);
    assert.equal(all.stderr, '');
    const events = lines(all.stdout);
    assert.deepEqual(
      events.map((e) => e.data),
      ['plain text', { n: 5 }, { n: 4 }, { n: 3 }, { n: 2 }, { n: 1 }],
    );
    assert.deepEqual(events[1]?.topics, ['orders/5']);

    const firstTwo = await runCli(
      ['admin', 'history', '--topic', 'orders/{id}', '--limit', '2', '--url', hub.url],
      { HERALD_TOKEN: admin },
    );
    assert.equal(firstTwo.code, 0, firstTwo.stderr);
    assert.deepEqual(
      lines(firstTwo.stdout).map((e) => e.id),
      events.slice(0, 2).map((e) => e.id),
    );
    const before = /--before (\S+)/.exec(firstTwo.stderr)?.[1];
    assert.ok(before, `stderr names where to go on from: ${firstTwo.stderr}`);

    const rest = await runCli(
      ['admin', 'history', '--topic', 'orders/{id}', '--before', before, '--url', hub.url],
      { HERALD_TOKEN: admin },
    );
    assert.equal(rest.code, 0, rest.stderr);
    assert.deepEqual(
      lines(rest.stdout).map((e) => e.id),
      events.slice(2).map((e) => e.id),
    );
  });

  test('--tenant browses another tenant, * every one', async () => {
    const [other, every] = await Promise.all([
      runCli([
        'admin',
        'history',
        '--topic',
        'orders/9',
        '--tenant',
        'T2',
        '--url',
        hub.url,
        '--token',
        admin,
      ]),
      runCli(['admin', 'history', '--topic', '*', '--tenant', '*', '--limit', '3', '--url', hub.url], {
        HERALD_TOKEN: admin,
      }),
    ]);
    assert.equal(other.code, 0, other.stderr);
    assert.deepEqual(
      lines(other.stdout).map((e) => e.data),
      ['t2'],
    );
    assert.equal(every.code, 0, every.stderr);
    assert.deepEqual(
      lines(every.stdout).map((e) => [e.data, e.tenant]),
      [
        ['t2', 'T2'],
        ['not an order', 'T1'],
        ['plain text', 'T1'],
      ],
    );
  });

  test('a refusal exits 1 with the hub detail, and never prints the token', async () => {
    const tenantToken = await token({ tenant: 'T1', subscribe: ['*'] });
    const refused = await runCli(['admin', 'history', '--topic', 'orders/1', '--url', hub.url], {
      HERALD_TOKEN: tenantToken,
    });
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /answered 403: browsing a topic's history needs admin credentials/);
    assert.ok(!refused.stderr.includes(tenantToken) && !refused.stdout.includes(tenantToken));

    const badLimit = await runCli(['admin', 'history', '--topic', 'x', '--limit', '0', '--url', hub.url]);
    assert.equal(badLimit.code, 2);
    assert.match(badLimit.stderr, /--limit: "0" is not a whole number of 1 or more/);

    const unknown = await runCli([
      'admin',
      'history',
      '--topic',
      'x',
      '--before',
      'nonexistent',
      '--url',
      hub.url,
      '--token',
      admin,
    ]);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /answered 400: before "nonexistent"/);
    assert.ok(!unknown.stderr.includes(admin));
  });

  test('its help says whether HERALD_TOKEN is set, never its value', async () => {
    const help = await runCli(['admin', 'history', '--help'], {
      HERALD_TOKEN: admin,
      HERALD_URL: 'http://ops:hunter2-url-password@127.0.0.1:1',
    });
    assert.equal(help.code, 0, help.stderr);
    assert.match(help.stdout, /bearer token \(env: HERALD_TOKEN, set\)/);
    assert.ok(!help.stdout.includes(admin) && !help.stdout.includes('hunter2'), help.stdout);
  });

  test('a hub that is not there exits 1, saying so', async () => {
    const port = await closedPort();
    const run = await runCli(['admin', 'history', '--topic', 'x', '--url', `http://127.0.0.1:${port}`]);
    assert.equal(run.code, 1);
    assert.match(run.stderr, /cannot reach the hub at http:\/\/127\.0\.0\.1:\d+\/v1\/history/);
  });
});
