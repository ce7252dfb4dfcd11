import type { SharedCounterGuard } from './shared-counter-guard.ts';

/**
 * Publish rates per credential counted across nodes without a broker round trip per publish:
 * each node leases tokens from the credential's shared window counter a chunk at a time and
 * spends them locally, asking the broker again only when its lease runs out.
 *
 * How the node's token bucket (rate R per second, burst B) maps onto a shared fixed window: a
 * window lasts `max(1, B / R)` seconds and admits `max(R, B)` events, so that the sustained rate
 * is R and a batch as large as the burst fits into a fresh window (with the defaults, 20 000
 * events per 2 s window). Once a window is spent its credential is refused (429, Retry-After:
 * the rest of the window) by every node, each without asking the broker again until the window
 * ends.
 *
 * A chunk is a tenth of a second's worth of the rate (`max(1, round(R / 10))`, 1 000 with the
 * defaults): a node publishing at the full rate asks the broker about 10 times a second per
 * credential. Leases are only taken from what the window has left, and a lease ends with its
 * window, so the events admitted in one window stay within its allowance, give or take one
 * chunk per node: a lease taken just before the window ends on the broker's clock may be spent
 * just after it, and the unspent rest of a lease goes unused, never to another node.
 */
export interface PublishLeaseOptions {
  /** Events per second (the node's `publishesPerSecondPerSubject`), more than 0. */
  readonly rate: number;
  /** The node's `publishBurstPerSubject`, 1 or more. */
  readonly burst: number;
  /** How many credentials' leases are kept at most (`maxTrackedKeys`). */
  readonly maxKeys: number;
  readonly now?: () => number;
}

/** `take`'s answer when the broker cannot answer: the node's own bucket decides. */
export const UNAVAILABLE = -1;

interface Lease {
  /** Tokens leased and not yet spent. */
  tokens: number;
  /** When the window the tokens came from ends, on this node's clock. */
  expiresAt: number;
  /** Until when the window is spent: publishes are refused without asking the broker. */
  spentUntil: number;
  /** The refill under way, which every publish short of tokens waits for. */
  refill: Promise<void> | undefined;
  /** The last refill could not reach the broker. */
  unavailable: boolean;
}

/** How often at most a full map is searched for ended leases; in between the oldest is dropped. */
const SWEEP_INTERVAL_MS = 1_000;
/** How often ended leases are forgotten when the map is not full: memory follows the publishers. */
const IDLE_SWEEP_MS = 60_000;

export class PublishLeases {
  readonly windowMs: number;
  /** Events a window admits across all nodes. */
  readonly allowance: number;
  readonly chunk: number;
  private readonly guard: SharedCounterGuard;
  private readonly maxKeys: number;
  private readonly now: () => number;
  private readonly leases = new Map<string, Lease>();
  private sweptAt = 0;

  constructor(guard: SharedCounterGuard, options: PublishLeaseOptions) {
    this.guard = guard;
    this.allowance = Math.max(1, Math.round(Math.max(options.rate, options.burst)));
    this.windowMs = Math.max(1_000, Math.round((1_000 * this.allowance) / options.rate));
    this.chunk = Math.max(1, Math.round(options.rate / 10));
    this.maxKeys = options.maxKeys;
    this.now = options.now ?? Date.now;
  }

  get size(): number {
    return this.leases.size;
  }

  /**
   * Takes `events` tokens for `key`: 0 when taken, the ms until the window ends when it is spent,
   * `UNAVAILABLE` when the broker cannot answer, or a promise of one of those when the lease must
   * be refilled first. Synchronous (no promise) whenever the lease covers the publish.
   */
  take(key: string, events: number): number | Promise<number> {
    const now = this.now();
    const lease = this.leases.get(key);
    if (lease !== undefined) {
      if (now >= lease.expiresAt) lease.tokens = 0;
      if (lease.tokens >= events) {
        lease.tokens -= events;
        return 0;
      }
      if (now < lease.spentUntil) return lease.spentUntil - now;
    }
    if (!this.guard.usable) {
      this.guard.fellBack();
      return UNAVAILABLE;
    }
    const current = lease ?? this.add(key, now);
    return this.refill(key, current, events).then(() => {
      if (current.unavailable) return UNAVAILABLE;
      return this.take(key, events);
    });
  }

  /** Leases whole chunks enough for `events` from the shared window, once for all who wait. */
  private refill(key: string, lease: Lease, events: number): Promise<void> {
    if (lease.refill !== undefined) return lease.refill;
    const amount = Math.ceil((events - lease.tokens) / this.chunk) * this.chunk;
    lease.refill = this.guard.consume(key, amount, this.windowMs).then((window) => {
      lease.refill = undefined;
      lease.unavailable = window === undefined;
      if (window === undefined) return;
      const now = this.now();
      // What this add found left in the window: all of it, part of it, or nothing.
      const granted = Math.max(0, Math.min(amount, this.allowance - (window.total - amount)));
      // A window with no time left (a counter without expiry) is taken as a whole one.
      const resetMs = window.resetMs > 0 ? window.resetMs : this.windowMs;
      if (now >= lease.expiresAt) lease.tokens = 0;
      lease.tokens += granted;
      lease.expiresAt = now + resetMs;
      if (granted < amount) lease.spentUntil = now + resetMs;
    });
    return lease.refill;
  }

  private add(key: string, now: number): Lease {
    if (this.leases.size >= this.maxKeys || now - this.sweptAt >= IDLE_SWEEP_MS) this.makeRoom(now);
    const lease: Lease = { tokens: 0, expiresAt: 0, spentUntil: 0, refill: undefined, unavailable: false };
    this.leases.set(key, lease);
    return lease;
  }

  /**
   * Forgets ended leases, at most once a second, else the oldest: a forgotten lease loses at most
   * a chunk of tokens, never admits more.
   */
  private makeRoom(now: number): void {
    if (now - this.sweptAt >= SWEEP_INTERVAL_MS) {
      this.sweptAt = now;
      for (const [key, lease] of this.leases) {
        if (now >= lease.expiresAt && now >= lease.spentUntil && lease.refill === undefined) {
          this.leases.delete(key);
        }
      }
    }
    if (this.leases.size < this.maxKeys) return;
    const oldest = this.leases.keys().next();
    if (!oldest.done) this.leases.delete(oldest.value);
  }
}
