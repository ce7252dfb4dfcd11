import {
  build,
  decodeFromCompressedBase64,
  encodeIntoCompressedBase64,
  type Histogram,
} from 'hdr-histogram-js';

/**
 * Latency histograms, in microseconds, 3 significant digits (0.1 % resolution), up to two
 * minutes. Workers record into their own and send it encoded; the parent merges them.
 */
const SETTINGS = {
  lowestDiscernibleValue: 1,
  highestTrackableValue: 120_000_000,
  numberOfSignificantValueDigits: 3,
} as const;

export type { Histogram };

export const latencyHistogram = (): Histogram => build(SETTINGS);

export const encodeHistogram = (histogram: Histogram): string => encodeIntoCompressedBase64(histogram);

/** One histogram holding every sample of the encoded ones. */
export function mergeHistograms(encoded: readonly string[]): Histogram {
  const total = latencyHistogram();
  for (const text of encoded) {
    const part = decodeFromCompressedBase64(text);
    total.add(part);
    part.destroy();
  }
  return total;
}

export interface LatencySummary {
  readonly samples: number;
  readonly meanMs: number | null;
  readonly p50Ms: number | null;
  readonly p90Ms: number | null;
  readonly p99Ms: number | null;
  readonly p999Ms: number | null;
  readonly maxMs: number | null;
}

/** Percentiles in milliseconds; null without samples. */
export function summarizeLatency(histogram: Histogram): LatencySummary {
  const samples = histogram.totalCount;
  const ms = (us: number) => (samples === 0 ? null : us / 1000);
  return {
    samples,
    meanMs: ms(histogram.mean),
    p50Ms: ms(histogram.getValueAtPercentile(50)),
    p90Ms: ms(histogram.getValueAtPercentile(90)),
    p99Ms: ms(histogram.getValueAtPercentile(99)),
    p999Ms: ms(histogram.getValueAtPercentile(99.9)),
    maxMs: ms(histogram.maxValue),
  };
}
