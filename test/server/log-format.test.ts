import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { after, describe, test } from 'node:test';
import { createLogger } from '../../src/observability/logger.ts';
import { prettyDestination, prettyLine, resolveLogFormat } from '../../src/observability/pretty.ts';
import { killAllHubs, spawnHub } from '../helpers/nodes.ts';
import { CLI, cliEnv, killAllCli, runCli } from './run-cli.ts';

const PRETTY = /^\d\d:\d\d:\d\d\.\d{3} (INFO |WARN |ERROR|DEBUG|TRACE|FATAL) \S/;

const terminals = new Set<ChildProcess>();

/**
 * Stops a hub run under script(1): the hub is in a session of its own (script makes one for the
 * terminal), so every descendant of script is killed by its pid, then script itself.
 */
function killTerminal(child: ChildProcess): void {
  if (child.pid === undefined) return;
  try {
    const table = execFileSync('ps', ['-eo', 'pid=,ppid='], { encoding: 'utf8' })
      .trim()
      .split('\n')
      .map((row) => row.trim().split(/\s+/).map(Number) as [number, number]);
    const doomed = [child.pid];
    for (let i = 0; i < doomed.length; i++) {
      for (const [pid, ppid] of table) if (ppid === doomed[i]) doomed.push(pid);
    }
    for (const pid of doomed.slice(1)) process.kill(pid, 'SIGKILL');
  } catch {
    // Gone already (or no ps): the timeout(1) around the hub ends it anyway.
  }
  child.kill('SIGKILL');
}

after(async () => {
  for (const child of terminals) killTerminal(child);
  await killAllCli();
  await killAllHubs();
});

const hasScript = (() => {
  try {
    execFileSync('script', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

describe('log format', () => {
  test('JSON lines when stdout is not a terminal (the default, auto)', async () => {
    const hub = await spawnHub([]);
    try {
      await fetch(`${hub.url}/nowhere`);
    } finally {
      await hub.stop();
    }
    const stdout = hub.output().trim().split('\n');
    assert.ok(stdout.length >= 2, hub.output());
    for (const line of stdout) assert.doesNotThrow(() => JSON.parse(line), `a JSON line: ${line}`);
  });

  test('--log-format pretty, or HERALD_LOG_FORMAT=pretty: one readable line per entry', async () => {
    for (const [args, env] of [
      [['--log-format', 'pretty'], {}],
      [[], { HERALD_LOG_FORMAT: 'pretty' }],
    ] as const) {
      const hub = await spawnHub([...args, '--log-level', 'debug'], env);
      try {
        // A refused request logs a line; a control character in it must not reach the terminal.
        await fetch(`${hub.url}/v1/events?topic=${encodeURIComponent('a\u001b[2J{')}`);
      } finally {
        await hub.stop();
      }
      const printed = hub.output().trim().split('\n');
      const listening = printed.find((line) => line.includes('listening on'));
      assert.match(listening ?? '', PRETTY);
      assert.match(
        listening ?? '',
        / INFO {2}herald \S+ listening on http:\/\/127\.0\.0\.1:\d+ .* url=http:/,
      );
      for (const line of printed) {
        assert.match(line, PRETTY, `every line pretty: ${line}`);
        assert.doesNotMatch(line, /^\{"level"/);
        assert.ok(!line.includes('\u001b'), `no raw escape in ${JSON.stringify(line)}`);
      }
    }
  });

  /**
   * A terminal that takes colours: Node's colour depth also reads CI, NO_COLOR and FORCE_COLOR
   * (under CI=true a terminal gets none), so those are left out.
   */
  const terminalEnv = () => {
    const env = cliEnv({ TERM: 'xterm-256color' });
    for (const name of ['CI', 'NO_COLOR', 'FORCE_COLOR', 'NODE_DISABLE_COLORS']) delete env[name];
    return env;
  };

  test('pretty with colours when stdout is a terminal (auto)', {
    skip: !hasScript && 'no script(1) here to give a terminal',
  }, async () => {
    // script(1) runs the hub on a pseudo-terminal; killed in `after` if the test fails, and ended
    // by timeout(1) after two minutes whatever happens.
    const child = spawn(
      'script',
      ['-qfec', `timeout -s KILL 120 "${process.execPath}" "${CLI}" serve --port 0`, '/dev/null'],
      { env: terminalEnv(), stdio: ['ignore', 'pipe', 'pipe'] },
    );
    terminals.add(child);
    let output = '';
    await new Promise<void>((resolve, reject) => {
      child.stdout?.on('data', (chunk) => {
        output += chunk;
        if (/listening on [^\n]*\n/.test(output)) resolve();
      });
      child.once('exit', () => reject(new Error(`exited: ${output}`)));
    });
    killTerminal(child);
    const line = output.split('\n').find((candidate) => candidate.includes('listening on')) ?? '';
    // Colours: the level in green, the time and fields dimmed.
    const ESC = '\u001b';
    assert.ok(line.includes(`${ESC}[32mINFO ${ESC}[0m herald `), JSON.stringify(line));
    assert.match(line, /listening on http:/);
    assert.doesNotMatch(output, /\{"level"/);
  });

  test('a format that is none of auto, pretty and json is refused in words', async () => {
    const run = await runCli(['serve', '--log-format', 'xml']);
    assert.equal(run.code, 2);
    assert.match(run.stderr, /--log-format \(HERALD_LOG_FORMAT\): "xml" is not auto, pretty or json/);
  });

  test('prettyLine: control characters escaped, an error on the same line with its first frame', () => {
    const line = prettyLine(
      JSON.stringify({
        level: 'error',
        time: '2024-01-02T03:04:05.678Z',
        pid: 1,
        msg: 'two\nlines\u001b[31m',
        requestId: 'r-1',
        detail: 'has spaces',
        err: {
          type: 'TypeError',
          message: 'boom',
          stack: 'TypeError: boom\n    at handler (file.ts:3:5)\n    at x',
        },
      }),
    );
    assert.ok(!line.includes('\n') && !line.includes('\u001b'), line);
    assert.match(line, /^\d\d:\d\d:\d\d\.678 ERROR two\\nlines\\x1b\[31m {2}/);
    assert.match(line, /requestId=r-1 detail="has spaces" err="TypeError: boom \(at file\.ts:3:5\)"$/);
    assert.doesNotMatch(line, /pid=/);
    assert.equal(prettyLine('not json \u0007'), 'not json \\x07');
    assert.equal(resolveLogFormat('auto', { write: () => true, isTTY: true }), 'pretty');
    assert.equal(resolveLogFormat('auto', { write: () => true }), 'json');
    assert.equal(resolveLogFormat('json', { write: () => true, isTTY: true }), 'json');
  });

  test('the pretty destination keeps the logger censoring credentials', () => {
    const written: string[] = [];
    const logger = createLogger({
      level: 'info',
      destination: prettyDestination({ write: (text: string) => written.push(text) }),
    });
    logger.info(
      { session: { cookie: 'sid=secret-cookie' }, url: '/v1/events?access_token=abc.def' },
      'hello',
    );
    assert.equal(written.length, 1);
    assert.doesNotMatch(written[0] as string, /secret-cookie|abc\.def/);
    assert.match(written[0] as string, /INFO {2}hello {2}session=\{"cookie":"\[redacted\]"\}/);
  });
});
