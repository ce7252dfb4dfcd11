import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { backoffDelay, retryAfterMs } from '../../src/client/backoff.ts';

describe('backoff with full jitter', () => {
  test('the delay is random(0, min(cap, base · 2^attempt)): bounds at both ends of the random range', () => {
    for (let attempt = 0; attempt < 12; attempt++) {
      const ceiling = Math.min(30_000, 500 * 2 ** attempt);
      assert.equal(
        backoffDelay(attempt, 500, 30_000, () => 0),
        0,
      );
      // Math.random() < 1: the delay stays below the ceiling.
      const top = backoffDelay(attempt, 500, 30_000, () => 1 - Number.EPSILON);
      assert.ok(top < ceiling && top > ceiling * 0.999, `attempt ${attempt}: ${top} vs ${ceiling}`);
    }
  });

  test('the cap holds for any attempt, and a huge attempt does not overflow', () => {
    for (const attempt of [20, 100, 2000]) {
      const delay = backoffDelay(attempt, 500, 30_000, () => 0.999);
      assert.ok(Number.isFinite(delay) && delay <= 30_000);
    }
  });

  test('jitter statistics: uniform over [0, ceiling) — mean, spread and every decile populated', () => {
    const samples = 20_000;
    const ceiling = 4000; // attempt 3 of 500 ms
    const deciles = new Array(10).fill(0);
    let sum = 0;
    for (let i = 0; i < samples; i++) {
      const delay = backoffDelay(3, 500, 30_000);
      assert.ok(delay >= 0 && delay < ceiling);
      sum += delay;
      deciles[Math.floor((delay / ceiling) * 10)]++;
    }
    const mean = sum / samples;
    // Uniform: mean ceiling/2, standard error ceiling/sqrt(12·n) ≈ 8 ms; allow ~6 standard errors.
    assert.ok(Math.abs(mean - ceiling / 2) < 50, `mean ${mean}`);
    for (const count of deciles) assert.ok(Math.abs(count - samples / 10) < 300, `deciles ${deciles}`);
  });

  test("the server's retry hint is the base; the cap never lowers it below itself", () => {
    assert.equal(
      backoffDelay(0, 2000, 30_000, () => 0.5),
      1000,
    );
    assert.equal(
      backoffDelay(2, 2000, 30_000, () => 0.5),
      4000,
    );
    assert.equal(
      backoffDelay(3, 60_000, 30_000, () => 0.5),
      30_000,
    );
  });
});

describe('Retry-After', () => {
  test('delay-seconds', () => {
    assert.equal(retryAfterMs('5'), 5000);
    assert.equal(retryAfterMs(' 0 '), 0);
  });
  test('an HTTP-date', () => {
    const now = Date.parse('2026-11-23T20:00:00Z');
    assert.equal(retryAfterMs('Mon, 23 Nov 2026 20:00:30 GMT', now), 30_000);
    assert.equal(retryAfterMs('Mon, 23 Nov 2026 19:00:00 GMT', now), 0, 'in the past');
  });
  test('absent or unreadable is 0', () => {
    assert.equal(retryAfterMs(null), 0);
    assert.equal(retryAfterMs(''), 0);
    assert.equal(retryAfterMs('soon'), 0);
    assert.equal(retryAfterMs('-3'), 0);
  });
});
