import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { ConfigError, resolveConfig } from '../../src/server/config.ts';
import { loadConfigFile, parseConfigText, parseYaml } from '../../src/server/config-file.ts';
import { killAllHubs, spawnHub } from '../helpers/nodes.ts';
import { makeCertificate } from '../helpers/tls.ts';
import { killAllCli, runCli } from './run-cli.ts';

const dir = mkdtempSync(join(tmpdir(), 'herald-config-'));
const file = (name: string, text: string) => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};

after(async () => {
  await killAllCli();
  await killAllHubs();
  rmSync(dir, { recursive: true, force: true });
});

const SECRET = 'config-file-test-secret-long-enough-for-hs256';

describe('the YAML Herald reads', () => {
  test('key: value lines, comments, quotes, lists and | blocks', () => {
    assert.deepEqual(
      parseYaml(
        [
          '---',
          '# a comment',
          'port: 8080',
          'host: 0.0.0.0   # trailing comment',
          'broker: redis://redis:6379/2',
          'stream: "my#stream"',
          "cookie-name: 'it''s'",
          'cors-origin: [https://a.example, "https://b.example"]',
          'anonymous: true',
          'jwt-audience:',
          'bridge:',
          '  - redis:orders:* -> orders/{1}',
          '  - "nats:a.b -> c"',
          'tls-cert: |',
          '  -----BEGIN CERTIFICATE-----',
          '  MIIB',
          '  -----END CERTIFICATE-----',
          'retry: 2s',
        ].join('\n'),
      ),
      {
        port: 8080,
        host: '0.0.0.0',
        broker: 'redis://redis:6379/2',
        stream: 'my#stream',
        'cookie-name': "it's",
        'cors-origin': ['https://a.example', 'https://b.example'],
        anonymous: true,
        'jwt-audience': null,
        bridge: ['redis:orders:* -> orders/{1}', 'nats:a.b -> c'],
        'tls-cert': '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n',
        retry: '2s',
      },
    );
  });

  test('anything else is refused with its line number', () => {
    assert.throws(() => parseYaml('port: 1\nlimits:\n  max-batch: 3\n'), /line 3: indented line/);
    assert.throws(() => parseYaml('a: &anchor 1'), /line 1: anchors, aliases, tags/);
    assert.throws(() => parseYaml('port 8080'), /line 1: expected "name: value"/);
    assert.throws(() => parseYaml('port: 1\nport: 2'), /line 2: port is set twice/);
  });

  test('names are the flags in any spelling; an unknown one is named with the nearest setting', () => {
    assert.deepEqual(parseConfigText('history-size: 5\nhistoryMaxAge: 1h\nmax_batch: 7\n', 'h.yaml').values, {
      historySize: 5,
      historyMaxAge: '1h',
      maxBatch: 7,
    });
    assert.deepEqual(parseConfigText('{"port": 1, "corsOrigin": ["x"]}', 'h.json').values, {
      port: 1,
      corsOrigin: ['x'],
    });
    assert.throws(
      () => parseConfigText('prot: 1\nheartbeet: 2s\n', 'h.yaml'),
      (error: ConfigError) =>
        error instanceof ConfigError &&
        /h\.yaml: "prot" is not a setting \(did you mean port\?\)/.test(error.problems[0] ?? '') &&
        /"heartbeet" is not a setting \(did you mean heartbeat\?\)/.test(error.problems[1] ?? ''),
    );
    assert.throws(() => parseConfigText('{"port": ', 'h.json'), /h\.json: not valid JSON/);
    assert.throws(
      () => loadConfigFile(join(dir, 'missing.yaml')),
      /cannot read .*missing\.yaml: no such file/,
    );
  });

  test('flags over variables over the file over defaults, each value checked as a flag would be', () => {
    const path = file('order.yaml', 'history-size: 5\nheartbeat: 2s\nretry: 3s\n');
    const values = loadConfigFile(path);
    const config = resolveConfig({ historySize: '9' }, { HERALD_HEARTBEAT: '4s' }, values);
    assert.equal(config.historySize, 9);
    assert.equal(config.heartbeat, 4000);
    assert.equal(config.retry, 3000);
    assert.equal(config.port, 8080);
    assert.throws(
      () => resolveConfig({}, {}, loadConfigFile(file('bad.yaml', 'port: high\n'))),
      /--port \(HERALD_PORT, PORT\): "high" is not a whole number from 0 to 65535 \(set in .*bad\.yaml\)/,
    );
  });
});

describe('herald serve --config', () => {
  test('serves with the file, HERALD_CONFIG names it too, and flags and variables override it', async () => {
    const yaml = file('herald.yaml', 'history-size: 7\nheartbeat: 200ms\n');
    const json = file('herald.json', JSON.stringify({ historySize: 11 }));
    const fromFile = await spawnHub(['--config', yaml]);
    const fromEnv = await spawnHub([], { HERALD_CONFIG: json });
    const overridden = await spawnHub(['--config', yaml, '--history-size', '3'], {
      HERALD_HISTORY_SIZE: '4',
    });
    const byVariable = await spawnHub(['--config', yaml], { HERALD_HISTORY_SIZE: '4' });
    try {
      assert.match(fromFile.output(), /history: 7 events/);
      assert.match(fromEnv.output(), /history: 11 events/);
      assert.match(overridden.output(), /history: 3 events/);
      assert.match(byVariable.output(), /history: 4 events/);
    } finally {
      await Promise.all([fromFile.kill(), fromEnv.kill(), overridden.kill(), byVariable.kill()]);
    }
    const unknown = await runCli(['serve', '--config', file('typo.yaml', 'prot: 1\n')]);
    assert.equal(unknown.code, 2);
    assert.match(
      unknown.stderr,
      /^herald serve: .*typo\.yaml: "prot" is not a setting \(did you mean port\?\)/,
    );
    assert.match(unknown.stderr, /\nsee herald serve --help\n$/);
  });
});

describe('herald config check', () => {
  test('prints the effective settings, where each came from, secrets masked, and exits 0', async () => {
    const path = file(
      'check.yaml',
      `port: 9090\njwt-secret: "${SECRET}"\nbroker: redis://:hunter2-password@redis:6379\n`,
    );
    const run = await runCli(['config', 'check', '--config', path, '--heartbeat', '5s'], {
      HERALD_HISTORY_SIZE: '77',
      HERALD_PROT: '1',
    });
    assert.equal(run.code, 0, run.stderr);
    const row = (name: string) =>
      run.stdout.split('\n').find((line) => line.trimStart().startsWith(`${name} `)) ?? '';
    assert.match(row('port'), /^ {2}port +9090 +.*check\.yaml$/);
    assert.match(row('history-size'), /77 +HERALD_HISTORY_SIZE$/);
    assert.match(row('heartbeat'), /5s +--heartbeat$/);
    assert.match(row('retry'), /1s +default$/);
    assert.match(row('jwt-secret'), /\(set\) +.*check\.yaml$/);
    assert.match(row('broker'), /redis:\/\/:\*\*\*@redis:6379 /);
    assert.doesNotMatch(run.stdout, /hunter2|config-file-test-secret/);
    for (const group of ['Server:', 'Broker and history:', 'Auth:', 'Limits:', 'Mercure:', 'Observability:'])
      assert.ok(run.stdout.includes(`\n${group}\n`) || run.stdout.startsWith(`${group}\n`), group);
    assert.match(run.stdout, /warning: HERALD_PROT is not a setting \(did you mean HERALD_PORT\?\)/);
    assert.match(run.stdout, /the configuration is valid\n$/);
  });

  test('prints every problem, including what serve would find only at start, and exits 2', async () => {
    const cert = makeCertificate();
    try {
      const [values, tls, open] = await Promise.all([
        runCli(['config', 'check', '--port', 'x'], { HERALD_MAX_BATCH: '0' }),
        runCli(['config', 'check', '--tls-cert', cert.certFile, '--tls-key', join(dir, 'no-key.pem')]),
        runCli(['config', 'check', '--host', '0.0.0.0']),
      ]);
      assert.equal(values.code, 2);
      assert.match(values.stderr, /herald config check: --port .*"x" is not a whole number/);
      assert.match(
        values.stderr,
        /herald config check: --max-batch .*"0" is not a whole number of 1 or more/,
      );
      assert.match(values.stderr, /\nsee herald config check --help\n$/);
      assert.equal(tls.code, 2);
      assert.match(tls.stderr, /--tls-key \(HERALD_TLS_KEY\): cannot read .*no-key\.pem/);
      assert.equal(open.code, 2);
      assert.match(
        open.stderr,
        /--host 0\.0\.0\.0: open development mode .* is refused on a non-loopback address/,
      );
      assert.equal(values.stdout + tls.stdout + open.stdout, '');
    } finally {
      cert.remove();
    }
  });
});
