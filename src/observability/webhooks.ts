import { createHmac } from 'node:crypto';
import { endpointOf } from '../auth/auth-url.ts';
import { MIN_SECRET_BYTES } from '../auth/jwt.ts';
import { redactUrl } from '../backends/redact-url.ts';
import type { LeftReason } from '../cluster/roster.ts';
import type { StreamLifecycle } from '../core/hub.ts';
import type { CloseReason, Subscriber } from '../core/subscriber.ts';
import type { HeraldLogger } from './logger.ts';

/**
 * App hooks, the telling half (`--webhook-url`, `createHerald({ webhook })`): streams opening and
 * closing on this node, and presence changes (src/observability/presence-notices.ts), POSTed to
 * the app as JSON, signed, in batches. The hub only ever pushes a notice onto a bounded queue, at
 * stream open and close and never per event; a timer sends it later (after `batchDelayMs`, so that
 * a churn of streams fills a POST rather than costing one each), so a slow, failing or hanging
 * endpoint costs the streams nothing. A failed batch is
 * retried with exponential backoff and jitter; when the queue is full the oldest notice goes,
 * counted and logged, so an endpoint that is down for long costs at most the bound in memory.
 *
 * Signed as Stripe signs its webhooks: `Herald-Signature: t=<unix seconds>,v1=<hex>`, the HMAC-SHA256
 * of `<t>.<body>` under the shared secret; the timestamp lets the app refuse a replayed delivery.
 * Each notice has an `id`: a retried batch may arrive twice, and the app drops what it has seen.
 */

export interface WebhookOptions {
  /** The app's endpoint, http:// or https://. */
  readonly url: string;
  /** The HMAC-SHA256 key deliveries are signed with: at least 32 bytes. */
  readonly secret: string;
  /** How long one delivery may take, ms. Default 5 000. */
  readonly timeoutMs?: number;
  /** Notices waiting to be sent, the batch in flight included; past it the oldest go. Default 10 000. */
  readonly maxQueue?: number;
  /** Notices in one POST. Default 100. */
  readonly maxBatch?: number;
  /**
   * How long the first notice of a batch waits for others before the batch is sent, ms (a full
   * batch goes at once): one POST then carries a burst of opens and closes, which costs the
   * node far less CPU than a POST each. 0 sends each notice as soon as the last POST is done.
   * Default 100.
   */
  readonly batchDelayMs?: number;
  /** First retry after about this long, doubling each time, ms. Default 500. */
  readonly retryBaseMs?: number;
  /** Longest wait between retries, ms. Default 60 000. */
  readonly retryMaxMs?: number;
  /** Attempts at one batch before it is given up (counted as failed). Default 10. */
  readonly maxAttempts?: number;
  /** FOR TESTS ONLY: accept a secret shorter than 32 bytes. */
  readonly testOnlyAllowWeakSecrets?: boolean;
}

/** What every notice has: its id (for the app to drop one delivered twice), when, and which node. */
interface Notice {
  readonly id: string;
  readonly at: string;
  readonly node: string;
}

interface StreamNotice extends Notice {
  readonly connectionId: string;
  readonly requestId?: string | undefined;
  readonly tenant: string;
  readonly subject?: string | undefined;
}

/**
 * A subject's first stream on an exact topic opened on `node` (`presence.join`), or its last one
 * there closed (`presence.leave`): node-local, see src/observability/presence-notices.ts.
 */
export interface PresenceNotice extends Notice {
  readonly type: 'presence.join' | 'presence.leave';
  readonly tenant: string;
  readonly topic: string;
  readonly subject: string;
  /** The subject's streams on the topic on `node` after the change. */
  readonly connections: number;
}

/** `node` dropped out of the cluster: its presence members are gone. Sent once, by `sentBy`. */
export interface NodeLeftNotice extends Notice {
  readonly type: 'node.left';
  readonly reason: LeftReason;
  readonly sentBy: string;
}

/** What the app receives: `{"events": [WebhookNotice, …]}`. */
export type WebhookNotice =
  | (StreamNotice & { readonly type: 'stream.opened'; readonly topics: readonly string[] })
  | (StreamNotice & {
      readonly type: 'stream.closed';
      readonly reason: CloseReason;
      readonly durationMs: number;
      readonly bytes: number;
    })
  | PresenceNotice
  | NodeLeftNotice;

/** A new notice's `id` and `at`. */
export function noticeStamp(): { id: string; at: string } {
  return { id: globalThis.crypto.randomUUID(), at: new Date().toISOString() };
}

export interface WebhookStats {
  /** Waiting, the batch in flight included. */
  queued: number;
  delivered: number;
  /** Deliveries attempted again after a failure. */
  retries: number;
  /** Dropped, oldest first, because the queue was full. */
  dropped: number;
  /** Given up after `maxAttempts`, or unsent when the hub closed. */
  failed: number;
}

export const SIGNATURE_HEADER = 'herald-signature';

/** The `Herald-Signature` value for `body` sent at `timestamp` (seconds since the epoch). */
export function webhookSignature(secret: string, timestamp: number, body: string): string {
  const mac = createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex');
  return `t=${timestamp},v1=${mac}`;
}

export class Webhooks {
  private readonly url: URL;
  /** Basic credentials from the URL. */
  private readonly ownHeaders: Record<string, string>;
  /** The URL as logs show it: its credentials masked. */
  private readonly shownUrl: string;
  private readonly secret: string;
  private readonly timeoutMs: number;
  private readonly maxQueue: number;
  private readonly maxBatch: number;
  private readonly batchDelayMs: number;
  private readonly retryBaseMs: number;
  private readonly retryMaxMs: number;
  private readonly maxAttempts: number;
  private readonly nodeId: string;
  private readonly logger: HeraldLogger | undefined;
  private queue: WebhookNotice[] = [];
  /** The batch being sent or waiting for its retry: it leaves the queue only once delivered or given up. */
  private inFlight: WebhookNotice[] | undefined;
  private sending: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** The timer waits for a batch to fill, which a full batch cuts short (not a retry's backoff, not a send due now). */
  private waitingForBatch = false;
  /** When the oldest notice waiting (not in flight) was queued, ms: its batch goes by `batchDelayMs` after. */
  private firstQueuedAt = 0;
  private attempt = 0;
  private closed = false;
  /** Cuts short a delivery still hanging when the hub closes. */
  private readonly stopping = new AbortController();
  /** Set while deliveries fail or notices drop, so the log says so once per spell, not per notice. */
  private failing = false;
  private dropping = false;
  private readonly counts = { delivered: 0, retries: 0, dropped: 0, failed: 0 };

  constructor(options: WebhookOptions, nodeId: string, logger?: HeraldLogger) {
    ({ url: this.url, headers: this.ownHeaders } = endpointOf(options.url, 'webhook.url'));
    this.shownUrl = redactUrl(options.url);
    if (typeof options.secret !== 'string' || options.secret === '') {
      throw new Error('webhook.secret is required: deliveries are signed with it');
    }
    const bytes = Buffer.byteLength(options.secret);
    if (bytes < MIN_SECRET_BYTES && options.testOnlyAllowWeakSecrets !== true) {
      throw new Error(
        `webhook.secret is ${bytes} bytes long; it must be at least ${MIN_SECRET_BYTES}, or anyone who sees one ` +
          'signed delivery can guess it offline. Generate one with `openssl rand -base64 32`',
      );
    }
    this.secret = options.secret;
    this.timeoutMs = positive(options.timeoutMs, 5_000, 'timeoutMs');
    this.maxQueue = Math.ceil(positive(options.maxQueue, 10_000, 'maxQueue'));
    this.maxBatch = Math.min(Math.ceil(positive(options.maxBatch, 100, 'maxBatch')), this.maxQueue);
    this.batchDelayMs = notNegative(options.batchDelayMs, DEFAULT_BATCH_DELAY_MS, 'batchDelayMs');
    this.retryBaseMs = positive(options.retryBaseMs, 500, 'retryBaseMs');
    this.retryMaxMs = positive(options.retryMaxMs, 60_000, 'retryMaxMs');
    this.maxAttempts = positive(options.maxAttempts, 10, 'maxAttempts');
    this.nodeId = nodeId;
    this.logger = logger;
  }

  /** What the hub tells of its streams: each open and close becomes a notice for the app. */
  lifecycle(): StreamLifecycle {
    return {
      opened: (subscriber) =>
        this.enqueue({
          ...this.notice(subscriber),
          type: 'stream.opened',
          topics: subscriber.selectors.map((selector) => selector.source),
        }),
      closed: (subscriber, reason) =>
        this.enqueue({
          ...this.notice(subscriber),
          type: 'stream.closed',
          reason,
          durationMs: Date.now() - subscriber.openedAt,
          bytes: subscriber.bytesWritten,
        }),
    };
  }

  stats(): WebhookStats {
    return { queued: this.queue.length + (this.inFlight?.length ?? 0), ...this.counts };
  }

  /** Queues a notice; never waits, never throws. */
  enqueue(notice: WebhookNotice): void {
    if (this.closed) return;
    if (this.queue.length === 0) this.firstQueuedAt = Date.now();
    this.queue.push(notice);
    if (this.queue.length + (this.inFlight?.length ?? 0) > this.maxQueue) {
      this.queue.shift();
      this.counts.dropped++;
      if (!this.dropping) {
        this.dropping = true;
        this.logger?.warn(
          { event: 'webhook.dropped', maxQueue: this.maxQueue },
          `webhook queue full (${this.maxQueue} notices): dropping the oldest until deliveries catch up`,
        );
      }
    }
    this.schedule(this.queue.length >= this.maxBatch ? 0 : this.batchDelayMs, true);
  }

  /**
   * Sends what is queued for up to `graceMs` (the hub has just closed its streams, and their
   * notices are queued), then stops; whatever is left is counted as failed.
   */
  async close(graceMs = Math.min(this.timeoutMs, 2_000)): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    const deadline = Date.now() + graceMs;
    if (this.sending !== undefined) {
      let waiting: NodeJS.Timeout | undefined;
      const grace = new Promise<void>((resolve) => {
        waiting = setTimeout(resolve, graceMs);
      });
      await Promise.race([this.sending, grace]);
      clearTimeout(waiting);
      this.stopping.abort();
      await this.sending;
    }
    for (;;) {
      const left = deadline - Date.now();
      const batch = this.inFlight ?? this.queue.splice(0, this.maxBatch);
      this.inFlight = undefined;
      if (batch.length === 0) return;
      if (left <= 0 || !(await this.deliver(batch, AbortSignal.timeout(left)))) {
        this.counts.failed += batch.length + this.queue.length;
        this.queue = [];
        return;
      }
      this.counts.delivered += batch.length;
    }
  }

  private notice(subscriber: Subscriber): StreamNotice {
    return {
      ...noticeStamp(),
      node: this.nodeId,
      connectionId: subscriber.id,
      requestId: subscriber.requestId,
      tenant: subscriber.tenant,
      subject: subscriber.subject,
    };
  }

  /**
   * Sends the next batch in `delayMs`: unless a send is under way (it schedules the next when it
   * is done) or one is already due, which only a batch that just filled (`delayMs` 0) brings
   * forward, and only a wait for notices, never a retry's backoff.
   */
  private schedule(delayMs: number, forBatch: boolean): void {
    if (this.closed || this.sending !== undefined) return;
    if (this.timer !== undefined) {
      if (delayMs > 0 || !this.waitingForBatch) return;
      clearTimeout(this.timer);
    }
    this.waitingForBatch = forBatch && delayMs > 0;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.sending = this.pump().then(({ next, forBatch }) => {
        this.sending = undefined;
        if (next !== undefined) this.schedule(next, forBatch);
      });
    }, delayMs);
    this.timer.unref();
  }

  /** When the notices left waiting after a send go: at once when they fill a batch, else by their delay. */
  private nextBatch(): { next: number | undefined; forBatch: boolean } {
    if (this.queue.length === 0) return { next: undefined, forBatch: true };
    if (this.queue.length >= this.maxBatch) return { next: 0, forBatch: true };
    // The oldest of them came no earlier than `firstQueuedAt` (set for the batch just sent, or
    // since): waiting from then never holds one past its delay.
    return { next: Math.max(0, this.firstQueuedAt + this.batchDelayMs - Date.now()), forBatch: true };
  }

  /**
   * Sends the next batch; resolves with when to send again (undefined: when a notice comes), and
   * whether that is a wait for notices or a retry's backoff.
   */
  private async pump(): Promise<{ next: number | undefined; forBatch: boolean }> {
    const batch = this.inFlight ?? this.queue.splice(0, this.maxBatch);
    if (batch.length === 0) return { next: undefined, forBatch: true };
    this.inFlight = batch;
    if (this.attempt > 0) this.counts.retries++;
    const delivered = await this.deliver(
      batch,
      AbortSignal.any([AbortSignal.timeout(this.timeoutMs), this.stopping.signal]),
    );
    if (delivered) {
      this.counts.delivered += batch.length;
      this.inFlight = undefined;
      this.attempt = 0;
      this.recovered();
      return this.nextBatch();
    }
    this.attempt++;
    if (this.attempt >= this.maxAttempts) {
      this.counts.failed += batch.length;
      this.inFlight = undefined;
      this.attempt = 0;
      this.logger?.warn(
        { event: 'webhook.failed', notices: batch.length, attempts: this.maxAttempts },
        `webhook: gave up a batch of ${batch.length} after ${this.maxAttempts} attempts`,
      );
    }
    return { next: this.backoff(Math.max(1, this.attempt)), forBatch: false };
  }

  /** Around `retryBaseMs · 2^(attempt−1)`, capped, and spread over its upper half so nodes do not retry in step. */
  private backoff(attempt: number): number {
    const ceiling = Math.min(this.retryMaxMs, this.retryBaseMs * 2 ** Math.min(attempt - 1, 30));
    return ceiling / 2 + Math.random() * (ceiling / 2);
  }

  /** One POST of `batch`; true when the app answered 2xx. */
  private async deliver(batch: readonly WebhookNotice[], signal: AbortSignal): Promise<boolean> {
    const body = JSON.stringify({ events: batch });
    const timestamp = Math.floor(Date.now() / 1000);
    try {
      const response = await fetch(this.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'user-agent': 'herald-webhooks',
          ...this.ownHeaders,
          [SIGNATURE_HEADER]: webhookSignature(this.secret, timestamp, body),
        },
        body,
        redirect: 'manual',
        signal,
      });
      await response.body?.cancel().catch(() => {});
      if (response.ok) return true;
      this.failed(`answered ${response.status}`);
    } catch (error) {
      const name = (error as { name?: string }).name;
      const cause = (error as { cause?: { code?: string } }).cause;
      this.failed(
        name === 'TimeoutError' || name === 'AbortError'
          ? 'did not answer in time'
          : `could not be reached: ${cause?.code ?? (error as Error).message}`,
      );
    }
    return false;
  }

  private failed(why: string): void {
    if (this.failing) return;
    this.failing = true;
    this.logger?.warn(
      { event: 'webhook.retrying' },
      `webhook: the endpoint ${this.shownUrl} ${why}; retrying with backoff`,
    );
  }

  private recovered(): void {
    if (!this.failing && !this.dropping) return;
    this.failing = false;
    this.dropping = false;
    this.logger?.info({ event: 'webhook.recovered', ...this.counts }, 'webhook: deliveries resumed');
  }
}

/** Several parts told of every stream's open and close: the connection log, then webhooks. */
export function chainLifecycles(
  ...parts: readonly (StreamLifecycle | undefined)[]
): StreamLifecycle | undefined {
  const present = parts.filter((part): part is StreamLifecycle => part !== undefined);
  if (present.length <= 1) return present[0];
  return {
    opened(subscriber) {
      for (const part of present) part.opened(subscriber);
    },
    closed(subscriber, reason) {
      for (const part of present) part.closed(subscriber, reason);
    },
    changed(subscriber, before) {
      for (const part of present) part.changed?.(subscriber, before);
    },
  };
}

/** How long the first notice of a batch waits for others by default, ms. */
export const DEFAULT_BATCH_DELAY_MS = 100;

function notNegative(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value < 0) throw new Error(`webhook.${name} must be a number of 0 or more`);
  return value;
}

function positive(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value <= 0) throw new Error(`webhook.${name} must be a number more than 0`);
  return value;
}
