/** How much history a log keeps for replay when the operator says nothing: the same on every backend. */
export const DEFAULT_HISTORY_SIZE = 10_000;
export const DEFAULT_HISTORY_MAX_AGE_MS = 24 * 60 * 60 * 1000;

/** A history bound (`maxEvents`, `maxAgeMs`), checked as every backend checks it. */
export function positive(value: number, what: string): number {
  if (!Number.isSafeInteger(value) || value <= 0) throw new RangeError(`${what} must be a positive integer`);
  return value;
}
