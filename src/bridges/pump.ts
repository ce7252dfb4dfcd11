import { HeraldError } from '../core/errors.ts';
import type { PublishInput } from '../core/event.ts';
import { mapMessage } from './map.ts';
import type { BridgePublisher } from './publisher.ts';
import { BridgeError, type BridgeInlet } from './source.ts';
import type { BridgeSpec } from './spec.ts';

export { BridgeError } from './source.ts';

export interface BridgeCounters {
  /** Messages this node took charge of (for Redis: while it held the bridge's lease). */
  received: number;
  /** Messages Herald accepted as events. */
  published: number;
  /** Messages that did not become events: mapping failed, Herald refused them, or the backlog was full. */
  rejected: number;
}

interface Item {
  readonly channel: string;
  readonly input: PublishInput;
}

export interface PumpOptions {
  /** Messages waiting for Herald, at most; more are rejected. */
  readonly maxPending: number;
  /** Events in one `herald.publish` call. */
  readonly maxBatch: number;
  readonly report: (error: BridgeError) => void;
}

const FIRST_RETRY_MS = 100;
const LAST_RETRY_MS = 5_000;

/**
 * Feeds one bridge's messages into Herald, in the order they came. Each message is mapped on
 * arrival (a mapping error is reported at once); mapped events wait in a bounded queue and go
 * to `herald.publish` in batches, one call at a time, so the log keeps the source's order.
 *
 * While Herald answers 503 (its broker is down), the batch waits and is tried again with backoff
 * instead of being dropped: the source will not send it again. What does not fit in the queue
 * meanwhile is rejected, so a long outage costs messages, not memory.
 */
export class Pump implements BridgeInlet {
  readonly spec: BridgeSpec;
  readonly counters: BridgeCounters = { received: 0, published: 0, rejected: 0 };
  private readonly herald: BridgePublisher;
  private readonly options: PumpOptions;
  private readonly queue: Item[] = [];
  private draining: Promise<void> | undefined;
  /** Items at the queue's front that a `herald.publish` under way holds. */
  private inFlight = 0;
  private closed = false;
  /** Herald was found unavailable and has not accepted anything since: report that once. */
  private unavailable = false;
  private wake: (() => void) | undefined;

  constructor(herald: BridgePublisher, spec: BridgeSpec, options: PumpOptions) {
    this.herald = herald;
    this.spec = spec;
    this.options = options;
  }

  get pending(): number {
    return this.queue.length;
  }

  /** One message from the source. Never throws: whatever goes wrong is counted and reported. */
  push(channel: string, body: string): void {
    this.counters.received++;
    if (this.closed) {
      this.reject(channel, 'the bridge is closing');
      return;
    }
    let input: PublishInput;
    try {
      input = mapMessage(this.spec, channel, body);
    } catch (error) {
      this.reject(channel, (error as Error).message);
      return;
    }
    if (this.queue.length >= this.options.maxPending) {
      this.reject(
        channel,
        `${this.queue.length} messages are already waiting for Herald; this one is dropped`,
      );
      return;
    }
    this.queue.push({ channel, input });
    this.kick();
  }

  /**
   * Stops taking messages and waits (at most `timeoutMs`) for the queue to reach Herald. What is
   * still queued then is rejected with one report.
   */
  async close(timeoutMs = 2_000): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.wake?.();
    if (this.draining !== undefined) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        this.draining,
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, timeoutMs);
        }),
      ]);
      clearTimeout(timer);
    }
    // A publish still under way settles its own items.
    this.dropFrom(this.inFlight);
  }

  /** Rejects, with one report, what is queued from `index` on. */
  private dropFrom(index: number): void {
    const left = this.queue.length - index;
    if (left <= 0) return;
    this.queue.length = index;
    this.counters.rejected += left;
    this.options.report(
      new BridgeError(this.spec.source, `closed with ${left} message(s) Herald had not accepted yet`),
    );
  }

  /** Starts draining unless a drain is under way; a drain that ends re-checks the queue. */
  private kick(): void {
    if (this.draining !== undefined || this.closed) return;
    const running = this.drain()
      // `send` catches every publish error and `report` never throws (see index.ts): this is a last guard.
      .catch(() => {})
      .finally(() => {
        this.draining = undefined;
        // A message pushed after the loop's last check but before this point is waiting.
        if (this.queue.length > 0) this.kick();
      });
    this.draining = running;
  }

  private async drain(): Promise<void> {
    let backoff = FIRST_RETRY_MS;
    // After `close()` the loop still flushes what is queued (close bounds the wait), but no
    // longer waits out an unavailable Herald.
    while (this.queue.length > 0) {
      const batch = this.queue.slice(0, this.options.maxBatch);
      this.inFlight = batch.length;
      const settled = await this.send(batch);
      this.inFlight = 0;
      this.queue.splice(0, settled);
      if (settled < batch.length) {
        if (this.closed) {
          this.dropFrom(0);
          return;
        }
        await this.sleep(backoff);
        backoff = Math.min(backoff * 2, LAST_RETRY_MS);
      } else {
        backoff = FIRST_RETRY_MS;
      }
    }
  }

  /** Publishes a batch; resolves with how many items from its front are settled (accepted or rejected). */
  private async send(batch: readonly Item[]): Promise<number> {
    try {
      await this.herald.publish(batch.map((item) => item.input));
      this.accepted(batch.length);
      return batch.length;
    } catch (error) {
      if (this.retryable(error)) return 0;
      if (batch.length === 1) {
        this.reject((batch[0] as Item).channel, refusal(error), error);
        return 1;
      }
    }
    // A batch is accepted or refused as a whole: find the refused ones, one event at a time.
    for (let i = 0; i < batch.length; i++) {
      const item = batch[i] as Item;
      try {
        await this.herald.publish([item.input]);
        this.accepted(1);
      } catch (error) {
        if (this.retryable(error)) return i;
        this.reject(item.channel, refusal(error), error);
      }
    }
    return batch.length;
  }

  private accepted(count: number): void {
    this.counters.published += count;
    this.unavailable = false;
  }

  /** 503 means "not now" (the broker is unreachable): the same events will be accepted later. */
  private retryable(error: unknown): boolean {
    if (!(error instanceof HeraldError) || error.status !== 503 || this.herald.hub.isClosing) return false;
    if (!this.unavailable) {
      this.unavailable = true;
      this.options.report(
        new BridgeError(
          this.spec.source,
          `Herald is unavailable (${error.detail}); ${this.queue.length} message(s) wait and are retried`,
          undefined,
          error,
        ),
      );
    }
    return true;
  }

  private reject(channel: string, reason: string, cause?: unknown): void {
    this.counters.rejected++;
    this.options.report(new BridgeError(this.spec.source, reason, channel, cause));
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      const self = this;
      function done(): void {
        clearTimeout(timer);
        self.wake = undefined;
        resolve();
      }
      this.wake = done;
    });
  }
}

function refusal(error: unknown): string {
  if (error instanceof HeraldError) return `Herald refused the event (${error.status}): ${error.detail}`;
  return `publishing failed: ${error instanceof Error ? error.message : String(error)}`;
}
