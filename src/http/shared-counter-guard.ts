import type { SharedCounting, WindowCount } from '../core/cluster.ts';
import type { HeraldLogger } from '../observability/logger.ts';

/**
 * The broker's shared counters (src/core/cluster.ts) as the limits use them: never waited on for
 * longer than a short timeout, and never waited on at all while the broker is known not to
 * answer. A check the broker cannot answer is made on this node instead (a fallback), counted
 * (`herald_limits_fallback_total`), and logged once when counting across nodes stops working and
 * once when it works again, however many checks fall back in between.
 *
 * Nothing a timed-out call did is lost or leaked: an acquire that counts after its caller gave up
 * is released at once (the stream was admitted on this node alone), and a release the broker
 * refused is retried once it answers again, so a node's counts under a key never stay above the
 * streams it holds.
 */
export interface SharedCounterGuardOptions {
  /** This node's name in the counts: the Herald's `nodeId`. */
  readonly node: string;
  /** The nodes alive now, this one included: counts of any other node are dropped by `acquire`. */
  readonly live: () => readonly string[];
  /** How long a check waits for the broker before deciding on this node. Default 250 ms. */
  readonly timeoutMs?: number;
  /** How long after a failure the broker is left alone before one check tries it again. Default 1 s. */
  readonly retryMs?: number;
  /**
   * How long after the start, and after the broker answers again following a failure, this node
   * checks stream limits on its own: the time its roster needs to hear every live node (a
   * heartbeat). An `acquire` given a list missing a live node would drop that node's counts.
   * Default 0.
   */
  readonly settleMs?: number;
  readonly logger?: HeraldLogger | undefined;
  /** Where the failure goes without a logger (the hub's `onError`). */
  readonly onError?: ((error: unknown, context: string) => void) | undefined;
  readonly now?: () => number;
}

export const DEFAULT_SHARED_TIMEOUT_MS = 250;
const DEFAULT_RETRY_MS = 1_000;

/** What a timed-out call resolves with: the broker did not answer in time. */
const TIMED_OUT = Symbol('timed out');

export class SharedCounterGuard {
  /** Checks decided on this node because the broker could not answer. */
  fallbacks = 0;
  private readonly counter: SharedCounting;
  private readonly node: string;
  private readonly live: () => readonly string[];
  private readonly timeoutMs: number;
  private readonly retryMs: number;
  private readonly logger: HeraldLogger | undefined;
  private readonly onError: ((error: unknown, context: string) => void) | undefined;
  private readonly now: () => number;
  private readonly settleMs: number;
  /** While the broker is failing: when one check may try it again (0: it is not failing). */
  private retryAt = 0;
  /** Until when the roster may not know every live node: streams are checked on this node. */
  private settledAt: number;
  /** Releases the broker refused, by key, retried once it answers again. */
  private readonly unreleased = new Map<string, number>();

  constructor(counter: SharedCounting, options: SharedCounterGuardOptions) {
    this.counter = counter;
    this.node = options.node;
    this.live = options.live;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_SHARED_TIMEOUT_MS;
    this.retryMs = options.retryMs ?? DEFAULT_RETRY_MS;
    this.logger = options.logger;
    this.onError = options.onError;
    this.now = options.now ?? Date.now;
    this.settleMs = options.settleMs ?? 0;
    this.settledAt = this.now() + this.settleMs;
  }

  /** False while the broker is failing and not yet due for another try: decide on this node. */
  get usable(): boolean {
    return this.retryAt === 0 || this.now() >= this.retryAt;
  }

  /** True while checks are decided on this node. */
  get failing(): boolean {
    return this.retryAt !== 0;
  }

  /**
   * Whether `acquire` may be asked: the broker is usable and the roster has had the time to hear
   * every live node. While it has not, stream limits are checked on this node (not a fallback:
   * the broker is fine).
   */
  get acquiring(): boolean {
    return this.usable && this.now() >= this.settledAt;
  }

  /** Counts a check decided on this node without asking the broker (it is failing). */
  fellBack(): void {
    this.fallbacks++;
  }

  /**
   * One more under `key` for this node unless the live nodes hold `limit` already. Resolves true
   * (counted), false (at the limit) or undefined: the broker did not answer, decide on this node.
   */
  async acquire(key: string, limit: number): Promise<boolean | undefined> {
    const call = this.counter.acquire(key, this.node, limit, this.nodes());
    const answer = await this.answer(call, 'acquire');
    if (answer === TIMED_OUT) {
      // The stream is admitted on this node alone: a count that lands later would never be released.
      call.then((counted) => counted && this.release(key)).catch(() => {});
      return undefined;
    }
    return answer;
  }

  /** One less under `key` for this node, in the background; retried later if the broker refuses it. */
  release(key: string): void {
    this.counter.release(key, this.node).then(
      () => this.succeeded(),
      (error: unknown) => {
        this.unreleased.set(key, (this.unreleased.get(key) ?? 0) + 1);
        this.failed(error);
      },
    );
  }

  /** Adds `amount` to the window counter `key`; undefined: the broker did not answer. */
  async consume(key: string, amount: number, windowMs: number): Promise<WindowCount | undefined> {
    const answer = await this.answer(this.counter.consume(key, amount, windowMs), 'consume');
    // What a late answer took from the window is not spent: the window is only ever undercounted.
    return answer === TIMED_OUT ? undefined : answer;
  }

  /** The live nodes, this one always among them (a roster that has not heard itself yet). */
  private nodes(): readonly string[] {
    const live = this.live();
    return live.includes(this.node) ? live : [...live, this.node];
  }

  /** The call's answer, or TIMED_OUT when it failed or took longer than the timeout. */
  private async answer<T>(call: Promise<T>, what: string): Promise<T | typeof TIMED_OUT> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<typeof TIMED_OUT>((resolve) => {
      timer = setTimeout(() => resolve(TIMED_OUT), this.timeoutMs);
    });
    try {
      const answer = await Promise.race([call, timeout]);
      if (answer === TIMED_OUT) {
        this.fallbacks++;
        this.failed(new Error(`the broker did not answer a shared ${what} within ${this.timeoutMs} ms`));
        return TIMED_OUT;
      }
      this.succeeded();
      return answer;
    } catch (error) {
      this.fallbacks++;
      this.failed(error);
      return TIMED_OUT;
    } finally {
      clearTimeout(timer);
    }
  }

  private failed(error: unknown): void {
    const first = this.retryAt === 0;
    this.retryAt = this.now() + this.retryMs;
    if (!first) return;
    const message =
      'limits: the broker cannot count streams and publishes across nodes; each node enforces ' +
      'the limits on its own until it can again';
    if (this.logger !== undefined) this.logger.warn({ err: error }, message);
    else this.onError?.(error, message);
  }

  private succeeded(): void {
    if (this.retryAt === 0) return;
    this.retryAt = 0;
    // The bus was likely down too: the roster may have dropped nodes that are alive.
    this.settledAt = this.now() + this.settleMs;
    // Good news is logged, not reported as an error: without a logger it goes unsaid.
    this.logger?.info({}, 'limits: the broker counts streams and publishes across nodes again');
    for (const [key, count] of this.unreleased) {
      this.unreleased.delete(key);
      for (let i = 0; i < count; i++) this.release(key);
    }
  }
}
