/*
 * The arguments of shared counters (`SharedCounting` in core/cluster.ts), checked alike on every
 * backend before anything reaches the broker: a caller's mistake is a RangeError saying which
 * argument and why, never a broker's error or a count silently made under a wrong key.
 */

/** A counter's key: any characters (each backend encodes them as its keys allow), but not none. */
export function counterKey(key: string): string {
  if (typeof key !== 'string' || key === '') {
    throw new RangeError('a shared counter key must be a non-empty string');
  }
  return key;
}

/** The node a count is kept under: its name in the cluster. */
export function counterNode(node: string): string {
  if (typeof node !== 'string' || node === '') {
    throw new RangeError('a shared counter node must be named by a non-empty string');
  }
  return node;
}

/** An acquire's limit: 0 refuses every acquire. */
export function counterLimit(limit: number): number {
  if (!Number.isSafeInteger(limit) || limit < 0) {
    throw new RangeError(`a shared counter limit must be an integer of 0 or more, not ${limit}`);
  }
  return limit;
}

/**
 * The nodes whose counts still hold, as a set; the acquiring node is always among them (it is
 * alive, even if the others have not heard from it yet), so it never drops its own counts.
 */
export function liveNodes(live: readonly string[], node: string): Set<string> {
  if (!Array.isArray(live) || live.some((each) => typeof each !== 'string')) {
    throw new RangeError('the live nodes of a shared counter must be an array of node names');
  }
  return new Set([...live, node]);
}

/** A window counter's add (0 reads the window without counting) and its length. */
export function windowArguments(amount: number, windowMs: number): void {
  if (!Number.isSafeInteger(amount) || amount < 0) {
    throw new RangeError(`a window counter's amount must be an integer of 0 or more, not ${amount}`);
  }
  if (!Number.isSafeInteger(windowMs) || windowMs <= 0) {
    throw new RangeError(`a window counter's window must be a positive number of ms, not ${windowMs}`);
  }
}
