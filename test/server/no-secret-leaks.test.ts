import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { SignJWT } from 'jose';
import { type HubProcess, killAllHubs, spawnHub } from '../helpers/nodes.ts';
import { makeCertificate, type TestCertificate } from '../helpers/tls.ts';
import { closedPort, killAllCli, runCli } from './run-cli.ts';

/**
 * No help screen, log line, CLI message, `config check` output or problem body ever holds a
 * secret's value. Every secret-bearing variable and flag is set to a value carrying MARK, the hub
 * runs with them at the most verbose level while requests carrying more such values are refused,
 * and MARK must appear nowhere.
 */

const MARK = `mk${randomBytes(6).toString('hex')}`;
/** A secret with the marker in it, long enough to be accepted as an HMAC secret. */
const secret = (what: string) => `${MARK}-${what}-long-enough-for-an-hmac-secret`;

let hub: HubProcess;
let cert: TestCertificate;
let port: number;
let env: Record<string, string>;
const dir = mkdtempSync(join(tmpdir(), 'herald-secrets-'));

/** Every secret-bearing setting the hub and the CLI read from the environment. */
function secretEnv(closed: number): Record<string, string> {
  return {
    HERALD_JWT_SECRET: secret('jwt-secret'),
    MERCURE_PUBLISHER_JWT_KEY: secret('mercure-publisher-key'),
    HERALD_MERCURE_SUBSCRIBER_JWT_KEY: secret('mercure-subscriber-key'),
    // A broker that is down, with a password: the hub starts alone on memory and says why.
    HERALD_BROKER: `redis://herald:${secret('redis-password')}@127.0.0.1:${closed}`,
    HERALD_ON_BROKER_DOWN: 'local',
    HERALD_BRIDGE_REDIS: `redis://:${secret('bridge-redis')}@127.0.0.1:${closed}`,
    HERALD_BRIDGE_NATS: `nats://${secret('bridge-nats-token')}@127.0.0.1:${closed}`,
    HERALD_TOKEN: secret('cli-token'),
    // Down too: a token the secret does not verify sends the hub to it, and it fails.
    HERALD_JWKS_URL: `http://jwks:${secret('jwks-password')}@127.0.0.1:${closed}/jwks?access_token=${secret('jwks-token')}`,
  };
}

function assertClean(text: string, where: string): void {
  const at = text.indexOf(MARK);
  assert.equal(at, -1, `${where} holds a secret: …${text.slice(Math.max(0, at - 80), at + 60)}…`);
}

before(async () => {
  port = await closedPort();
  env = secretEnv(port);
  cert = makeCertificate();
  hub = await spawnHub(['--log-level', 'trace', '--log-format', 'json'], env);
});

after(async () => {
  await killAllCli();
  await killAllHubs();
  cert?.remove();
  rmSync(dir, { recursive: true, force: true });
});

/** A JWT signed with a key the hub does not know, its claims full of the marker. */
async function forged(): Promise<string> {
  return new SignJWT({ herald: { tenant: secret('claim-tenant'), admin: true }, note: secret('claim') })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(secret('claim-sub'))
    .setExpirationTime('1h')
    .sign(new TextEncoder().encode(secret('attacker-key')));
}

describe('no secret in any output', () => {
  test('help screens', async () => {
    const helps = [
      ['--help'],
      ['serve', '--help'],
      ['token', '--help'],
      ['publish', '--help'],
      ['listen', '--help'],
      ['health', '--help'],
      ['config', 'check', '--help'],
      ['admin', 'history', '--help'],
    ];
    const runs = await Promise.all(
      helps.map((args) =>
        runCli(args, {
          ...env,
          HERALD_URL: `http://herald:${secret('url-password')}@127.0.0.1:${port}`,
          HERALD_JWKS_URL: `https://keys.example/jwks?access_token=${secret('jwks-token')}`,
          HERALD_TLS_KEY: `-----BEGIN PRIVATE KEY-----\n${secret('tls-key')}\n-----END PRIVATE KEY-----`,
        }),
      ),
    );
    runs.forEach((run, i) => {
      assert.equal(run.code, 0, `${helps[i]?.join(' ')}: ${run.stderr}`);
      assertClean(run.stdout + run.stderr, `herald ${helps[i]?.join(' ')}`);
    });
    // Said to be set, which is what the reader needs to know.
    assert.match(runs[2]?.stdout ?? '', /signing secret \(env: HERALD_JWT_SECRET, set\)/);
    assert.match(runs[3]?.stdout ?? '', /bearer token \(env: HERALD_TOKEN, set\)/);
  });

  test('config check, valid and not, from variables, flags and a config file', async () => {
    const file = join(dir, 'secrets.yaml');
    writeFileSync(
      file,
      [
        `jwt-secret: "${secret('file-jwt-secret')}"`,
        `mercure-subscriber-jwt-key: "${secret('file-mercure-key')}"`,
        `jwks-url: "https://jwks:${secret('file-jwks-password')}@keys.example/jwks"`,
        `bridge-nats: "nats://${secret('file-nats-token')}@nats:4222"`,
      ].join('\n'),
    );
    const pem = `-----BEGIN PRIVATE KEY-----\n${secret('tls-key')}\n-----END PRIVATE KEY-----`;
    const runs = await Promise.all([
      runCli(['config', 'check'], env),
      runCli(['config', 'check', '--config', file]),
      runCli(['config', 'check', '--jwt-secret', secret('flag-jwt-secret'), '--tls-cert', cert.certFile], {
        HERALD_TLS_KEY: pem,
      }),
      // Too short: refused, and still not printed.
      runCli(['config', 'check', '--jwt-secret', `${MARK}-short`], { MERCURE_PUBLISHER_JWT_KEY: `${MARK}x` }),
      runCli(['config', 'check', '--broker', `redis://u:${MARK}@`, '--jwks-url', `ftp://u:${MARK}@keys`]),
    ]);
    assert.deepEqual(
      runs.map((run) => run.code),
      [0, 0, 2, 2, 2],
      runs.map((run) => run.stderr).join('\n'),
    );
    assert.match(runs[0]?.stdout ?? '', /jwt-secret +\(set\) +HERALD_JWT_SECRET/);
    assert.match(runs[0]?.stdout ?? '', /broker +redis:\/\/herald:\*\*\*@127\.0\.0\.1:\d+ /);
    runs.forEach((run, i) => {
      assertClean(run.stdout + run.stderr, `config check #${i + 1}`);
    });
  });

  test('serve that cannot start, token, publish, listen and health', async () => {
    const pem = `-----BEGIN PRIVATE KEY-----\n${secret('tls-key')}\n-----END PRIVATE KEY-----`;
    const runs = await Promise.all([
      runCli(['serve', '--port', '0', '--broker', `redis://:${secret('redis')}@127.0.0.1:${port}`]),
      runCli(['serve', '--port', '0', '--jwt-secret', `${MARK}-short`]),
      runCli(['serve', '--port', '0', '--tls-cert', cert.certFile, '--tls-key', pem]),
      runCli(['serve', '--port', 'abc', '--mercure-publisher-jwt-key', `${MARK}`]),
      runCli(['token', '--ttl', 'soon', '--secret', secret('token-secret')]),
      runCli(['publish', '--url', hub.url, '--topic', 't', '--data', '1'], env),
      runCli(['publish', '--url', hub.url, '--topic', 't', '--data', '1', '--token', await forged()]),
      runCli(['listen', '--url', hub.url, '--topic', 't'], env),
      runCli(['publish', '--topic', 't', '--data', '1'], {
        HERALD_URL: `http://herald:${secret('url-password')}@127.0.0.1:${port}`,
      }),
      runCli(['health', '--url', `http://herald:${secret('url-password')}@127.0.0.1:${port}`]),
      runCli([
        'publish',
        '--topic',
        't',
        '--data',
        '1',
        '--url',
        `http://127.0.0.1:${port}/?access_token=${MARK}`,
      ]),
    ]);
    runs.forEach((run, i) => {
      assert.notEqual(run.code, 0, `run #${i + 1} fails`);
      assert.notEqual(run.stdout + run.stderr, '', `run #${i + 1} says why`);
      assertClean(run.stdout + run.stderr, `run #${i + 1}`);
    });
  });

  test('problem bodies and log lines of the hub, across its error paths', async () => {
    const jwt = await forged();
    const cookie = `herald_token=${secret('cookie')}; session=${secret('session-cookie')}; mercureAuthorization=${jwt}`;
    // RS256 with a key id: only the JWKS could verify it.
    const rs256 = `eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.${Buffer.from(JSON.stringify({ sub: secret('rs-sub') })).toString('base64url')}.c2ln`;
    const requests: [string, RequestInit][] = [
      ['/v1/events?topic=t', { headers: { authorization: `Bearer ${jwt}` } }],
      ['/v1/events?topic=t', { headers: { authorization: `Bearer ${rs256}` } }],
      ['/v1/events?topic=t', { headers: { authorization: `Bearer ${secret('bearer')}` } }],
      [`/v1/events?topic=t&access_token=${secret('query-token')}`, {}],
      ['/v1/events?topic=t', { headers: { cookie } }],
      ['/v1/events/poll?topic=t', { headers: { cookie } }],
      [
        '/v1/publish',
        {
          method: 'POST',
          headers: { authorization: `Bearer ${jwt}`, 'content-type': 'application/json' },
          body: JSON.stringify({ topic: 't', data: 1 }),
        },
      ],
      [
        '/v1/publish',
        {
          method: 'POST',
          headers: { cookie, 'content-type': 'application/json', 'x-api-key': secret('api-key') },
          body: '{not json',
        },
      ],
      ['/v1/subscriptions', { method: 'POST', headers: { authorization: `Bearer ${jwt}` }, body: '{}' }],
      ['/v1/stats', { headers: { authorization: `Bearer ${secret('stats-token')}` } }],
      ['/metrics', { headers: { authorization: `Bearer ${jwt}` } }],
      ['/.well-known/mercure?topic=t', { headers: { authorization: `Bearer ${jwt}` } }],
      ['/.well-known/mercure?topic=t', { headers: { cookie } }],
      [
        '/.well-known/mercure',
        {
          method: 'POST',
          headers: { authorization: `Bearer ${jwt}`, 'content-type': 'application/x-www-form-urlencoded' },
          body: 'topic=t&data=1',
        },
      ],
      [`/nowhere?token=${secret('path-token')}`, {}],
    ];
    const statuses: number[] = [];
    for (const [path, init] of requests) {
      const response = await fetch(`${hub.url}${path}`, init);
      const body = await response.text();
      statuses.push(response.status);
      assert.ok(response.status >= 400, `${init.method ?? 'GET'} ${path.replace(MARK, 'MARK')} is refused`);
      assertClean(body, `the body of ${response.status} for ${path.replace(MARK, 'MARK')}`);
      assertClean(JSON.stringify([...response.headers]), `the headers of ${response.status}`);
    }
    const code = await hub.stop();
    assert.equal(code, 0);
    const log = hub.output();
    // Not vacuous: the hub did log its start, its broker trouble and the refusals.
    assert.match(log, /listening on/);
    assert.match(log, /unreachable/);
    assert.ok((log.match(/"status":4\d\d/g) ?? []).length >= 5, `refusals are logged:\n${log}`);
    assertClean(log, 'the log of herald serve');
    assert.ok(statuses.includes(401), `statuses: ${statuses}`);
  });
});
