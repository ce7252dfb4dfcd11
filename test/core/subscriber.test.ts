import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type Sink, Subscriber, type SubscriberOwner } from '../../src/core/subscriber.ts';

const sink: Sink = { write: () => true, end() {}, destroy() {} };
const owner: SubscriberOwner = { drained() {}, detach() {} };
const subscriber = (permissions?: string[]) =>
  new Subscriber('s', { tenant: 't', selectors: [], grants: [], permissions }, sink, owner, 0, Infinity);

describe('subscriber', () => {
  test('streams with the same permissions, in any order, share one Set of them', () => {
    const a = subscriber(['pii:read', 'billing:read']);
    const b = subscriber(['billing:read', 'pii:read']);
    assert.equal(a.permissions, b.permissions);
    assert.deepEqual([...a.permissions].sort(), ['billing:read', 'pii:read']);
    assert.equal(subscriber().permissions.size, 0);
    assert.equal(subscriber([]).permissions, subscriber().permissions);
  });

  test('a permission is never mistaken for several, whatever characters it holds', () => {
    const joined = subscriber(['a\u0000b']);
    const split = subscriber(['a', 'b']);
    assert.notEqual(joined.permissions, split.permissions);
    assert.equal(joined.permissions.has('a'), false);
    assert.equal(joined.permissions.has('a\u0000b'), true);
  });

  test('an idle stream has no outbox until an event is queued', () => {
    const s = subscriber();
    assert.equal(s.queuedEvents, 0);
    assert.equal(s.queuedBytes, 0);
    s.markClosed();
    assert.equal(s.queuedEvents, 0);
  });
});
