import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, beforeEach, describe, test } from 'node:test';
import { createHerald, type HeraldOptions } from '../../src/herald.ts';
import { sleep, startHub, type TestHub } from '../helpers/server.ts';
import { bearer, SECRET, token } from '../helpers/tokens.ts';

/**
 * `--auth-url` (docs/hooks.md): a stream or publish without a Herald token is put to the app's
 * endpoint, here a real HTTP server in the test that counts its calls and answers as each test
 * says. A hook that says no is a 401/403; one that hangs, fails or answers garbage is a 503 with
 * Retry-After within the timeout, and never holds up a request that has a token.
 */

interface Call {
  readonly headers: IncomingMessage['headers'];
  readonly body: { action: string; method: string; path: string; query: string };
}

type Answer = (call: Call, response: ServerResponse) => unknown;

/** The app: answers with `answer`, records every call. */
class App {
  readonly calls: Call[] = [];
  answer: Answer = (_call, response) => json(response, 200, { allow: false });
  private readonly server: Server;
  private readonly hanging = new Set<ServerResponse>();
  url = '';

  constructor() {
    this.server = createServer((request, response) => {
      let text = '';
      request.setEncoding('utf8');
      request.on('data', (chunk: string) => {
        text += chunk;
      });
      request.on('end', () => {
        const call = { headers: request.headers, body: JSON.parse(text) as Call['body'] };
        this.calls.push(call);
        void this.answer(call, response);
      });
    });
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/herald/auth`;
  }

  /** Never answers (until the app stops). */
  hang(response: ServerResponse): void {
    this.hanging.add(response);
  }

  async stop(): Promise<void> {
    for (const response of this.hanging) response.destroy();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

function json(response: ServerResponse, status: number, body: unknown): void {
  response.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

/** The session a cookie names, as the app's own login would have set it. */
const sessionOf = (call: Call) => /(?:^|;\s*)session=([^;]+)/.exec(call.headers.cookie ?? '')?.[1];

/** alice is of tenant acme, may see her own private topic and publish to chat rooms; bob is refused. */
const sessions: Answer = (call, response) => {
  const session = sessionOf(call);
  if (session === 'alice') {
    json(response, 200, {
      allow: true,
      tenant: 'acme',
      subject: 'alice',
      subscribe: ['users/alice'],
      publish: ['chat/{room}'],
      expiresIn: 60,
    });
  } else json(response, 200, { allow: false, reason: 'not signed in' });
};

const ORIGIN = 'https://app.example';

async function problem(response: Response): Promise<{ status: number; code: string; detail: string }> {
  const body = (await response.json()) as { code: string; detail: string };
  return { status: response.status, code: body.code, detail: body.detail };
}

const app = new App();
let hub: TestHub;
let admin: Record<string, string>;

before(async () => {
  await app.start();
  hub = await startHub({
    auth: { jwt: { secrets: [SECRET] } },
    authUrl: { url: app.url, timeoutMs: 300 },
    corsOrigins: [ORIGIN],
  });
  admin = bearer(await token({ admin: true, sub: 'ops' }));
});

after(async () => {
  await hub?.close();
  await app.stop();
});

beforeEach(() => {
  app.calls.length = 0;
  app.answer = sessions;
});

/** Distinct cookies per test, so that one test's cached answers are not another's. */
let n = 0;
const cookieOf = (session: string) => ({ cookie: `session=${session}; theme=dark; other=${++n}` });

describe('--auth-url: who a request without a token is, asked of the app', () => {
  test('allowed: the stream gets the tenant, subject and grants the app gave, and the app saw the cookie', async () => {
    const cookie = cookieOf('alice');
    const stream = await hub.subscribe('topic=users/alice', { headers: cookie });
    assert.equal(stream.status, 200);
    await stream.untilConnected();
    assert.equal(app.calls.length, 1);
    const [call] = app.calls;
    assert.equal(call?.headers.cookie, cookie.cookie);
    assert.equal(call?.headers['content-type'], 'application/json');
    assert.ok(call?.headers['x-request-id'], 'the request id, for the app to correlate');
    assert.equal(call?.body.action, 'subscribe');
    assert.equal(call?.body.method, 'GET');
    assert.equal(call?.body.path, '/v1/events');
    assert.equal(new URLSearchParams(call?.body.query).get('topic'), 'users/alice');
    // Her private events in her tenant reach her; another tenant's do not.
    const published = await hub.publish(
      [
        { topic: 'users/alice', data: 'wrong tenant', private: true, tenant: 'other' },
        { topic: 'users/alice', data: 'hers', private: true, tenant: 'acme' },
      ],
      admin,
    );
    assert.equal(published.status, 202);
    await stream.untilData(1);
    await sleep(50);
    assert.deepEqual(
      stream.data.map((event) => event.data),
      ['hers'],
    );
    stream.close();
  });

  test('the tenant is the app’s to say, never the request’s: ?tenant= of another is refused', async () => {
    const response = await fetch(`${hub.url}/v1/events?topic=users/alice&tenant=other`, {
      headers: cookieOf('alice'),
    });
    assert.deepEqual(await problem(response).then(({ status, code }) => [status, code]), [
      403,
      'tenant-forbidden',
    ]);
    // The app may place a caller in any tenant (it is the app); Herald holds it to that one.
    app.answer = (_call, response) => json(response, 200, { allow: true, tenant: 'globex', expiresIn: 60 });
    const stream = await hub.subscribe('topic=news', { headers: cookieOf('carol') });
    await stream.untilConnected();
    await hub.publish(
      [
        { topic: 'news', data: 'acme', tenant: 'acme' },
        { topic: 'news', data: 'globex', tenant: 'globex' },
      ],
      admin,
    );
    await stream.untilData(1);
    await sleep(50);
    assert.deepEqual(
      stream.data.map((event) => event.data),
      ['globex'],
    );
    stream.close();
  });

  test('answers are cached per (forwarded headers, action) until their expiry, and no longer', async () => {
    const cookie = cookieOf('alice');
    for (let i = 0; i < 3; i++) {
      const response = await fetch(`${hub.url}/v1/events/poll?topic=users/alice&wait=0`, { headers: cookie });
      assert.equal(response.status, 200);
    }
    assert.equal(app.calls.length, 1, 'one call for three polls with the same cookie');
    await fetch(`${hub.url}/v1/events/poll?topic=users/alice&wait=0`, { headers: cookieOf('alice') });
    assert.equal(app.calls.length, 2, 'another cookie is another caller');
    const publish = await fetch(`${hub.url}/v1/publish`, {
      method: 'POST',
      headers: { ...cookie, origin: ORIGIN, 'content-type': 'application/json' },
      body: JSON.stringify({ topic: 'chat/lobby', data: 1 }),
    });
    assert.equal(publish.status, 202);
    assert.equal(app.calls.length, 3, 'publishing is asked of its own');
    assert.equal(app.calls[2]?.body.action, 'publish');

    // An answer valid for 300 ms is used for 300 ms, then asked again.
    app.answer = (_call, response) =>
      json(response, 200, { allow: true, tenant: 'acme', subscribe: ['*'], expiresIn: 0.3 });
    const short = cookieOf('dave');
    const poll = () => fetch(`${hub.url}/v1/events/poll?topic=x&wait=0`, { headers: short });
    assert.equal((await poll()).status, 200);
    assert.equal((await poll()).status, 200);
    assert.equal(app.calls.length, 4);
    await sleep(350);
    assert.equal((await poll()).status, 200);
    assert.equal(app.calls.length, 5, 'asked again once the answer expired');

    // No stated expiry: not cached at all.
    app.answer = (_call, response) => json(response, 200, { allow: true });
    const forever = cookieOf('erin');
    await fetch(`${hub.url}/v1/events/poll?topic=x&wait=0`, { headers: forever });
    await fetch(`${hub.url}/v1/events/poll?topic=x&wait=0`, { headers: forever });
    assert.equal(app.calls.length, 7);
  });

  test('refused: {allow: false} is a 403 with the reason, 401 and 403 pass through, none is cached', async () => {
    const cookie = cookieOf('bob');
    const denied = await problem(await fetch(`${hub.url}/v1/events?topic=a`, { headers: cookie }));
    assert.equal(denied.status, 403);
    assert.equal(denied.code, 'auth-denied');
    assert.match(denied.detail, /not signed in/);
    await fetch(`${hub.url}/v1/events?topic=a`, { headers: cookie });
    assert.equal(app.calls.length, 2, 'a refusal is not cached');

    app.answer = (_call, response) => response.writeHead(401).end('<html>log in</html>');
    const unauthorized = await fetch(`${hub.url}/v1/events?topic=a`, { headers: cookie });
    assert.equal(unauthorized.status, 401);
    assert.match(unauthorized.headers.get('www-authenticate') ?? '', /^Bearer/);
    assert.equal((await problem(unauthorized)).code, 'auth-denied');

    app.answer = (_call, response) => response.writeHead(403).end();
    assert.equal((await fetch(`${hub.url}/v1/events?topic=a`, { headers: cookie })).status, 403);
  });

  test('a cookie-authenticated publish needs an allowed Origin, as with a token in a cookie', async () => {
    const cookie = cookieOf('alice');
    const send = (headers: Record<string, string>) =>
      fetch(`${hub.url}/v1/publish`, {
        method: 'POST',
        headers: { ...cookie, 'content-type': 'application/json', ...headers },
        body: JSON.stringify({ topic: 'chat/lobby', data: 1 }),
      });
    assert.equal((await problem(await send({}))).code, 'origin-not-allowed');
    assert.equal((await problem(await send({ origin: 'https://evil.example' }))).code, 'origin-not-allowed');
    assert.equal((await send({ origin: ORIGIN })).status, 202);
    // And the app's grants hold: alice may not publish outside the chat rooms.
    const outside = await fetch(`${hub.url}/v1/publish`, {
      method: 'POST',
      headers: { ...cookie, origin: ORIGIN, 'content-type': 'application/json' },
      body: JSON.stringify({ topic: 'users/bob', data: 1 }),
    });
    assert.equal((await problem(outside)).code, 'publish-forbidden');
  });

  test('a request with a token goes the token’s way; the app is not asked', async () => {
    const jwt = await token({ tenant: 'acme', subscribe: ['*'], sub: 'svc' });
    const stream = await hub.subscribe('topic=a', { headers: { ...bearer(jwt), cookie: 'session=alice' } });
    await stream.untilConnected();
    stream.close();
    const viaCookie = await fetch(`${hub.url}/v1/events/poll?topic=a&wait=0`, {
      headers: { cookie: `herald_token=${jwt}; session=alice` },
    });
    assert.equal(viaCookie.status, 200);
    const forged = await fetch(`${hub.url}/v1/events/poll?topic=a&wait=0`, {
      headers: { authorization: 'Bearer not-a-token', cookie: 'session=alice' },
    });
    assert.equal(forged.status, 401, 'an invalid token is refused, not handed to the app');
    assert.equal(app.calls.length, 0);
    // Stats are not the hook's: they need an admin token.
    const stats = await fetch(`${hub.url}/v1/stats`, { headers: cookieOf('alice') });
    assert.equal((await problem(stats)).code, 'token-required');
  });

  test('concurrent identical requests share one call', async () => {
    app.answer = async (call, response) => {
      await sleep(150);
      await sessions(call, response);
    };
    const cookie = cookieOf('alice');
    const responses = await Promise.all(
      Array.from({ length: 12 }, () =>
        fetch(`${hub.url}/v1/events/poll?topic=users/alice&wait=0`, { headers: cookie }),
      ),
    );
    assert.deepEqual(
      responses.map((response) => response.status),
      Array(12).fill(200),
    );
    assert.equal(app.calls.length, 1);
    const stats = (await (await fetch(`${hub.url}/v1/stats`, { headers: admin })).json()) as {
      authUrl: { shared: number };
    };
    assert.ok(stats.authUrl.shared >= 11, `shared: ${stats.authUrl.shared}`);
  });
});

describe('--auth-url: an endpoint that fails is a 503 with Retry-After, within the timeout', () => {
  const expect503 = async (code: string, headers = cookieOf('alice')) => {
    const started = performance.now();
    const response = await fetch(`${hub.url}/v1/events?topic=a`, { headers });
    const elapsed = performance.now() - started;
    const body = await problem(response);
    assert.equal(body.status, 503, JSON.stringify(body));
    assert.equal(body.code, code);
    assert.equal(response.headers.get('retry-after'), '2');
    return elapsed;
  };

  test('garbage, a 5xx, a redirect, a huge body: each a 503, never cached', async () => {
    app.answer = (_call, response) => response.writeHead(200).end('<html>oops</html>');
    await expect503('auth-answer-invalid');
    app.answer = (_call, response) => response.writeHead(500).end('{}');
    await expect503('auth-unavailable');
    app.answer = (_call, response) => response.writeHead(302, { location: 'http://127.0.0.1:1/' }).end();
    await expect503('auth-unavailable');
    app.answer = (_call, response) =>
      json(response, 200, { allow: true, expiresIn: 60, padding: 'x'.repeat(100_000) });
    await expect503('auth-unavailable');
    // The app recovers: the next request is let in (the failures were not remembered).
    app.answer = sessions;
    const cookie = cookieOf('alice');
    assert.equal((await fetch(`${hub.url}/v1/events/poll?topic=a&wait=0`, { headers: cookie })).status, 200);
  });

  test('malformed grants are a 503, not a 200 with whatever could be read', async () => {
    const answers: unknown[] = [
      { allow: true, subscribe: 'users/alice' },
      { allow: true, subscribe: [42] },
      { allow: true, publish: ['a\u0000b'] },
      { allow: true, tenant: '*' },
      { allow: true, tenant: 7 },
      { allow: true, admin: true },
      { allow: true, admin: 'yes' },
      { allow: true, expiresIn: -5 },
      { allow: true, expiresAt: 1 },
      { allow: 'yes' },
      [true],
      null,
    ];
    for (const answer of answers) {
      app.answer = (_call, response) => json(response, 200, answer);
      const response = await fetch(`${hub.url}/v1/events?topic=a`, { headers: cookieOf('alice') });
      const body = await problem(response);
      assert.deepEqual([body.status, body.code], [503, 'auth-answer-invalid'], JSON.stringify(answer));
    }
  });

  test('a hanging endpoint: 503 within the timeout, while a request with a token is served at once', async () => {
    app.answer = (_call, response) => app.hang(response);
    const jwt = await token({ tenant: 'acme', subscribe: ['*'], sub: 'svc' });
    const hung = expect503('auth-unavailable');
    await sleep(50);
    const started = performance.now();
    const withToken = await hub.subscribe('topic=a', { headers: bearer(jwt) });
    await withToken.untilConnected();
    const tokenMs = performance.now() - started;
    withToken.close();
    const hungMs = await hung;
    assert.ok(hungMs >= 250 && hungMs < 1_500, `refused after ${Math.round(hungMs)} ms (timeout 300 ms)`);
    assert.ok(tokenMs < 250, `the token's stream opened in ${Math.round(tokenMs)} ms, not after the hook`);
  });

  test('an endpoint that is down: 503 at once', async () => {
    const down = await startHub({
      auth: { jwt: { secrets: [SECRET] } },
      authUrl: { url: 'http://127.0.0.1:1/auth', timeoutMs: 300 },
    });
    try {
      const response = await fetch(`${down.url}/v1/events?topic=a`, { headers: cookieOf('alice') });
      assert.equal((await problem(response)).code, 'auth-unavailable');
      assert.equal(response.headers.get('retry-after'), '2');
    } finally {
      await down.close();
    }
  });
});

describe('--auth-url without JWT keys, and the options', () => {
  test('the hub is not open: stats need a token it cannot have; streams and publishes go to the app', async () => {
    const only = await startHub({ authUrl: { url: app.url } });
    try {
      assert.equal(only.herald.open, false);
      const stats = await fetch(`${only.url}/v1/stats`);
      assert.equal((await problem(stats)).code, 'token-required');
      // No Herald tokens exist here: the Authorization header is the app's own, and forwarded.
      app.answer = (call, response) =>
        call.headers.authorization === 'Bearer app-session'
          ? json(response, 200, { allow: true, subscribe: ['*'], expiresIn: 60 })
          : json(response, 401, {});
      const ok = await fetch(`${only.url}/v1/events/poll?topic=a&wait=0`, {
        headers: { authorization: 'Bearer app-session' },
      });
      assert.equal(ok.status, 200);
      const no = await fetch(`${only.url}/v1/events/poll?topic=a&wait=0`);
      assert.equal(no.status, 401);
    } finally {
      await only.close();
    }
  });

  test('credentials in the URL are sent as Basic, never in the URL', async () => {
    const url = new URL(app.url);
    url.username = 'herald';
    url.password = 'p@ss';
    const basic = await startHub({ authUrl: { url: url.href, forwardHeaders: ['cookie'] } });
    try {
      app.answer = (_call, response) => json(response, 200, { allow: true });
      app.calls.length = 0;
      const response = await fetch(`${basic.url}/v1/events/poll?topic=a&wait=0`, { headers: cookieOf('x') });
      assert.equal(response.status, 200);
      assert.equal(
        app.calls[0]?.headers.authorization,
        `Basic ${Buffer.from('herald:p@ss').toString('base64')}`,
      );
    } finally {
      await basic.close();
    }
  });

  test('admin through the hook only when allowed; bad options refused at start', async () => {
    const trusting = await startHub({ authUrl: { url: app.url, allowAdmin: true } });
    try {
      app.answer = (_call, response) => json(response, 200, { allow: true, admin: true, expiresIn: 60 });
      const response = await fetch(`${trusting.url}/v1/events/poll?topic=a&tenant=*&wait=0`, {
        headers: cookieOf('root'),
      });
      assert.equal(response.status, 200);
    } finally {
      await trusting.close();
    }
    assert.throws(() => startHubSync({ authUrl: { url: 'ftp://x' } }), /http/);
    assert.throws(
      () => startHubSync({ authUrl: { url: app.url, forwardHeaders: ['content-length'] } }),
      /frames/,
    );
    assert.throws(
      () => startHubSync({ authUrl: { url: app.url }, authenticate: () => ({}) as never }),
      /one of them/,
    );
  });
});

/** Constructing is where options are checked; nothing is listened on. */
function startHubSync(options: HeraldOptions): void {
  void createHerald(options).close();
}
