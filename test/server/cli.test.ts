import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { killAllHubs, spawnHub } from '../helpers/nodes.ts';
import { openStream } from '../helpers/sse-client.ts';
import { killAllCli, runCli } from './run-cli.ts';

const BUILT = fileURLToPath(new URL('../../dist/server/cli.js', import.meta.url));

const run = (args: string[], env: Record<string, string> = {}, cli?: string) =>
  runCli(args, env, cli === undefined ? {} : { command: [process.execPath, cli] });

/** Starts `herald serve` and resolves with its URL once it says it listens; killed in `after` whatever happens. */
async function startServe(
  args: string[] = [],
  env: Record<string, string> = {},
): Promise<{ child: ChildProcess; url: string; output: () => string }> {
  const hub = await spawnHub(args, env);
  return { child: hub.child, url: hub.url, output: hub.output };
}

function exited(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) resolve(child.exitCode);
    else child.once('exit', (code) => resolve(code));
  });
}

after(async () => {
  await killAllCli();
  await killAllHubs();
});

describe('herald CLI', () => {
  test('serve prints its URL, listens on loopback by default, and answers /healthz and /readyz', async () => {
    const { child, url } = await startServe();
    try {
      assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
      assert.equal((await fetch(`${url}/healthz`)).status, 200);
      assert.deepEqual(await (await fetch(`${url}/readyz`)).json(), { status: 'ok', broker: 'memory' });
    } finally {
      child.kill('SIGKILL');
    }
  });

  test('settings come from HERALD_… variables, and flags win over them', async () => {
    const { child, url, output } = await startServe(['--history-size', '3'], {
      HERALD_HISTORY_SIZE: '50',
      HERALD_HEARTBEAT: '200ms',
    });
    try {
      assert.match(output(), /history: 3 events/);
      const stream = await openStream(`${url}/v1/events?topic=t`);
      await stream.until((s) => s.comments.length >= 1, 2000, 'a heartbeat every 200 ms');
      stream.close();
      const stats = (await (await fetch(`${url}/v1/stats`)).json()) as { history: { maxSize: number } };
      assert.equal(stats.history.maxSize, 3);
    } finally {
      child.kill('SIGKILL');
    }
  });

  test('an invalid setting stops serve (exit 2) with a message naming the flag and variable, and no help screen', async () => {
    const result = await run(['serve', '--heartbeat', 'often']);
    assert.equal(result.code, 2);
    assert.equal(
      result.stderr,
      'herald serve: --heartbeat (HERALD_HEARTBEAT): "often" is not a duration; use e.g. 500ms, 15s, 5m, 24h or 7d\n' +
        'see herald serve --help\n',
    );
  });

  test('publish prints the id; listen prints one JSON line per event and resumes after --last-event-id', async () => {
    const { child, url } = await startServe();
    try {
      const first = await run([
        'publish',
        '--url',
        url,
        '--topic',
        'jobs/1',
        '--type',
        'progress',
        '--data',
        '{"pct":10}',
      ]);
      assert.equal(first.code, 0, first.stderr);
      const firstId = first.stdout.trim();
      assert.match(firstId, /^[0-9a-z]+-1$/);
      const second = await run([
        'publish',
        '--url',
        url,
        '--topic',
        'jobs/1',
        '--data',
        'plain text',
        '--tag',
        'stage=parse',
      ]);
      assert.equal(second.code, 0, second.stderr);

      const listened = await run([
        'listen',
        '--url',
        url,
        '--topic',
        'jobs/{id}',
        '--last-event-id',
        firstId,
        '--count',
        '1',
      ]);
      assert.equal(listened.code, 0, listened.stderr);
      assert.deepEqual(JSON.parse(listened.stdout), {
        id: second.stdout.trim(),
        type: 'message',
        data: 'plain text',
      });

      const all = await run([
        'listen',
        '--url',
        url,
        '--topic',
        'jobs/1',
        '--last-event-id',
        `${firstId.split('-')[0]}-0`,
        '--count',
        '2',
      ]);
      assert.deepEqual(
        all.stdout
          .trim()
          .split('\n')
          .map((line) => JSON.parse(line)),
        [
          { id: firstId, type: 'progress', data: { pct: 10 } },
          { id: second.stdout.trim(), type: 'message', data: 'plain text' },
        ],
      );
    } finally {
      child.kill('SIGKILL');
    }
  });

  test('a refused publish exits non-zero with the server detail', async () => {
    const { child, url } = await startServe();
    try {
      const result = await run([
        'publish',
        '--url',
        url,
        '--topic',
        't',
        '--type',
        'herald.fake',
        '--data',
        '1',
      ]);
      assert.equal(result.code, 1);
      assert.match(result.stderr, /400: type "herald\.fake" starts with "herald\."/);
      const unreachable = await run([
        'publish',
        '--url',
        'http://127.0.0.1:9',
        '--topic',
        't',
        '--data',
        '1',
      ]);
      assert.equal(unreachable.code, 1);
    } finally {
      child.kill('SIGKILL');
    }
  });

  test('listen exits non-zero with the detail when the subscription is refused', async () => {
    const { child, url } = await startServe();
    try {
      const result = await run(['listen', '--url', url, '--topic', 'a/{b']);
      assert.equal(result.code, 1);
      assert.match(result.stderr, /400: .*\{/);
    } finally {
      child.kill('SIGKILL');
    }
  });

  test('open development mode is announced, and refused on a non-loopback address', async () => {
    const { child, output } = await startServe();
    for (let i = 0; i < 100 && !/open development mode/.test(output()); i++)
      await new Promise((r) => setTimeout(r, 20));
    child.kill('SIGKILL');
    assert.match(output(), /open development mode: no JWT key/);
    const refused = await run(['serve', '--host', '0.0.0.0', '--port', '0']);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /refusing to listen on 0\.0\.0\.0 in open development mode.*--insecure/s);
  });

  test('herald token mints a token the hub accepts, with the claims asked for', async () => {
    const secret = 'cli-test-secret-long-enough-for-hs256';
    const { child, url, output } = await startServe([], { HERALD_JWT_SECRET: secret });
    try {
      assert.doesNotMatch(output(), /open development mode/);
      const minted = await run(
        ['token', '--tenant', 'acme', '--publish', 'jobs/{id}', '--subject', 'cli', '--ttl', '10m'],
        { HERALD_JWT_SECRET: secret },
      );
      assert.equal(minted.code, 0, minted.stderr);
      const jwt = minted.stdout.trim();
      const claims = JSON.parse(Buffer.from(jwt.split('.')[1] as string, 'base64url').toString());
      assert.deepEqual(claims.herald, { tenant: 'acme', publish: ['jobs/{id}'] });
      assert.equal(claims.sub, 'cli');
      assert.ok(claims.exp - claims.iat === 600);
      const accepted = await fetch(`${url}/v1/publish`, {
        method: 'POST',
        headers: { authorization: `Bearer ${jwt}`, 'content-type': 'application/json' },
        body: JSON.stringify({ topic: 'jobs/1', data: 1 }),
      });
      assert.equal(accepted.status, 202);
      const refused = await fetch(`${url}/v1/publish`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ topic: 'jobs/1', data: 1 }),
      });
      assert.equal(refused.status, 401);
      // The CLI's publish and listen carry the token.
      const viaCli = await run([
        'publish',
        '--url',
        url,
        '--token',
        jwt,
        '--topic',
        'jobs/2',
        '--data',
        '{"n":2}',
      ]);
      assert.equal(viaCli.code, 0, viaCli.stderr);
      const listened = await run(
        [
          'listen',
          '--url',
          url,
          '--topic',
          'jobs/2',
          '--last-event-id',
          viaCli.stdout.trim().replace(/-\d+$/, '-0'),
          '--count',
          '1',
        ],
        {
          HERALD_TOKEN: jwt,
        },
      );
      assert.equal(listened.code, 0, listened.stderr);
      assert.deepEqual(JSON.parse(listened.stdout).data, { n: 2 });
      const noSecret = await run(['token', '--tenant', 'x'], { HERALD_JWT_SECRET: '' });
      assert.equal(noSecret.code, 2);
      assert.match(noSecret.stderr, /a secret is required/);
    } finally {
      child.kill('SIGKILL');
    }
  });

  test('--help describes every command and its options', async () => {
    for (const [command, expected] of [
      [
        'serve',
        [
          '--port',
          '--host',
          '--history-size',
          '--history-max-age',
          '--heartbeat',
          'HERALD_HEARTBEAT',
          'PORT',
        ],
      ],
      ['publish', ['--topic', '--type', '--data', '--url']],
      ['listen', ['--topic', '--last-event-id', '--url']],
      [
        'serve',
        [
          '--jwt-secret',
          '--jwt-public-key',
          '--jwks-url',
          '--jwt-audience',
          '--jwt-issuer',
          '--anonymous',
          '--cors-origin',
          '--insecure',
        ],
      ],
      ['token', ['--tenant', '--subscribe', '--publish', '--permission', '--ttl', '--admin']],
    ] as const) {
      const result = await run([command, '--help']);
      assert.equal(result.code, 0);
      for (const text of expected)
        assert.ok(result.stdout.includes(text), `${command} --help mentions ${text}`);
    }
  });

  test('SIGTERM: streams get a retry hint and end, and the process exits within 5 s', async () => {
    const { child, url } = await startServe(['--retry', '2s']);
    const stream = await openStream(`${url}/v1/events?topic=t`);
    await stream.until((s) => s.events.length >= 1);
    const retryHints = () => (stream.raw.match(/^retry: \d+$/gm) ?? []).length;
    assert.equal(retryHints(), 1, 'the retry hint every stream opens with');
    const started = Date.now();
    child.kill('SIGTERM');
    const code = await exited(child);
    assert.equal(code, 0);
    assert.ok(Date.now() - started < 5000, `exited after ${Date.now() - started} ms`);
    await stream.untilEnded();
    assert.equal(retryHints(), 2, 'a second retry hint before the end');
    assert.ok((stream.retry ?? 0) >= 2000 && (stream.retry ?? 0) <= 4000, `jittered retry ${stream.retry}`);
    await assert.rejects(fetch(`${url}/healthz`), 'no longer accepting');
  });

  test('the built bin runs (npm test builds it first)', async () => {
    assert.ok(existsSync(BUILT), `${BUILT} is missing: run npm run build`);
    const result = await run(['--version'], {}, BUILT);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^\d+\.\d+\.\d+/);
  });
});
