import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer } from 'node:net';
import { after, describe, test } from 'node:test';
import { SETTINGS } from '../../src/server/settings.ts';
import { formatValue } from '../../src/server/settings-text.ts';
import { killAllHubs, spawnHub } from '../helpers/nodes.ts';
import { CLI, cliEnv, closedPort, killAllCli, runCli } from './run-cli.ts';

/** What a schema library says when nobody put its checks in words: never shown to a person. */
const RAW_SCHEMA = /expected (number|string)|received|Invalid (input|option)|Too (small|big)|NaN|ZodError/i;

const lines = (text: string) => text.split('\n').filter((line) => line !== '');

const servers: Server[] = [];
const children = new Set<ChildProcess>();

after(async () => {
  for (const child of children) child.kill('SIGKILL');
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  await killAllCli();
  await killAllHubs();
});

/** A two-line usage error: what is wrong, then where to look; exit 2; no help screen. */
function assertUsage(run: { code: number | null; stdout: string; stderr: string }, command: string): string {
  assert.equal(run.code, 2, `exit code; stderr: ${run.stderr}`);
  assert.equal(run.stdout, '', 'nothing on stdout');
  const printed = lines(run.stderr);
  assert.ok(printed.length <= 3, `one or two lines, got:\n${run.stderr}`);
  assert.equal(printed.at(-1), `see ${command} --help`);
  assert.doesNotMatch(run.stderr, /Usage:|Options:/, 'not the help screen');
  assert.doesNotMatch(run.stderr, RAW_SCHEMA, 'plain words, no raw schema message');
  return printed[0] as string;
}

describe('a mistake in how the CLI is called', () => {
  test('an unknown flag prints one line naming the nearest flag, a pointer to --help, and exits 2', async () => {
    const [serve, secret, publish, command, far] = await Promise.all([
      runCli(['serve', '--prot', '80']),
      runCli(['serve', '--jwt-scret', 'x']),
      runCli(['publish', '--topc', 't', '--data', '1']),
      runCli(['srve']),
      runCli(['serve', '--zzzzzzzz']),
    ]);
    assert.equal(
      assertUsage(serve, 'herald serve'),
      'herald serve: unknown option --prot (did you mean --port?)',
    );
    assert.match(
      assertUsage(secret, 'herald serve'),
      /unknown option --jwt-scret \(did you mean --jwt-secret\?\)/,
    );
    assert.match(assertUsage(publish, 'herald publish'), /unknown option --topc \(did you mean --topic\?\)/);
    assert.match(assertUsage(command, 'herald'), /^herald: unknown command "srve" \(did you mean serve\?\)$/);
    assert.equal(assertUsage(far, 'herald serve'), 'herald serve: unknown option --zzzzzzzz');
  });

  test('a bad value is named with its flag and variable, in plain words, and exits 2', async () => {
    const cases: [string[], Record<string, string>, RegExp][] = [
      [['--port', 'abc'], {}, /--port \(HERALD_PORT, PORT\): "abc" is not a whole number from 0 to 65535$/],
      [['--port', '70000'], {}, /--port .*"70000" is not a whole number from 0 to 65535/],
      [
        [],
        { HERALD_OVERFLOW_POLICY: 'drop-olde' },
        /--overflow-policy \(HERALD_OVERFLOW_POLICY\): "drop-olde" is not disconnect or drop-oldest \(did you mean drop-oldest\?\)/,
      ],
      [['--max-batch', '0'], {}, /--max-batch .*"0" is not a whole number of 1 or more/],
      [['--max-streams-per-ip', '-1'], {}, /"-1" is not a whole number of 0 or more \(0: no limit\)/],
      [['--max-data-size', 'huge'], {}, /--max-data-size .*"huge" is not a size; use e\.g\. 512KiB, 1MiB/],
      [['--heartbeat', '1ms'], {}, /--heartbeat .*"1ms" is too short; use at least 10ms/],
      [['--stream', 'a b'], {}, /--stream .*use 1–64 letters, digits, - and _; got "a b"/],
      [['--log-level', 'verbose'], {}, /"verbose" is not fatal, error, warn, info, debug, trace or silent/],
      [['--jwks-url', 'ftp://keys'], {}, /--jwks-url .*"ftp:\/\/keys" is not an http:\/\/ or https:\/\/ URL/],
      [
        ['--anonymous'],
        { HERALD_MERCURE: 'maybe' },
        /--mercure .*"maybe" is not true or false; use on or off/,
      ],
      [[], { PORT: 'x' }, /--port \(HERALD_PORT, PORT\): "x" is not a whole number .* \(set by PORT\)/],
    ];
    const runs = await Promise.all(cases.map(([args, env]) => runCli(['serve', ...args], env)));
    runs.forEach((run, i) => {
      const [args, env, expected] = cases[i] as (typeof cases)[number];
      const first = assertUsage(run, 'herald serve');
      assert.match(first, /^herald serve: /);
      assert.match(first, expected, `serve ${args.join(' ')} ${JSON.stringify(env)}`);
    });
  });

  test('a missing value or a missing required flag says which, and exits 2', async () => {
    const [port, topic, count, ttl, timeout, extra] = await Promise.all([
      runCli(['serve', '--port']),
      runCli(['publish', '--data', '1']),
      runCli(['listen', '--topic', 't', '--count', 'x']),
      runCli(['token', '--secret', 's', '--ttl', 'soon']),
      runCli(['health', '--timeout', 'soon']),
      runCli(['serve', 'now']),
    ]);
    assert.equal(assertUsage(port, 'herald serve'), 'herald serve: --port needs a value (e.g. --port 8080)');
    assert.equal(assertUsage(topic, 'herald publish'), 'herald publish: --topic is required');
    assert.match(assertUsage(count, 'herald listen'), /--count: "x" is not a whole number of 1 or more/);
    assert.match(assertUsage(ttl, 'herald token'), /--ttl: "soon" is not a duration; use e\.g\. 500ms/);
    assert.match(assertUsage(timeout, 'herald health'), /--timeout: "soon" is not a duration/);
    assert.match(assertUsage(extra, 'herald serve'), /unexpected argument "now": options start with --/);
  });

  test('herald token without a secret says where to give one, and exits 2', async () => {
    const run = await runCli(['token', '--tenant', 'x']);
    assert.match(assertUsage(run, 'herald token'), /a secret is required: --secret or HERALD_JWT_SECRET/);
  });
});

describe('a failure while running', () => {
  test('a port in use: the same message with and without --workers, naming the port and what to do', async () => {
    const holder = createServer();
    await new Promise<void>((resolve) =>
      holder.listen({ host: '127.0.0.1', port: 0, exclusive: true }, resolve),
    );
    servers.push(holder as unknown as Server);
    const { port } = holder.address() as { port: number };
    const [alone, workers] = await Promise.all([
      runCli(['serve', '--port', String(port)]),
      runCli(['serve', '--port', String(port), '--workers', '2']),
    ]);
    const expected =
      `herald: cannot listen on 127.0.0.1:${port}: port ${port} is already in use (EADDRINUSE). ` +
      'Stop the program that holds it';
    for (const [mode, run] of [
      ['one process', alone],
      ['--workers 2', workers],
    ] as const) {
      assert.equal(run.code, 1, `${mode}: ${run.stderr}`);
      const printed = lines(run.stderr);
      assert.equal(printed.length, 1, `${mode}: one line, got:\n${run.stderr}`);
      assert.ok(printed[0]?.startsWith(expected), `${mode}: ${printed[0]}`);
      assert.match(
        printed[0] as string,
        /choose another port with --port \(HERALD_PORT; --port 0 takes any free one\)/,
      );
    }
    assert.equal(lines(alone.stderr)[0], lines(workers.stderr)[0], 'one message in both modes');
  });

  test('publish to a hub that is not running names the URL and what to try', async () => {
    const port = await closedPort();
    const run = await runCli(['publish', '--topic', 't', '--data', '1'], {
      HERALD_URL: `http://127.0.0.1:${port}`,
    });
    assert.equal(run.code, 1);
    assert.equal(
      run.stderr.trim(),
      `herald: cannot reach the hub at http://127.0.0.1:${port}/v1/publish (connection refused: nothing listens there). ` +
        'Is herald serve running there? Start it, or point --url (or HERALD_URL) at the hub',
    );
  });

  test('listen to a hub that is not running names the URL and keeps trying', {
    timeout: 90_000,
  }, async () => {
    const port = await closedPort();
    const child = spawn(
      process.execPath,
      [CLI, 'listen', '--topic', 't', '--url', `http://127.0.0.1:${port}`],
      {
        env: cliEnv({}),
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    children.add(child);
    let stderr = '';
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
    });
    const seen = await new Promise<string>((resolve, reject) => {
      child.stderr.on('data', () => {
        if (/reconnecting.*\n/.test(stderr)) resolve(stderr);
      });
      child.once('exit', (code) => reject(new Error(`listen exited (${code}): ${stderr}`)));
    });
    child.kill('SIGTERM');
    assert.match(
      lines(seen)[0] as string,
      new RegExp(
        `^herald: cannot reach the hub at http://127\\.0\\.0\\.1:${port}/v1/events\\?topic=t \\(connection refused: nothing listens there\\); reconnecting \\(is herald serve running there\\?`,
      ),
    );
  });

  test('a hub that wants a token: publish and listen name the URL, the status and how to pass one', async () => {
    const hub = await spawnHub([], { HERALD_JWT_SECRET: 'cli-errors-test-secret-long-enough-for-hs256' });
    try {
      const [publish, listen] = await Promise.all([
        runCli(['publish', '--url', hub.url, '--topic', 't', '--data', '1']),
        runCli(['listen', '--url', hub.url, '--topic', 't']),
      ]);
      assert.equal(publish.code, 1);
      assert.match(
        publish.stderr,
        new RegExp(
          `^herald: ${hub.url}/v1/publish answered 401: .+\\. Pass a token with --token or HERALD_TOKEN \\(\`herald token\` mints one\\)\\n$`,
        ),
      );
      assert.equal(listen.code, 1);
      assert.match(
        listen.stderr,
        new RegExp(`^herald: ${hub.url}/v1/events\\?topic=t answered 401: .+HERALD_TOKEN`),
      );
    } finally {
      await hub.kill();
    }
  });

  test('a URL that is not a hub says so', async () => {
    const server = createHttpServer((_, response) =>
      response.writeHead(404, { 'content-type': 'text/html' }).end('<h1>nope</h1>'),
    );
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    const run = await runCli(['publish', '--url', url, '--topic', 't', '--data', '1']);
    assert.equal(run.code, 1);
    assert.match(run.stderr, /answered 404: Not Found\. Is --url \(HERALD_URL\) a Herald hub's address\?/);
    assert.doesNotMatch(run.stderr, /<h1>/, 'not the page itself');
  });
});

describe('serve --help', () => {
  test('groups the settings and shows each default next to its variables', async () => {
    const run = await runCli(['serve', '--help']);
    assert.equal(run.code, 0);
    const help = run.stdout.replace(/\s+/g, ' ');
    const headings = [
      'Server:',
      'Broker and history:',
      'Streams:',
      'Auth:',
      'Limits:',
      'Mercure:',
      'Observability:',
    ];
    const at = headings.map((heading) => help.indexOf(` ${heading} `));
    assert.ok(
      at.every((index, i) => index > 0 && (i === 0 || index > (at[i - 1] as number))),
      `groups in order: ${at}`,
    );
    for (const s of SETTINGS) {
      const index = help.indexOf(` ${s.flag} `);
      assert.ok(index > 0, `${s.flag} listed`);
      const group = headings.indexOf(`${s.group}:`);
      if (group >= 0) {
        assert.ok(index > (at[group] as number), `${s.flag} under ${s.group}`);
        const next = at[group + 1];
        assert.ok(next === undefined || index < next, `${s.flag} under ${s.group}, not a later group`);
      }
      const shown = formatValue(s, s.defaultValue);
      const env = `env: ${s.env.join(' or ')})`;
      if (s.kind === 'switch' || shown === 'none') assert.ok(help.includes(env), `${s.flag}: ${env}`);
      else assert.ok(help.includes(`(default: ${shown}; ${env}`), `${s.flag} shows its default ${shown}`);
    }
    assert.ok(help.includes('(default: 24h; env: HERALD_HISTORY_MAX_AGE)'), 'durations as they are typed');
    assert.ok(help.includes('(default: 1MiB; env: HERALD_MAX_DATA_SIZE)'), 'sizes as they are typed');
  });
});
