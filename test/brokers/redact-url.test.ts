import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { redactUrl } from '../../src/backends/redact-url.ts';

describe('redactUrl', () => {
  test('masks a password, and a user name that stands alone (a NATS token)', () => {
    assert.equal(redactUrl('redis://app:s3cret@cache:6379/0'), 'redis://app:***@cache:6379/0');
    assert.equal(redactUrl('redis://:s3cret@cache:6379'), 'redis://:***@cache:6379');
    assert.equal(redactUrl('nats://T0KEN-marker@bus:4222'), 'nats://***@bus:4222');
    assert.equal(redactUrl('nats://bus:4222'), 'nats://bus:4222');
    assert.equal(redactUrl('user:pass@host:1'), '***@host:1');
  });
});
