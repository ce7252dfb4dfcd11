import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { LatencyHistogram } from '../../src/core/latency.ts';

describe('LatencyHistogram', () => {
  test('puts an observation in the first bucket whose bound it does not exceed, as Prometheus le does', () => {
    const histogram = new LatencyHistogram([1, 10, 100]);
    for (const ms of [0, 1, 1.5, 10, 99, 100, 101, 5_000]) histogram.observe(ms);
    assert.deepEqual([...histogram.counts], [2, 2, 2, 2]);
    assert.equal(histogram.count, 8);
    assert.equal(histogram.sum, 0 + 1 + 1.5 + 10 + 99 + 100 + 101 + 5_000);
  });

  test('starts empty, with one bucket more than bounds for what lies above them all', () => {
    const histogram = new LatencyHistogram();
    assert.equal(histogram.counts.length, histogram.bounds.length + 1);
    assert.equal(histogram.count, 0);
    assert.ok(histogram.counts.every((count) => count === 0));
  });
});
