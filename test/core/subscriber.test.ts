import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type Sink, Subscriber, type SubscriberOwner } from '../../src/core/subscriber.ts';

const sink: Sink = { write: () => true, end() {}, destroy() {} };
const owner: SubscriberOwner = { drained() {}, detach() {} };
const subscriber = () =>
  new Subscriber('s', { tenant: 't', selectors: [], grants: [] }, sink, owner, 0, Infinity);

describe('subscriber', () => {
  test('an idle stream has no outbox until an event is queued', () => {
    const s = subscriber();
    assert.equal(s.queuedEvents, 0);
    assert.equal(s.queuedBytes, 0);
    s.markClosed();
    assert.equal(s.queuedEvents, 0);
  });
});
