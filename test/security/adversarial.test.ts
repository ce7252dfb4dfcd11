import assert from 'node:assert/strict';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, afterEach, before, describe, test } from 'node:test';
import { exportJWK, exportSPKI, generateKeyPair, SignJWT } from 'jose';
import { sleep, startServe, type TestHub } from '../helpers/server.ts';
import type { SseStream } from '../helpers/sse-client.ts';
import { bearer, SECRET, token } from '../helpers/tokens.ts';

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** A raw request, so nothing on the client side normalizes what the attacker sends. */
function send(
  url: string,
  options: { method?: string; headers?: Record<string, string>; body?: string } = {},
) {
  return new Promise<Answer>((resolve, reject) => {
    const req = request(
      url,
      { method: options.method ?? 'GET', headers: options.headers, agent: false },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (text: string) => {
          body += text;
          // A stream that was accepted: enough to know, do not wait for its end.
          if (res.headers['content-type']?.startsWith('text/event-stream')) res.destroy();
        });
        res.on('close', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on('error', (error: NodeJS.ErrnoException) =>
      error.code === 'ECONNRESET' ? undefined : reject(error),
    );
    req.end(options.body);
  });
}

function assertProblem(answer: Answer, status: number, code: string, detail: RegExp, secrets: string[] = []) {
  assert.equal(answer.status, status, answer.body);
  assert.equal(answer.headers['content-type'], 'application/problem+json; charset=utf-8');
  const problem = JSON.parse(answer.body);
  assert.equal(problem.code, code);
  assert.match(problem.detail, detail);
  for (const secret of [SECRET, ...secrets])
    assert.ok(!answer.body.includes(secret), 'no secret in the answer');
}

const publishing = (jwt: string | undefined, body: unknown) => ({
  method: 'POST',
  headers: { 'content-type': 'application/json', ...(jwt === undefined ? {} : bearer(jwt)) },
  body: JSON.stringify(body),
});

describe('adversarial requests against a hub with JWT auth', () => {
  let hub: TestHub;
  let bystander: SseStream;
  let acmePublisher: string;
  /** Publishes into the default tenant, where anonymous subscribers are. */
  let publicPublisher: string;

  before(async () => {
    hub = await startServe({ jwtSecret: SECRET, jwtAudience: 'herald-tests', anonymous: true });
    acmePublisher = await token({
      tenant: 'acme',
      publish: ['orders/{id}'],
      sub: 'publisher',
      audience: 'herald-tests',
    });
    publicPublisher = await token({
      publish: ['orders/{id}'],
      sub: 'public-publisher',
      audience: 'herald-tests',
    });
    const reader = await token({
      tenant: 'acme',
      subscribe: ['orders/{id}'],
      sub: 'reader',
      audience: 'herald-tests',
    });
    bystander = await hub.subscribe(`topic=${encodeURIComponent('orders/{id}')}`, {
      headers: bearer(reader),
    });
    await bystander.until((s) => s.events.length >= 1);
  });

  afterEach(() => {
    assert.equal(bystander.ended, false, 'the stream opened before is still open');
  });

  after(async () => {
    // Whatever was thrown at it, the stream opened first still works.
    const result = await hub.publish({ topic: 'orders/1', data: 'still served' }, bearer(acmePublisher));
    assert.equal(result.status, 202);
    await bystander.until((s) => s.data.some((e) => e.data === 'still served'));
    assert.equal(bystander.ended, false);
    await hub.close();
  });

  const events = (query = 'topic=orders/1') => `${hub.url}/v1/events?${query}`;
  const publish = () => `${hub.url}/v1/publish`;

  test('no token: publishing is refused with 401 and a challenge', async () => {
    const answer = await send(publish(), publishing(undefined, { topic: 'orders/1' }));
    assertProblem(answer, 401, 'token-required', /a token is required/);
    assert.equal(answer.headers['www-authenticate'], 'Bearer realm="herald"');
  });

  test('a malformed token is 401, even where anonymous subscribers are allowed', async () => {
    assertProblem(
      await send(events(), { headers: bearer('not.a.jwt') }),
      401,
      'token-malformed',
      /well-formed/,
    );
    assertProblem(
      await send(events(), { headers: { authorization: 'Basic abc' } }),
      401,
      'token-malformed',
      /Bearer/,
    );
  });

  test('alg none is refused', async () => {
    const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
    const unsigned = `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ herald: { admin: true }, aud: 'herald-tests' })}.`;
    assertProblem(await send(events(), { headers: bearer(unsigned) }), 401, 'token-alg-none', /alg none/, [
      unsigned,
    ]);
  });

  test('a bad signature is refused', async () => {
    const forged = await token({
      admin: true,
      audience: 'herald-tests',
      secret: 'guessed-secret-of-the-attacker-xx',
    });
    assertProblem(
      await send(events(), { headers: bearer(forged) }),
      401,
      'token-signature-invalid',
      /signature/,
      [forged],
    );
  });

  test('an expired token is refused with its expiry time', async () => {
    const expired = await token({ tenant: 'acme', audience: 'herald-tests', expiresIn: -120 });
    const answer = await send(events(), { headers: bearer(expired) });
    assertProblem(answer, 401, 'token-expired', /expired at \d{4}-\d\d-\d\dT/, [expired]);
    assert.match(String(answer.headers['www-authenticate']), /error="invalid_token"/);
  });

  test('a token not yet valid is refused', async () => {
    const early = await token({ tenant: 'acme', audience: 'herald-tests', notBefore: 600 });
    assertProblem(
      await send(events(), { headers: bearer(early) }),
      401,
      'token-not-yet-valid',
      /not valid before/,
      [early],
    );
  });

  test('a token for another audience is refused', async () => {
    const other = await token({ tenant: 'acme', audience: 'some-other-service' });
    assertProblem(
      await send(events(), { headers: bearer(other) }),
      401,
      'token-audience-invalid',
      /herald-tests/,
      [other],
    );
  });

  test('a tenant claim that differs from a query parameter is 403, never a switch of tenant', async () => {
    const acme = await token({ tenant: 'acme', audience: 'herald-tests' });
    const answer = await send(events('topic=orders/1&tenant=globex'), { headers: bearer(acme) });
    assertProblem(answer, 403, 'tenant-forbidden', /tenant "acme".*"globex"/);
  });

  test('publishing to a topic outside the grants is 403 naming the topic', async () => {
    const answer = await send(
      publish(),
      publishing(acmePublisher, { topic: ['orders/1', 'invoices/1'], data: 1 }),
    );
    assertProblem(answer, 403, 'publish-forbidden', /"invoices\/1"/);
  });

  test('publishing into another tenant without admin rights is 403', async () => {
    const answer = await send(publish(), publishing(acmePublisher, { topic: 'orders/1', tenant: 'globex' }));
    assertProblem(answer, 403, 'tenant-forbidden', /admin/);
  });

  test('an oversized body is 413', async () => {
    const answer = await send(
      publish(),
      publishing(acmePublisher, { topic: 'orders/1', data: 'x'.repeat(5 * 1024 * 1024) }),
    );
    assertProblem(answer, 413, 'body-too-large', /limit is 4 MiB/);
  });

  for (const [field, event, code] of [
    ['id', { topic: 'orders/1', id: '1\nevent: admin' }, 'invalid-id'],
    ['type', { topic: 'orders/1', type: 'x\r\ndata: injected' }, 'invalid-type'],
    ['topic', { topic: 'orders/1\nid: 0' }, 'invalid-topic'],
  ] as const) {
    test(`an SSE field injection through the ${field} is 400`, async () => {
      assertProblem(await send(publish(), publishing(acmePublisher, event)), 400, code, /control character/);
    });
  }

  test('10 000 topics in one subscription are refused with the limit', async () => {
    const query = Array.from({ length: 10_000 }, (_, i) => `topic=t${i}`).join('&');
    assertProblem(
      await send(events(query)),
      400,
      'too-many-topics',
      /10000 topic selectors given; the limit is 100/,
    );
  });

  test('a private event never reaches an anonymous subscriber', async () => {
    const anonymous = await hub.subscribe('topic=orders/2');
    await anonymous.until((s) => s.events.length >= 1);
    await hub.publish({ topic: 'orders/2', private: true, data: 'private-7f3a' }, bearer(publicPublisher));
    await hub.publish({ topic: 'orders/2', data: 'public' }, bearer(publicPublisher));
    // Nor do the public events of another tenant.
    await hub.publish({ topic: 'orders/2', data: 'acme only' }, bearer(acmePublisher));
    await anonymous.untilData(1);
    await sleep(50);
    assert.deepEqual(
      anonymous.data.map((e) => e.data),
      ['public'],
    );
    assert.ok(!anonymous.raw.includes('private-7f3a'));
    anonymous.close();
  });

  test('a replay from before a private event reveals neither the event nor its id', async () => {
    const first = await hub.publish({ topic: 'orders/3', data: 'before' }, bearer(publicPublisher));
    await hub.publish(
      { topic: 'orders/3', id: 'urn:order:3:card-charged', private: true, data: 'card 4242' },
      bearer(publicPublisher),
    );
    await hub.publish({ topic: 'orders/3', data: 'after' }, bearer(publicPublisher));
    const replay = await hub.subscribe('topic=orders/3', { lastEventId: first.body.id as string });
    await replay.untilData(1);
    await sleep(50);
    assert.deepEqual(
      replay.data.map((e) => e.data),
      ['after'],
    );
    assert.ok(!replay.raw.includes('4242'));
    assert.ok(!replay.raw.includes('urn:order:3'));
    replay.close();
  });
});

describe('adversarial tokens against other key configurations', () => {
  test('HS/RS confusion: an HS256 token signed with the RS public key as secret is refused', async () => {
    const { publicKey } = await generateKeyPair('RS256');
    const pem = await exportSPKI(publicKey);
    const hub = await startServe({ jwtPublicKey: pem });
    try {
      const confused = await new SignJWT({ herald: { admin: true } })
        .setProtectedHeader({ alg: 'HS256' })
        .setExpirationTime('1h')
        .sign(new TextEncoder().encode(pem));
      const answer = await send(`${hub.url}/v1/events?topic=a`, { headers: bearer(confused) });
      assertProblem(answer, 401, 'token-alg-not-allowed', /HS256/, [pem, confused]);
    } finally {
      await hub.close();
    }
  });

  test('an unknown kid is refused after one look at the JWKS', async () => {
    const known = await generateKeyPair('ES256', { extractable: true });
    const stranger = await generateKeyPair('ES256');
    let fetches = 0;
    const jwks = createServer(async (_req, res) => {
      fetches++;
      res.setHeader('content-type', 'application/json');
      res.end(
        JSON.stringify({ keys: [{ ...(await exportJWK(known.publicKey)), kid: 'known', alg: 'ES256' }] }),
      );
    });
    await new Promise<void>((resolve) => jwks.listen(0, '127.0.0.1', resolve));
    const hub = await startServe({
      jwksUrl: `http://127.0.0.1:${(jwks.address() as AddressInfo).port}/jwks.json`,
    });
    try {
      const good = await new SignJWT({ herald: { tenant: 't' } })
        .setProtectedHeader({ alg: 'ES256', kid: 'known' })
        .setExpirationTime('1h')
        .sign(known.privateKey);
      const accepted = await send(`${hub.url}/v1/events?topic=a`, { headers: bearer(good) });
      assert.equal(accepted.status, 200);
      const unknown = await new SignJWT({ herald: { admin: true } })
        .setProtectedHeader({ alg: 'ES256', kid: 'nope' })
        .setExpirationTime('1h')
        .sign(stranger.privateKey);
      assertProblem(
        await send(`${hub.url}/v1/events?topic=a`, { headers: bearer(unknown) }),
        401,
        'token-kid-unknown',
        /"nope"/,
      );
      assert.ok(fetches >= 1 && fetches <= 2, `${fetches} fetches`);
      // More unknown kids do not turn into more fetches: refreshes are rate-limited.
      const before = fetches;
      for (let i = 0; i < 10; i++) {
        assert.equal((await send(`${hub.url}/v1/events?topic=a`, { headers: bearer(unknown) })).status, 401);
      }
      assert.equal(fetches, before);
    } finally {
      await hub.close();
      await new Promise<void>((resolve) => (jwks as Server).close(() => resolve()));
    }
  });

  test('without anonymous access, subscribing without a token is 401', async () => {
    const hub = await startServe({ jwtSecret: SECRET });
    try {
      assertProblem(await send(`${hub.url}/v1/events?topic=a`), 401, 'token-required', /a token is required/);
    } finally {
      await hub.close();
    }
  });
});

describe('a flood of connection attempts from one IP', () => {
  test('is answered 429 with Retry-After, and the streams already open are unaffected', async () => {
    const hub = await startServe({ ipConnectionRate: 5, ipConnectionBurst: 20 });
    try {
      const stream = await hub.subscribe('topic=t');
      await stream.until((s) => s.events.length >= 1);
      const answers = await Promise.all(Array.from({ length: 60 }, () => send(`${hub.url}/healthz`)));
      const refused = answers.filter((a) => a.status === 429);
      assert.ok(refused.length >= 35, `${refused.length} of 60 refused`);
      assertProblem(refused[0] as Answer, 429, 'too-many-connections', /.+/);
      assert.ok(Number(refused[0]?.headers['retry-after']) >= 1);
      assert.equal(answers.filter((a) => a.status === 200).length + refused.length, 60);
      await hub.herald.publish({ topic: 't', data: 'unaffected' });
      await stream.untilData(1);
      assert.equal(stream.ended, false);
    } finally {
      await hub.close();
    }
  });
});
