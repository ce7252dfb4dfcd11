import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ConfigError, resolveConfig, resolveSettings } from '../../src/server/config.ts';
import { maskUrl } from '../../src/server/masking.ts';
import { SETTINGS, type Setting } from '../../src/server/settings.ts';
import { formatValue } from '../../src/server/settings-text.ts';
import { closest } from '../../src/server/suggestions.ts';

describe('serve configuration', () => {
  test('defaults: port 8080 on 127.0.0.1, 10 000 events and 24 h of history, 15 s heartbeat', () => {
    const config = resolveConfig({}, {});
    assert.equal(config.port, 8080);
    assert.equal(config.host, '127.0.0.1');
    assert.equal(config.historySize, 10_000);
    assert.equal(config.historyMaxAge, 24 * 3600 * 1000);
    assert.equal(config.heartbeat, 15_000);
    assert.equal(config.overflowPolicy, 'disconnect');
  });

  test('durations and sizes take units', () => {
    const config = resolveConfig(
      {
        heartbeat: '500ms',
        historyMaxAge: '2h',
        maxLifetime: '4.5m',
        maxDataSize: '512KiB',
        outboxMaxBytes: '2mb',
      },
      {},
    );
    assert.equal(config.heartbeat, 500);
    assert.equal(config.historyMaxAge, 7_200_000);
    assert.equal(config.maxLifetime, 270_000);
    assert.equal(config.maxDataSize, 512 * 1024);
    assert.equal(config.outboxMaxBytes, 2 * 1024 * 1024);
  });

  test('flags over HERALD_ variables over PORT/HOST over defaults', () => {
    assert.equal(resolveConfig({}, { PORT: '3000' }).port, 3000);
    assert.equal(resolveConfig({}, { PORT: '3000', HERALD_PORT: '4000' }).port, 4000);
    assert.equal(resolveConfig({ port: '5000' }, { HERALD_PORT: '4000' }).port, 5000);
    assert.equal(resolveConfig({}, { HERALD_HISTORY_MAX_AGE: '1d' }).historyMaxAge, 86_400_000);
  });

  test('every invalid setting is named, with its variable', () => {
    assert.throws(
      () => resolveConfig({ port: 'abc', overflowPolicy: 'maybe' }, { HERALD_HISTORY_SIZE: '-1' }),
      (error: Error) =>
        /--port \(HERALD_PORT, PORT\)/.test(error.message) &&
        /--overflow-policy/.test(error.message) &&
        /--history-size/.test(error.message),
    );
  });

  test('--trust-proxy trusts no proxy by default, and takes a list in HERALD_TRUST_PROXY; --headers-timeout is 60 s', () => {
    const defaults = resolveConfig({}, {});
    assert.deepEqual(defaults.trustProxy, []);
    assert.equal(defaults.headersTimeout, 60_000);
    const config = resolveConfig(
      {},
      { HERALD_TRUST_PROXY: '10.0.0.0/8, loopback,fd00::/8', HERALD_HEADERS_TIMEOUT: '10s' },
    );
    assert.deepEqual(config.trustProxy, ['10.0.0.0/8', 'loopback', 'fd00::/8']);
    assert.equal(config.headersTimeout, 10_000);
    assert.throws(
      () => resolveConfig({}, { HERALD_TRUST_PROXY: 'lb.internal' }),
      /--trust-proxy \(HERALD_TRUST_PROXY\): trust proxy: "lb.internal" is not an address or a CIDR/,
    );
  });

  test('HMAC secrets shorter than 32 bytes are named with their setting; PEM keys and other algorithms are not secrets', () => {
    assert.throws(
      () =>
        resolveConfig(
          { jwtSecret: 'short', mercurePublisherJwtKey: 'also-short' },
          { MERCURE_SUBSCRIBER_JWT_KEY: 'short-too', MERCURE_SUBSCRIBER_JWT_ALG: 'HS512' },
        ),
      (error: Error) =>
        /--jwt-secret \(HERALD_JWT_SECRET\): the secret is 5 bytes long; an HMAC secret must be at least 32 bytes/.test(
          error.message,
        ) &&
        /--mercure-publisher-jwt-key .*: the secret is 10 bytes long/.test(error.message) &&
        /--mercure-subscriber-jwt-key .*: the secret is 9 bytes long/.test(error.message) &&
        /HERALD_TEST_ONLY_ALLOW_WEAK_SECRETS=1/.test(error.message),
    );
    // A key file's path is short, and no secret.
    resolveConfig({ mercurePublisherJwtKey: 'pub.pem', mercurePublisherJwtAlg: 'ES256' }, {});
    resolveConfig({ jwtSecret: 'short' }, { HERALD_TEST_ONLY_ALLOW_WEAK_SECRETS: '1' });
  });
});

describe('serve configuration, in words', () => {
  test('every refused value is said in plain words, never as a schema library says it', () => {
    const raw = /expected (number|string)|received|Invalid (input|option)|Too (small|big)|NaN/i;
    const cases: Record<string, unknown>[] = [
      { port: 'abc' },
      { port: -1 },
      { workers: 0 },
      { host: '' },
      { historySize: '1.5' },
      { historyMaxAge: '0' },
      { maxDataSize: '-3' },
      { maxSelectorLength: 5000 },
      { overflowPolicy: 'never' },
      { logLevel: 'loud' },
      { logFormat: 'xml' },
      { anonymous: 'perhaps' },
      { corsOrigin: 5 },
      { jwksUrl: 'keys' },
      { cookieName: 'a b' },
      { mercurePublisherJwtAlg: 'none' },
      { broker: 'postgres://db' },
    ];
    for (const flags of cases) {
      assert.throws(
        () => resolveConfig(flags, {}),
        (error: Error) => {
          assert.ok(error instanceof ConfigError, JSON.stringify(flags));
          assert.equal(error.problems.length, 1, error.message);
          assert.doesNotMatch(error.message, raw, error.message);
          assert.match(error.problems[0] as string, /^--[a-z-]+ \(HERALD_[A-Z_]+.*\): \S/);
          return true;
        },
      );
    }
  });

  test('a secret is never quoted back, whatever is wrong with it', () => {
    const secret = 'top-secret-but-short';
    assert.throws(
      () => resolveConfig({ jwtSecret: secret }, { MERCURE_SUBSCRIBER_JWT_KEY: secret }),
      (error: ConfigError) => !error.message.includes(secret) && error.problems.length === 2,
    );
    assert.throws(
      () => resolveConfig({ broker: 'redis//:pass-word@host' }, {}),
      (error: Error) => !error.message.includes('pass-word') && /\*\*\*@host/.test(error.message),
    );
  });

  test('where each value came from: flag, variable, file or default', () => {
    const { origins, config } = resolveSettings(
      { port: '1' },
      { HERALD_HEARTBEAT: '2s', HOST: '::1' },
      { path: 'herald.yaml', values: { retry: '3s', port: 9 } },
    );
    assert.deepEqual(origins.port, { from: 'flag' });
    assert.deepEqual(origins.heartbeat, { from: 'env', name: 'HERALD_HEARTBEAT' });
    assert.deepEqual(origins.host, { from: 'env', name: 'HOST' });
    assert.deepEqual(origins.retry, { from: 'file', path: 'herald.yaml' });
    assert.deepEqual(origins.historySize, { from: 'default' });
    assert.equal(config.retry, 3000);
  });

  test('values as they are typed, secrets as (set), URLs without credentials; the nearest name', () => {
    const s = (key: string) => SETTINGS.find((candidate) => candidate.key === key) as Setting;
    assert.equal(formatValue(s('heartbeat'), 15_000), '15s');
    assert.equal(formatValue(s('historyMaxAge'), 86_400_000), '24h');
    assert.equal(formatValue(s('historyMaxAge'), 7 * 86_400_000), '7d');
    assert.equal(formatValue(s('maxDataSize'), 1024 * 1024), '1MiB');
    assert.equal(formatValue(s('mercure'), true), 'on');
    assert.equal(formatValue(s('jwtSecret'), 'x'.repeat(40)), '(set)');
    assert.equal(formatValue(s('jwtSecret'), undefined), 'none');
    assert.equal(formatValue(s('broker'), 'redis://app:pw@redis:6379'), 'redis://app:***@redis:6379');
    assert.equal(formatValue(s('bridgeNats'), 'nats://tok@nats:4222'), 'nats://***@nats:4222');
    assert.equal(
      maskUrl('https://keys.example/jwks?access_token=abc'),
      'https://keys.example/jwks?access_token=[redacted]',
    );
    assert.equal(closest('--prot', ['--port', '--host']), '--port');
    assert.equal(closest('--secret', ['--jwt-secret', '--port']), '--jwt-secret');
    assert.equal(closest('--zzzzzz', ['--port', '--host']), undefined);
  });
});
