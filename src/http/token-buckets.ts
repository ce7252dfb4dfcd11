/** Floating-point slack, so waiting exactly the advertised time always suffices. */
export const EPSILON = 1e-9;

/** How many of the least recently used buckets each check looks at to forget full ones. */
const SWEEP_PER_CHECK = 2;

interface Bucket {
  readonly key: string;
  tokens: number;
  /** When `tokens` was computed (ms, from the injected clock). */
  at: number;
  /** Neighbours in least-recently-used order. */
  older: Bucket | undefined;
  newer: Bucket | undefined;
}

/**
 * Lazy token buckets keyed by IP or subject. A full bucket is the same as no bucket, so only
 * buckets below their burst are stored. They are also chained in least-recently-used order, so
 * the oldest ones are the idlest: each check forgets up to two of them once they have refilled,
 * and the size cap evicts from there too. (A linked list rather than the Map's own order: V8
 * leaves deleted Map entries in place until it rehashes, so iterating from the front after many
 * deletions is not O(1).)
 */
export class BucketMap {
  private readonly buckets = new Map<string, Bucket>();
  private oldest: Bucket | undefined;
  private newest: Bucket | undefined;
  private readonly perMs: number;
  private readonly burst: number;
  private readonly maxKeys: number;
  /** Buckets forgotten before they refilled because the map was at its cap. */
  evicted = 0;

  constructor(perSecond: number, burst: number, maxKeys: number) {
    this.perMs = perSecond / 1000;
    this.burst = burst;
    this.maxKeys = maxKeys;
  }

  get size(): number {
    return this.buckets.size;
  }

  /** The ms until `key` has `n` tokens (0: it has them now); takes none. */
  wait(key: string, n: number, now: number): number {
    const bucket = this.buckets.get(key);
    const tokens = bucket === undefined ? this.burst : this.level(bucket, now);
    return tokens + EPSILON >= n ? 0 : (n - tokens) / this.perMs;
  }

  /** Takes `n` tokens for `key`. Returns 0 when they were taken, else the ms until `n` are there. */
  take(key: string, n: number, now: number): number {
    let bucket = this.buckets.get(key);
    let tokens = this.burst;
    if (bucket !== undefined) {
      tokens = this.level(bucket, now);
      this.unlink(bucket);
    }
    const wait = tokens + EPSILON >= n ? 0 : (n - tokens) / this.perMs;
    if (wait === 0) tokens -= n;
    this.sweep(now);
    if (tokens + EPSILON >= this.burst) {
      if (bucket !== undefined) this.buckets.delete(key);
      return wait;
    }
    if (bucket === undefined) {
      if (this.buckets.size >= this.maxKeys && this.oldest !== undefined) {
        this.forget(this.oldest);
        this.evicted++;
      }
      bucket = { key, tokens, at: now, older: undefined, newer: undefined };
      this.buckets.set(key, bucket);
    } else {
      bucket.tokens = tokens;
      bucket.at = now;
    }
    this.append(bucket);
    return wait;
  }

  /** Tokens in the bucket at `now`: lazily refilled from the time elapsed, never past the burst. */
  private level(bucket: Bucket, now: number): number {
    return Math.min(this.burst, bucket.tokens + Math.max(0, now - bucket.at) * this.perMs);
  }

  /** Forgets the least recently used buckets that have refilled by now, stopping at one that has not. */
  private sweep(now: number): void {
    for (let i = 0; i < SWEEP_PER_CHECK; i++) {
      const bucket = this.oldest;
      if (bucket === undefined || this.level(bucket, now) + EPSILON < this.burst) return;
      this.forget(bucket);
    }
  }

  private forget(bucket: Bucket): void {
    this.unlink(bucket);
    this.buckets.delete(bucket.key);
  }

  private append(bucket: Bucket): void {
    bucket.older = this.newest;
    bucket.newer = undefined;
    if (this.newest === undefined) this.oldest = bucket;
    else this.newest.newer = bucket;
    this.newest = bucket;
  }

  private unlink(bucket: Bucket): void {
    if (bucket.older === undefined) this.oldest = bucket.newer;
    else bucket.older.newer = bucket.newer;
    if (bucket.newer === undefined) this.newest = bucket.older;
    else bucket.newer.older = bucket.older;
    bucket.older = undefined;
    bucket.newer = undefined;
  }
}
