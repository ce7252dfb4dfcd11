import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { type HubProcess, killAllHubs, spawnHub } from '../helpers/nodes.ts';
import { sleep } from '../helpers/server.ts';
import { openStream } from '../helpers/sse-client.ts';
import { bearer, SECRET, token } from '../helpers/tokens.ts';
import { closedPort, killAllCli, runCli } from './run-cli.ts';

/**
 * The app hooks' secrets (docs/hooks.md) stay out of every output, as no-secret-leaks.test.ts
 * holds the others to: `--webhook-secret`, a password in `--auth-url` or `--webhook-url`, and the
 * cookies forwarded to the app. Each carries MARK; the hub runs at the most verbose level while
 * its auth endpoint is down and its webhook endpoint answers, and MARK must appear nowhere but
 * in what the app itself is sent (its cookies, which are the app's).
 */

const MARK = `mk${randomBytes(6).toString('hex')}`;
const secret = (what: string) => `${MARK}-${what}-long-enough-for-an-hmac-secret`;

let hub: HubProcess;
let closed: number;
let receiver: Server;
const received: { headers: string; body: string }[] = [];

function assertClean(text: string, where: string): void {
  const at = text.indexOf(MARK);
  assert.equal(at, -1, `${where} holds a secret: …${text.slice(Math.max(0, at - 80), at + 60)}…`);
}

before(async () => {
  closed = await closedPort();
  receiver = createServer((request, response) => {
    let body = '';
    request.on('data', (chunk) => {
      body += chunk;
    });
    request.on('end', () => {
      received.push({ headers: JSON.stringify(request.headers), body });
      response.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  const port = (receiver.address() as AddressInfo).port;
  hub = await spawnHub(['--log-level', 'trace', '--log-format', 'json'], {
    HERALD_AUTH_URL: `http://app:${secret('auth-url-password')}@127.0.0.1:${closed}/auth`,
    HERALD_WEBHOOK_URL: `http://hooks:${secret('webhook-url-password')}@127.0.0.1:${port}/hooks`,
    HERALD_WEBHOOK_SECRET: secret('webhook-secret'),
    // Tokens too, so that a stream opens and the webhook has something to tell.
    HERALD_JWT_SECRET: SECRET,
  });
});

after(async () => {
  await killAllCli();
  await killAllHubs();
  receiver.closeAllConnections();
  await new Promise<void>((resolve) => receiver.close(() => resolve()));
});

describe('no hook secret in any output', () => {
  test('help and config check, valid and not', async () => {
    const env = {
      HERALD_AUTH_URL: `https://app:${secret('auth-url-password')}@app.example/auth`,
      HERALD_WEBHOOK_URL: `https://hooks:${secret('webhook-url-password')}@app.example/hooks`,
      HERALD_WEBHOOK_SECRET: secret('webhook-secret'),
    };
    const runs = await Promise.all([
      runCli(['serve', '--help'], env),
      runCli(['config', 'check'], env),
      runCli(['config', 'check', '--webhook-secret', `${MARK}-short`], env),
      runCli(['config', 'check', '--webhook-url', `https://u:${MARK}@app.example/hooks`]),
      runCli(['config', 'check', '--auth-url', `ftp://u:${MARK}@app.example/auth`]),
    ]);
    assert.deepEqual(
      runs.map((run) => run.code),
      [0, 0, 2, 2, 2],
      runs.map((run) => run.stderr).join('\n'),
    );
    assert.match(runs[1]?.stdout ?? '', /webhook-secret +\(set\) +HERALD_WEBHOOK_SECRET/);
    assert.match(runs[1]?.stdout ?? '', /auth-url +https:\/\/app:\*\*\*@app\.example\/auth/);
    assert.match(runs[3]?.stderr ?? '', /webhook-secret/, 'a webhook URL needs its secret');
    runs.forEach((run, i) => {
      assertClean(run.stdout + run.stderr, `run #${i + 1}`);
    });
  });

  test('problem bodies, deliveries and the log of a hub whose auth endpoint is down', async () => {
    const cookie = `session=${secret('session-cookie')}`;
    const requests: [string, RequestInit][] = [
      ['/v1/events?topic=t', { headers: { cookie } }],
      ['/v1/events/poll?topic=t&wait=0', { headers: { cookie, 'x-api-key': secret('api-key') } }],
      [
        '/v1/publish',
        {
          method: 'POST',
          headers: { cookie, 'content-type': 'application/json' },
          body: JSON.stringify({ topic: 't', data: 1 }),
        },
      ],
    ];
    for (const [path, init] of requests) {
      const response = await fetch(`${hub.url}${path}`, init);
      const body = await response.text();
      assert.equal(response.status, 503, `${path}: ${body}`);
      assert.equal(JSON.parse(body).code, 'auth-unavailable');
      assertClean(body, `the body of ${path}`);
      assertClean(JSON.stringify([...response.headers]), `the headers of ${path}`);
    }
    const stream = await openStream(`${hub.url}/v1/events?topic=t`, {
      headers: bearer(await token({ sub: 'alice' })),
    });
    await stream.untilConnected();
    stream.close();
    for (let i = 0; i < 200 && !received.some((delivery) => delivery.body.includes('stream.closed')); i++) {
      await sleep(25);
    }
    assert.ok(received.length > 0, 'the webhook was delivered');
    assert.match(received[0]?.headers ?? '', /"herald-signature":"t=\d+,v1=[0-9a-f]{64}"/);
    const code = await hub.stop();
    assert.equal(code, 0);
    const log = hub.output();
    assert.match(log, /listening on/);
    assert.match(log, /auth endpoint http:\/\/app:\*\*\*@/, `the failure is logged, masked:\n${log}`);
    assertClean(log, 'the log of herald serve');
    for (const delivery of received) {
      assertClean(delivery.headers + delivery.body, 'a webhook delivery');
    }
  });
});
