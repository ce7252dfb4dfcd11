import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { SignJWT } from 'jose';
import { sleep, startHub, type TestHub } from '../helpers/server.ts';
import { bearer, SECRET, token } from '../helpers/tokens.ts';
import { mercureStream } from '../mercure/mercure-client.ts';

/**
 * Claims of the docs that users rely on and that no other test pinned (issue 18; they were the
 * README's, and moved with their sections): each test names the page and the sentence it holds
 * the code to.
 */
describe('claims of the docs', () => {
  let hub: TestHub;
  before(async () => {
    hub = await startHub({ auth: { jwt: { secrets: [SECRET] }, anonymous: true } });
  });
  after(() => hub.close());

  test('docs/security.md, "Anonymous: … Publishing and /v1/stats always need a token": and /metrics, under anonymous too', async () => {
    for (const path of ['/v1/stats', '/metrics']) {
      const response = await fetch(`${hub.url}${path}`);
      assert.equal(response.status, 401, path);
      assert.equal(((await response.json()) as { code: string }).code, 'token-required', path);
    }
    const published = await hub.publish({ topic: 'a', data: 1 });
    assert.equal(published.status, 401);
  });

  test('docs/http-api.md, long polling: "limit (1–1 000, default 100)"', async () => {
    const publisher = bearer(await token({ publish: ['*'], sub: 'poll-publisher' }));
    const first = (await hub.publish({ topic: 'polled', data: 'first' }, publisher)).body.id as string;
    const batch = Array.from({ length: 150 }, (_, i) => ({ topic: 'polled', data: i }));
    assert.equal((await hub.publish(batch, publisher)).status, 202);
    const response = await fetch(
      `${hub.url}/v1/events/poll?topic=polled&after=${encodeURIComponent(first)}&wait=0`,
    );
    const body = (await response.json()) as { events: unknown[] };
    assert.equal(body.events.length, 100);
    const tooMany = await fetch(`${hub.url}/v1/events/poll?topic=polled&limit=1001&wait=0`);
    assert.equal(tooMany.status, 400);
  });

  test('docs/mercure.md: "Last-Event-ID or lastEventID resumes, and the header wins when both are sent"', async () => {
    const publisher = bearer(await token({ publish: ['*'], sub: 'mercure-publisher' }));
    const ids: string[] = [];
    for (const data of ['m0', 'm1', 'm2']) {
      ids.push((await hub.publish({ topic: 'precedence', data }, publisher)).body.id as string);
    }
    const stream = await mercureStream(hub.url, ['precedence'], {
      lastEventId: ids[1] as string,
      query: { lastEventID: ids[0] as string },
    });
    await stream.untilData(1);
    await sleep(100);
    assert.deepEqual(
      stream.data.map((e) => e.data),
      ['m2'],
    );
    assert.equal(stream.headers['last-event-id'], ids[1]);
    stream.close();
  });

  test('docs/mercure.md: "a Mercure subscriber with a herald.tenant sees only its tenant"', async () => {
    const signed = (tenant: string) =>
      new SignJWT({ herald: { tenant }, mercure: { subscribe: ['*'] } })
        .setProtectedHeader({ alg: 'HS256' })
        .setExpirationTime('1h')
        .sign(new TextEncoder().encode(SECRET));
    const acme = await mercureStream(hub.url, ['*'], { headers: bearer(await signed('acme')) });
    const globex = await mercureStream(hub.url, ['*'], { headers: bearer(await signed('globex')) });
    await sleep(100);
    for (const tenant of ['acme', 'globex']) {
      const publisher = bearer(await token({ tenant, publish: ['*'], sub: `${tenant}-publisher` }));
      for (const priv of [false, true]) {
        const sent = await hub.publish(
          { topic: 'orders/1', data: `${tenant}-${priv}`, private: priv },
          publisher,
        );
        assert.equal(sent.status, 202);
      }
    }
    await acme.untilData(2);
    await globex.untilData(2);
    await sleep(100);
    assert.deepEqual(
      acme.data.map((e) => e.data),
      ['acme-false', 'acme-true'],
    );
    assert.deepEqual(
      globex.data.map((e) => e.data),
      ['globex-false', 'globex-true'],
    );
    acme.close();
    globex.close();
  });
});
