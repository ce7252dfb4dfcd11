import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { classify, HeraldClientError, problemOf } from '../../src/client/errors.ts';

describe('error classification', () => {
  test('401: refresh the token once', () => {
    assert.equal(classify(401), 'auth');
  });
  test('400, 403, 404 and the other 4xx: fatal, retrying cannot help', () => {
    for (const status of [400, 403, 404, 405, 409, 413, 415, 422])
      assert.equal(classify(status), 'fatal', `${status}`);
  });
  test('408, 429 and 5xx: transient, back off and retry', () => {
    for (const status of [408, 429, 500, 502, 503, 504])
      assert.equal(classify(status), 'transient', `${status}`);
  });
});

describe('reading a refusal', () => {
  test('a problem+json answer gives its detail, code and Retry-After', async () => {
    const response = new Response(
      JSON.stringify({
        type: 'about:blank',
        status: 429,
        detail: 'too many streams for alice',
        code: 'rate-limited',
      }),
      { status: 429, headers: { 'content-type': 'application/problem+json', 'retry-after': '7' } },
    );
    const error = await problemOf(response);
    assert.ok(error instanceof HeraldClientError);
    assert.equal(error.status, 429);
    assert.equal(error.message, 'too many streams for alice');
    assert.equal(error.code, 'rate-limited');
    assert.equal(error.retryAfterMs, 7000);
  });

  test('a non-JSON answer (a proxy page) gives the status line', async () => {
    const error = await problemOf(
      new Response('<html>Bad gateway</html>', { status: 502, statusText: 'Bad Gateway' }),
    );
    assert.equal(error.message, 'HTTP 502 Bad Gateway');
    assert.equal(error.code, undefined);
    assert.equal(error.retryAfterMs, 0);
  });
});
