import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { after, describe, test } from 'node:test';
import { killAllHubs, spawnHub } from '../helpers/nodes.ts';
import { closedPort, killAllCli, runCli } from './run-cli.ts';

const servers: Server[] = [];

after(async () => {
  for (const server of servers) server.closeAllConnections();
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  await killAllCli();
  await killAllHubs();
});

/** A server that is not a hub, answering `/readyz` as `answer` says. */
async function fakeHub(answer: (response: import('node:http').ServerResponse) => void): Promise<string> {
  const server = createServer((_, response) => answer(response));
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as { port: number }).port}`;
}

describe('herald health', () => {
  test('exits 0 with one line when the hub is ready, 1 when nothing answers', async () => {
    const hub = await spawnHub([]);
    try {
      const ok = await runCli(['health', '--url', hub.url]);
      assert.equal(ok.code, 0, ok.stderr);
      assert.equal(ok.stdout, `ok: ${hub.url}/readyz (broker: memory)\n`);
      // HERALD_URL, as publish and listen take it.
      const fromEnv = await runCli(['health'], { HERALD_URL: hub.url });
      assert.equal(fromEnv.code, 0, fromEnv.stderr);
    } finally {
      await hub.kill();
    }
    const port = await closedPort();
    const down = await runCli(['health', '--url', `http://127.0.0.1:${port}`]);
    assert.equal(down.code, 1);
    assert.match(
      down.stdout,
      new RegExp(
        `^unhealthy: cannot reach the hub at http://127\\.0\\.0\\.1:${port}/readyz \\(connection refused`,
      ),
    );
  });

  test('degraded but serving (--on-broker-down local) is healthy, and unhealthy with --strict', async () => {
    const port = await closedPort();
    const hub = await spawnHub(['--broker', `redis://127.0.0.1:${port}`, '--on-broker-down', 'local']);
    try {
      const [lenient, strict] = await Promise.all([
        runCli(['health', '--url', hub.url]),
        runCli(['health', '--url', hub.url, '--strict']),
      ]);
      assert.equal(lenient.code, 0, lenient.stdout);
      assert.match(lenient.stdout, /^degraded but serving: .*\(broker: redis, fallback-local\)/);
      assert.equal(strict.code, 1, strict.stdout);
      assert.match(strict.stdout, /^unhealthy \(--strict\): .* is degraded/);
    } finally {
      await hub.kill();
    }
  });

  test('a 503 readiness report, an answer that is not one, and no answer in time are unhealthy (exit 1)', async () => {
    const unusable = await fakeHub((response) =>
      response
        .writeHead(503, { 'content-type': 'application/json' })
        .end(JSON.stringify({ status: 'degraded', broker: 'redis', detail: 'redis unreachable' })),
    );
    const notHerald = await fakeHub((response) => response.writeHead(200).end('<html>hello</html>'));
    const silent = await fakeHub(() => {});
    const [down, other, slow] = await Promise.all([
      runCli(['health', '--url', unusable]),
      runCli(['health', '--url', notHerald]),
      runCli(['health', '--url', silent, '--timeout', '300ms']),
    ]);
    assert.equal(down.code, 1);
    assert.match(down.stdout, /^unhealthy: .* answered 503 \(broker: redis: redis unreachable\)/);
    assert.equal(other.code, 1);
    assert.match(other.stdout, /not a Herald readiness report/);
    assert.equal(slow.code, 1);
    assert.match(slow.stdout, /did not answer in time/);
  });
});
