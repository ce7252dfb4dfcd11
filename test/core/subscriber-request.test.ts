import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { SubscriberRequest } from '../../src/core/subscriber-request.ts';

const request = (permissions?: string[]) =>
  new SubscriberRequest({ tenant: 't', selectors: [], grants: [], permissions });

describe('subscriber request', () => {
  test('streams with the same permissions, in any order, share one Set of them', () => {
    const a = request(['pii:read', 'billing:read']);
    const b = request(['billing:read', 'pii:read']);
    assert.equal(a.permissions, b.permissions);
    assert.deepEqual([...a.permissions].sort(), ['billing:read', 'pii:read']);
    assert.equal(request().permissions.size, 0);
    assert.equal(request([]).permissions, request().permissions);
  });

  test('a permission is never mistaken for several, whatever characters it holds', () => {
    const joined = request(['a\u0000b']);
    const split = request(['a', 'b']);
    assert.notEqual(joined.permissions, split.permissions);
    assert.equal(joined.permissions.has('a'), false);
    assert.equal(joined.permissions.has('a\u0000b'), true);
  });
});
