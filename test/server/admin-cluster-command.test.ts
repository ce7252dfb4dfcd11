import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type HubProcess, killAllHubs, spawnHub } from '../helpers/nodes.ts';
import { openStream, type SseStream } from '../helpers/sse-client.ts';
import { bearer, SECRET, token } from '../helpers/tokens.ts';
import { killAllCli, runCli } from './run-cli.ts';

/**
 * `herald admin nodes|connections|disconnect|presence` against a real `herald serve`: JSON lines
 * on stdout, refusals with the hub's detail and a non-zero exit, usage errors before any request.
 */

let hub: HubProcess;
let admin: string;
const streams: SseStream[] = [];

before(async () => {
  hub = await spawnHub(['--jwt-secret', SECRET]);
  admin = await token({ admin: true, sub: 'ops' });
  for (const sub of ['ann', 'ann', 'ben']) {
    const jwt = await token({ tenant: 'acme', sub, subscribe: ['lobby'] });
    const stream = await openStream(`${hub.url}/v1/events?topic=lobby`, { headers: bearer(jwt) });
    streams.push(stream);
    await stream.untilConnected();
  }
});

after(async () => {
  for (const stream of streams) stream.close();
  await killAllCli();
  await killAllHubs();
});

const lines = (stdout: string) =>
  stdout
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Record<string, unknown>);

describe('herald admin for the cluster', () => {
  test('nodes prints this node with its figures', async () => {
    const run = await runCli(['admin', 'nodes', '--url', hub.url], { HERALD_TOKEN: admin });
    assert.equal(run.code, 0, run.stderr);
    const [node] = lines(run.stdout);
    assert.equal(node?.self, true);
    assert.equal(node?.connections, 3);
    const tenants = node?.tenants as Record<string, { streams: number }> | undefined;
    assert.equal(tenants?.acme?.streams, 3);
  });

  test('connections prints a line per stream, filtered', async () => {
    const run = await runCli([
      'admin',
      'connections',
      '--subject',
      'ann',
      '--url',
      hub.url,
      '--token',
      admin,
    ]);
    assert.equal(run.code, 0, run.stderr);
    const rows = lines(run.stdout);
    assert.equal(rows.length, 2);
    assert.ok(rows.every((row) => row.subject === 'ann' && row.tenant === 'acme'));
    const bad = await runCli([
      'admin',
      'connections',
      '--topic',
      'a\u0001b',
      '--url',
      hub.url,
      '--token',
      admin,
    ]);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /topic must be one topic/);
    assert.ok(!bad.stderr.includes(admin), 'the token is never printed');
  });

  test('presence prints the counts and members', async () => {
    const run = await runCli(
      ['admin', 'presence', '--topic', 'lobby', '--tenant', 'acme', '--url', hub.url],
      {
        HERALD_TOKEN: admin,
      },
    );
    assert.equal(run.code, 0, run.stderr);
    const [presence] = lines(run.stdout);
    assert.equal(presence?.connections, 3);
    assert.equal(presence?.subjects, 2);
  });

  test('disconnect ends the streams and says how many; without a target it is a usage error', async () => {
    const usage = await runCli(['admin', 'disconnect', '--url', hub.url, '--token', admin]);
    assert.notEqual(usage.code, 0);
    assert.match(usage.stderr, /--id, --subject or --tenant/);
    const run = await runCli([
      'admin',
      'disconnect',
      '--subject',
      'ann',
      '--reason',
      'maintenance',
      '--no-reconnect',
      '--url',
      hub.url,
      '--token',
      admin,
    ]);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(lines(run.stdout)[0]?.disconnected, 2);
    for (const stream of streams.slice(0, 2)) {
      await stream.untilEnded();
      const notice = stream.events.find((event) => event.type === 'herald.disconnect');
      assert.deepEqual(JSON.parse(notice?.data ?? '{}'), { reason: 'maintenance', reconnect: false });
    }
    const user = await token({ tenant: 'acme', sub: 'ben' });
    const refused = await runCli([
      'admin',
      'disconnect',
      '--subject',
      'ben',
      '--url',
      hub.url,
      '--token',
      user,
    ]);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /admin credentials/);
  });
});
