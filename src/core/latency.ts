/**
 * A fixed-bucket latency histogram, in milliseconds, that the hub fills on its own paths and a
 * metrics exporter reads at scrape time. Observing allocates nothing: the hub must not pay for
 * an exporter it may not have.
 */
export class LatencyHistogram {
  /** Upper bounds of the buckets, ms, ascending; one more bucket past the last holds the rest. */
  readonly bounds: readonly number[];
  /** Observations per bucket (not cumulative); the last slot is above every bound. */
  readonly counts: Float64Array;
  count = 0;
  /** Sum of every observation, ms. */
  sum = 0;

  constructor(bounds: readonly number[] = LATENCY_BOUNDS_MS) {
    this.bounds = bounds;
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(ms: number): void {
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && ms > (bounds[i] as number)) i++;
    this.counts[i] = (this.counts[i] as number) + 1;
    this.count++;
    this.sum += ms;
  }
}

/** From half a millisecond (a local broker) to ten seconds (a stalled one). */
export const LATENCY_BOUNDS_MS: readonly number[] = [
  0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000,
];
