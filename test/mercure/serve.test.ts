import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { describe, test } from 'node:test';
import { resolveConfig } from '../../src/server/config.ts';
import { serve } from '../../src/server/serve.ts';
import { bearer, mercurePublish, mercureStream, mercureToken } from './mercure-client.ts';

/** `herald serve` configured as a Mercure deployment's environment configures the reference hub. */
async function serveWith(flags: Record<string, unknown>, env: Record<string, string>) {
  return serve(resolveConfig({ port: 0, ...flags }, env));
}

describe('herald serve, configured as the Mercure reference hub is', () => {
  test("MERCURE_PUBLISHER_JWT_KEY/ALG and MERCURE_SUBSCRIBER_JWT_KEY are the hub's keys, and the native API takes them too", async () => {
    const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const subscriberKey = 'subscribers-secret-of-at-least-32-bytes!';
    const running = await serveWith(
      {},
      {
        MERCURE_PUBLISHER_JWT_KEY: publicKey.export({ type: 'spki', format: 'pem' }) as string,
        MERCURE_PUBLISHER_JWT_ALG: 'ES256',
        MERCURE_SUBSCRIBER_JWT_KEY: subscriberKey,
      },
    );
    try {
      assert.equal(running.herald.open, false, 'Mercure keys alone do not leave the native API open');
      const stream = await mercureStream(running.url, ['*'], {
        headers: bearer(await mercureToken({ subscribe: ['*'] }, { secret: subscriberKey })),
      });
      assert.equal(stream.status, 200);
      const es256 = bearer(await mercureToken({ publish: ['*'] }, { key: privateKey, alg: 'ES256' }));
      assert.equal((await mercurePublish(running.url, { topic: 'a', data: 'signed' }, es256)).status, 200);
      const hs = bearer(await mercureToken({ publish: ['*'] }, { secret: subscriberKey }));
      assert.equal((await mercurePublish(running.url, { topic: 'a', data: 'x' }, hs)).status, 401);
      await stream.untilData(1);
      stream.close();
      const native = await fetch(`${running.url}/v1/publish`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ topic: 'a', data: 1 }),
      });
      assert.equal(native.status, 401);
    } finally {
      await running.close();
    }
  });

  test('--mercure off removes the endpoint; --mercure-subscriptions adds the subscriptions API', async () => {
    const off = await serveWith({ mercure: 'off' }, {});
    const on = await serveWith({ mercureSubscriptions: true }, {});
    try {
      assert.equal((await fetch(`${off.url}/.well-known/mercure?topic=a`)).status, 404);
      assert.equal((await fetch(`${off.url}/.well-known/mercure/subscriptions`)).status, 404);
      const listed = await fetch(`${on.url}/.well-known/mercure/subscriptions`);
      assert.equal(listed.status, 200);
      assert.equal(listed.headers.get('content-type'), 'application/ld+json');
    } finally {
      await Promise.all([off.close(), on.close()]);
    }
  });

  test('a wrong Mercure setting stops the start with a message naming it', () => {
    assert.throws(
      () => resolveConfig({ port: 0 }, { MERCURE_PUBLISHER_JWT_ALG: 'none' }),
      /--mercure-publisher-jwt-alg \(HERALD_MERCURE_PUBLISHER_JWT_ALG, MERCURE_PUBLISHER_JWT_ALG\): use HS256/,
    );
    assert.throws(
      () => resolveConfig({ port: 0, mercure: 'maybe' }, {}),
      /--mercure .*"maybe" is not true or false/,
    );
  });
});
