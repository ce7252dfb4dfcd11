/**
 * How many latest values per key (see `LatestKeeping` in core/log.ts) a log keeps when the
 * operator says nothing: the same on every backend. The bound is the whole log's, not a tenant's.
 */
export const DEFAULT_LATEST_MAX_KEYS = 10_000;

/** `latestMaxKeys` as every backend checks it: a whole number, 0 turning the store off. */
export function latestMaxKeysOf(value: number | undefined): number {
  const keys = value ?? DEFAULT_LATEST_MAX_KEYS;
  if (!Number.isSafeInteger(keys) || keys < 0) {
    throw new RangeError('latest max keys must be a whole number (0: keep no latest values)');
  }
  return keys;
}
