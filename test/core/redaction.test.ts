import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { HeraldEvent } from '../../src/core/event.ts';
import { frameFor, removeFields } from '../../src/core/redaction.ts';

const text = (frame: Uint8Array) => new TextDecoder().decode(frame);

function event(data: unknown, redact?: Record<string, string>): HeraldEvent {
  return {
    id: 'e-1',
    pos: 'e-1',
    topics: ['orders/1'],
    data: JSON.stringify(data),
    tenant: '',
    priority: 'normal',
    time: 0,
    redact,
  };
}

describe('field redaction', () => {
  test('removes object members and array elements named by JSON Pointers', () => {
    const json = JSON.stringify({ a: { b: 1, c: 2 }, list: [10, 11, 12, 13], 'x/y': 3, 'm~n': 4 });
    assert.equal(
      removeFields(json, ['/a/b', '/list/1', '/list/3', '/x~1y', '/m~0n', '/missing/deep', '/list/99']),
      JSON.stringify({ a: { c: 2 }, list: [10, 12] }),
    );
  });

  test('an event without redactions has one frame for everyone', () => {
    const e = event({ n: 1 });
    assert.equal(frameFor(e, new Set()), frameFor(e, new Set(['anything'])));
    assert.equal(frameFor(e, new Set()), e.frame);
  });

  test('each visibility is encoded once and shared; holders of every permission get the full data', () => {
    const e = event(
      { order: 7, customer: { email: 'a@b.c', card: '4242' } },
      { '/customer/email': 'pii:read', '/customer/card': 'billing:read' },
    );
    const none = frameFor(e, new Set());
    const pii = frameFor(e, new Set(['pii:read', 'unrelated']));
    const both = frameFor(e, new Set(['billing:read', 'pii:read']));
    assert.match(text(none), /^data: \{"order":7,"customer":\{\}\}$/m);
    assert.match(text(pii), /^data: \{"order":7,"customer":\{"email":"a@b\.c"\}\}$/m);
    assert.doesNotMatch(text(pii), /4242/);
    assert.equal(both, e.frame, 'the full frame is the event frame');
    assert.match(text(both), /4242/);
    assert.equal(frameFor(e, new Set()), none, 'same bytes for the same visibility');
    assert.equal(frameFor(e, new Set(['pii:read'])), pii);
    assert.equal(e.variants?.size, 3);
  });
});
