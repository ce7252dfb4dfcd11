import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createHerald } from '../../src/herald.ts';
import { webHandler } from '../../src/http/web.ts';

/**
 * A Route Handler's `Request` carries no client address (docs/embedding-nextjs.md). The per-IP
 * limits then do not apply at all, rather than counting every client under one shared key, which
 * would let one noisy client exhaust everyone's budget; with `clientAddress`, each address has its
 * own bucket.
 */
describe('webHandler and the client address', () => {
  const limits = { connectionsPerSecondPerIp: 1, connectionBurstPerIp: 1 };

  test('without clientAddress, per-IP limits count no one, so clients never share one bucket', async (t) => {
    const herald = createHerald({ limits, open: true });
    t.after(() => herald.close());
    const handler = webHandler(herald);
    for (let i = 0; i < 5; i++) {
      const response = await handler(new Request('http://hub.test/healthz'));
      assert.equal(response.status, 200, `request ${i + 1} is not refused as another's`);
    }
  });

  test('with clientAddress, each address has its own bucket', async (t) => {
    const herald = createHerald({ limits, open: true });
    t.after(() => herald.close());
    const handler = webHandler(herald, {
      clientAddress: (request) => request.headers.get('x-test-client') ?? undefined,
    });
    const from = (address: string) =>
      handler(new Request('http://hub.test/healthz', { headers: { 'x-test-client': address } }));
    assert.equal((await from('203.0.113.9')).status, 200);
    const refused = await from('203.0.113.9');
    assert.equal(refused.status, 429, 'the same address past its burst is refused');
    assert.equal(((await refused.json()) as { code: string }).code, 'too-many-connections');
    assert.equal((await from('198.51.100.7')).status, 200, 'another address is not charged for it');
  });
});
