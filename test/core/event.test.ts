import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { HeraldError } from '../../src/core/errors.ts';
import { utf8Length, validateEvent } from '../../src/core/event.ts';

const limits = { maxDataBytes: 1024 };
const valid = (input: unknown) => validateEvent(input, '', limits, 1000);

function rejects(input: unknown, status: number, code: string, detail: RegExp) {
  assert.throws(
    () => valid(input),
    (error: unknown) => {
      assert.ok(error instanceof HeraldError, 'a HeraldError');
      assert.equal(error.status, status);
      assert.equal(error.code, code);
      assert.match(error.detail, detail);
      return true;
    },
  );
}

describe('event validation', () => {
  test('a minimal event: one topic, JSON data serialized once, normal priority', () => {
    assert.deepEqual(valid({ topic: 'a', data: { n: 1 } }), {
      topics: ['a'],
      data: '{"n":1}',
      tenant: '',
      priority: 'normal',
      time: 1000,
    });
  });

  test('string data goes on the wire as it is; missing data is empty', () => {
    assert.equal(valid({ topic: 'a', data: 'line 1\nline 2' }).data, 'line 1\nline 2');
    assert.equal(valid({ topic: 'a' }).data, '');
  });

  test('every field is carried over', () => {
    const draft = valid({
      topic: ['c', 'alt'],
      data: 1,
      type: 'ai-score',
      id: 'my-id',
      tags: { vin: '1ABC' },
      private: true,
      key: 'tile-1',
      priority: 'high',
      retry: 500,
      tenant: 't1',
    });
    assert.deepEqual(draft, {
      topics: ['c', 'alt'],
      data: '1',
      tenant: 't1',
      priority: 'high',
      time: 1000,
      type: 'ai-score',
      id: 'my-id',
      key: 'tile-1',
      private: true,
      retry: 500,
      tags: { vin: '1ABC' },
    });
  });

  test('a missing or empty topic is refused', () => {
    rejects({ data: 1 }, 400, 'topic-required', /topic is required/);
    rejects({ topic: '' }, 400, 'topic-required', /non-empty/);
    rejects({ topic: [] }, 400, 'topic-required', /topic is required/);
    rejects({ topic: ['a', 3] }, 400, 'topic-required', /non-empty string/);
  });

  test('CR, LF or NUL in an id, type or topic is refused: it would inject SSE fields', () => {
    rejects({ topic: 'a', id: 'x\nevent: evil' }, 400, 'invalid-id', /control character/);
    rejects({ topic: 'a', id: 'x\u0000' }, 400, 'invalid-id', /control character/);
    rejects({ topic: 'a', type: 'x\rretry: 1' }, 400, 'invalid-type', /control character/);
    rejects({ topic: 'a\nb' }, 400, 'invalid-topic', /control character/);
  });

  test('a chosen id that looks like a log position is refused', () => {
    rejects({ topic: 'a', id: '42' }, 400, 'invalid-id', /looks like a log position/);
    rejects({ topic: 'a', id: '1700000000000-4' }, 400, 'invalid-id', /looks like a log position/);
    assert.equal(valid({ topic: 'a', id: 'order-42' }).id, 'order-42');
  });

  test('types in the herald. namespace are reserved', () => {
    rejects({ topic: 'a', type: 'herald.gap' }, 400, 'reserved-type', /reserved/);
  });

  test('data over the limit is 413 with both sizes in the detail', () => {
    rejects(
      { topic: 'a', data: 'x'.repeat(2048) },
      413,
      'data-too-large',
      /data is 2 KiB; the limit is 1 KiB/,
    );
    // Multi-byte characters count as the bytes they take on the wire.
    rejects({ topic: 'a', data: 'é'.repeat(600) }, 413, 'data-too-large', /1\.2 KiB/);
    assert.equal(valid({ topic: 'a', data: 'é'.repeat(500) }).data.length, 500);
  });

  test('an unknown field is named, so typos do not pass silently', () => {
    rejects({ topc: 'a' }, 400, 'unknown-field', /"topc"/);
  });

  test('malformed optional fields are refused with what is expected', () => {
    rejects({ topic: 'a', priority: 'urgent' }, 400, 'invalid-priority', /"normal" or "high"/);
    rejects({ topic: 'a', retry: -1 }, 400, 'invalid-retry', /whole number/);
    rejects({ topic: 'a', private: 'yes' }, 400, 'invalid-private', /true or false/);
    rejects({ topic: 'a', tags: { n: 1 } }, 400, 'invalid-tags', /must be a string/);
    rejects({ topic: 'a', tags: ['x'] }, 400, 'invalid-tags', /object/);
    rejects('just text', 400, 'invalid-event', /JSON object/);
  });

  test('redact maps JSON Pointers of JSON data to permissions', () => {
    const redact = { '/customer/email': 'pii:read', '/a~1b': 'x' };
    assert.deepEqual(valid({ topic: 'a', data: { customer: {} }, redact }).redact, redact);
    rejects({ topic: 'a', data: 'text', redact }, 400, 'invalid-redact', /JSON object or array/);
    rejects({ topic: 'a', data: {}, redact: { email: 'p' } }, 400, 'invalid-redact', /not a JSON Pointer/);
    rejects({ topic: 'a', data: {}, redact: { '/a~2': 'p' } }, 400, 'invalid-redact', /not a JSON Pointer/);
    rejects({ topic: 'a', data: {}, redact: { '/a': '' } }, 400, 'invalid-redact', /non-empty/);
    rejects({ topic: 'a', data: {}, redact: {} }, 400, 'invalid-redact', /1 to 32/);
  });

  test('a batch position prefixes the detail', () => {
    assert.throws(() => validateEvent({}, '', limits, 0, 'event 3: '), /event 3: topic is required/);
  });

  test('utf8Length counts what TextEncoder produces', () => {
    for (const text of ['', 'abc', 'é', '東京', '🎉', 'a🎉b', '\ud800']) {
      assert.equal(utf8Length(text), new TextEncoder().encode(text).length, JSON.stringify(text));
    }
  });
});
