import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createLogger } from '../../src/observability/logger.ts';
import { resolveConfig } from '../../src/server/config.ts';
import { serve } from '../../src/server/serve.ts';
import { sleep, startHub } from '../helpers/server.ts';
import { openStream } from '../helpers/sse-client.ts';
import { bearer, SECRET, token } from '../helpers/tokens.ts';

const CLI = fileURLToPath(new URL('../../src/server/cli.ts', import.meta.url));

type Line = Record<string, unknown>;

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Waits (bounded) until the captured lines satisfy `condition`. */
async function until(
  lines: () => Line[],
  condition: (lines: Line[]) => boolean,
  what: string,
): Promise<void> {
  for (let attempt = 0; attempt < 200; attempt++) {
    if (condition(lines())) return;
    await sleep(25);
  }
  assert.fail(
    `no log line for ${what}; got:\n${lines()
      .map((line) => JSON.stringify(line))
      .join('\n')}`,
  );
}

describe('logs', () => {
  test('one JSON line per stream open and close and per refused request, with request ids and no secret', async () => {
    const text: string[] = [];
    const logger = createLogger({ level: 'info', destination: { write: (line: string) => text.push(line) } });
    const running = await serve(resolveConfig({ port: 0, jwtSecret: SECRET }, {}), logger);
    const lines = () => text.map((line) => JSON.parse(line) as Line);
    try {
      const jwt = await token({ tenant: 'acme', sub: 'alice' });
      // The header's id is kept; the query token (EventSource cannot send headers) is never logged.
      const named = await openStream(`${running.url}/v1/events?topic=orders&topic=invoices`, {
        headers: { ...bearer(jwt), 'x-request-id': 'req-from-proxy-1' },
      });
      const viaQuery = await openStream(`${running.url}/v1/events?topic=orders&access_token=${jwt}`);
      await Promise.all([named.untilConnected(), viaQuery.untilConnected()]);
      assert.equal(named.headers['x-request-id'], 'req-from-proxy-1');
      const generated = viaQuery.headers['x-request-id'];
      assert.match(String(generated), /^[0-9a-f-]{36}$/);

      const expired = await fetch(`${running.url}/v1/events?topic=orders`, {
        headers: { ...bearer(await token({ expiresIn: -60 })), 'x-request-id': 'req-expired' },
      });
      assert.equal(expired.status, 401);
      assert.equal(expired.headers.get('x-request-id'), 'req-expired');
      // An id that could forge log lines is replaced, not echoed.
      const forged = await fetch(`${running.url}/healthz`, { headers: { 'x-request-id': 'a"b c' } });
      assert.match(forged.headers.get('x-request-id') ?? '', /^[0-9a-f-]{36}$/);

      named.close();
      await until(lines, (all) => all.some((line) => line.event === 'connection.close'), 'the closed stream');
      const opens = lines().filter((line) => line.event === 'connection.open');
      assert.equal(opens.length, 2);
      const namedOpen = opens.find((line) => line.requestId === 'req-from-proxy-1');
      assert.ok(namedOpen, 'the open line carries the request id the client sent');
      assert.equal(namedOpen.tenant, 'acme');
      assert.equal(namedOpen.topics, 2);
      assert.equal(namedOpen.connectionId, named.connectionId);
      assert.equal(namedOpen.level, 'info');
      assert.ok(opens.some((line) => line.requestId === generated));

      const close = lines().find((line) => line.event === 'connection.close') as Line;
      assert.equal(close.connectionId, named.connectionId);
      assert.equal(close.requestId, 'req-from-proxy-1');
      assert.equal(close.reason, 'client');
      assert.equal(typeof close.durationMs, 'number');
      assert.equal(close.bytes, Buffer.byteLength(named.raw));

      const refused = lines().find((line) => line.requestId === 'req-expired');
      assert.ok(refused, 'the refused request is logged with its id');
      assert.equal(refused.code, 'token-expired');
      assert.equal(refused.status, 401);
      assert.equal(refused.path, '/v1/events');

      const all = text.join('');
      assert.ok(!all.includes(jwt), 'no line holds the token');
      assert.ok(!all.includes(SECRET), 'no line holds the secret');
      viaQuery.close();
    } finally {
      await running.close();
    }
  });

  test('an unexpected failure is logged at error with its request id, and the client gets a 500 problem', async () => {
    const text: string[] = [];
    const logger = createLogger({ destination: { write: (line: string) => text.push(line) } });
    const leaked = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl';
    const hub = await startHub({
      logger,
      authenticate: () => {
        throw new Error(`the identity service choked on ${leaked}`);
      },
    });
    try {
      const response = await fetch(`${hub.url}/v1/events?topic=a`, {
        headers: { 'x-request-id': 'req-500' },
      });
      assert.equal(response.status, 500);
      assert.equal(((await response.json()) as { code: string }).code, 'internal');
      const line = text.map((raw) => JSON.parse(raw) as Line).find((entry) => entry.requestId === 'req-500');
      assert.ok(line, 'the failure is logged with the request id');
      assert.equal(line.level, 'error');
      assert.match(
        String((line.err as { message: string }).message),
        /identity service choked on \[redacted\]/,
      );
      assert.ok(!text.join('').includes(leaked));
    } finally {
      await hub.close();
    }
  });

  test('the logger censors credentials in fields, URLs and messages', () => {
    const text: string[] = [];
    const logger = createLogger({ destination: { write: (line: string) => text.push(line) } });
    const jwt = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl';
    logger.info(
      {
        headers: { authorization: `Bearer ${jwt}`, cookie: `herald_token=${jwt}` },
        url: `/v1/events?topic=a&access_token=${jwt}`,
        config: { jwtSecret: SECRET },
      },
      `refused ${jwt}`,
    );
    logger.error({ err: new Error(`bad token ${jwt}`) }, 'failed');
    const all = text.join('');
    assert.ok(!all.includes(jwt), all);
    assert.ok(!all.includes(SECRET), all);
    const [first] = text.map((line) => JSON.parse(line) as Line);
    assert.match(String(first?.url), /access_token=\[redacted\]$/);
    assert.equal(first?.msg, 'refused [redacted]');
  });

  test('credentials are censored at any depth, whatever their case', () => {
    const text: string[] = [];
    const logger = createLogger({ destination: { write: (line: string) => text.push(line) } });
    const marker = 'marker-7d1e-never-printed';
    logger.warn(
      {
        session: { cookie: marker, user: 'alice' },
        upstream: { request: { headers: { Authorization: marker, 'Set-Cookie': marker } } },
        config: { mercurePublisherJwtKey: marker, redisPassword: marker, apiKey: marker },
        list: [{ deeper: { token: marker } }],
      },
      'nested',
    );
    const all = text.join('');
    assert.ok(!all.includes(marker), all);
    const [line] = text.map((raw) => JSON.parse(raw) as Line);
    assert.deepEqual(line?.session, { cookie: '[redacted]', user: 'alice' });
  });

  test('herald serve writes JSON lines to stdout from --log-level up, without the JWT secret', async () => {
    const secret = 'a-cli-secret-that-must-never-be-printed-anywhere';
    const run = async (level: string) => {
      const port = await freePort();
      const url = `http://127.0.0.1:${port}`;
      const child = spawn(process.execPath, [CLI, 'serve', '--port', String(port), '--log-level', level], {
        env: { ...process.env, HERALD_JWT_SECRET: secret },
      });
      let stdout = '';
      child.stdout.on('data', (chunk) => {
        stdout += chunk;
      });
      try {
        for (let attempt = 0; ; attempt++) {
          const up = await fetch(`${url}/healthz`).then(
            (response) => response.ok,
            () => false,
          );
          if (up) break;
          // A minute: it compiles its TypeScript as it starts, slowly on a busy machine.
          assert.ok(attempt < 1200, `herald serve --log-level ${level} never answered /healthz`);
          await sleep(50);
        }
        const jwt = await token({ secret });
        const stream = await openStream(`${url}/v1/events?topic=a&access_token=${jwt}`);
        await stream.untilConnected();
        stream.close();
        const parsed = () =>
          stdout.split('\n').flatMap((line) => (line.startsWith('{') ? [JSON.parse(line) as Line] : []));
        if (level === 'info') {
          await until(
            parsed,
            (all) => all.some((line) => line.event === 'connection.close'),
            'the CLI close',
          );
        } else await sleep(500);
        assert.ok(!stdout.includes(jwt), 'no token on stdout');
      } finally {
        child.kill('SIGKILL');
      }
      assert.ok(!stdout.includes(secret), 'no secret on stdout');
      return stdout;
    };
    const info = await run('info');
    assert.match(info, /listening on http:\/\/127\.0\.0\.1:\d+/);
    for (const line of info.trim().split('\n')) {
      const parsed = JSON.parse(line) as Line;
      assert.equal(typeof parsed.level, 'string', line);
      assert.equal(typeof parsed.time, 'string', line);
    }
    // At warn, only where it listens (printed at any level): nothing for the stream.
    const warn = (await run('warn')).trim().split('\n');
    assert.equal(warn.length, 1, warn.join('\n'));
    assert.match(warn[0] as string, /listening on http:\/\/127\.0\.0\.1:\d+/);
  });
});
