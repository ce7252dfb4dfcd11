import { Outbox } from './outbox.ts';
import { SubscriberRequest, type SubscriberRequestInit } from './subscriber-request.ts';

/**
 * The transport side of one stream: a Node response, a web ReadableStream, a test double. The
 * hub writes encoded frames; the transport reports back through the subscriber's `drained()` and
 * `closed()`.
 */
export interface Sink {
  /** Writes the chunks in order. Returns false when the transport's buffer is full. */
  write(chunks: readonly Uint8Array[]): boolean;
  /** Ends the stream after what was written. */
  end(): void;
  /** Drops the connection at once, discarding anything still buffered. */
  destroy(): void;
}

/**
 * What a stream asks for, once its credential has been checked: what it wants to see (the
 * request's fields), where to resume, and what its transport needs.
 */
export interface Subscription extends SubscriberRequestInit {
  /** Where to resume: the `Last-Event-ID` header, else the `lastEventId` query parameter. */
  readonly lastEventId?: string | undefined;
  /**
   * Where to resume when the transport has already looked `lastEventId` up (it had to answer
   * with where the stream starts): after this log position, or from the oldest retained event
   * (`null`). Wins over `lastEventId`.
   */
  readonly replayAfter?: string | null | undefined;
  /**
   * `false` for a plain SSE stream that speaks another protocol over the hub (Mercure): no
   * `herald.*` events; it opens with a comment instead. Default true.
   */
  readonly systemEvents?: boolean | undefined;
  /**
   * The stream only carries other subscriptions' frames (one stream for many: `http/mux.ts`): it
   * is not counted as a connection or an opened stream, since each of those it carries is.
   */
  readonly carrier?: boolean | undefined;
  /** Called once when the stream ends, whoever ends it (releases admission slots). */
  readonly onClose?: (() => void) | undefined;
  /** The id of the request that opened the stream, for log lines about it; opaque to the hub. */
  readonly requestId?: string | undefined;
  /**
   * The stream asked for `herald.presence` notices on its exact topics (`presence=1`): who joins
   * and leaves them, across the cluster (src/cluster/presence-feed.ts).
   */
  readonly presence?: boolean | undefined;
  /**
   * History to start with, before live events, when there is nothing to resume from: a resume
   * point (`lastEventId`, `replayAfter`) wins and this is ignored.
   */
  readonly start?: HistoryStart | undefined;
}

/**
 * What a new stream or first poll asks to start with: the last `count` matching events (none
 * accepted before `since`, ms since the epoch, when given), or the latest event of every key.
 */
export type HistoryStart =
  | {
      readonly kind: 'rewind';
      readonly count: number;
      readonly since?: number | undefined;
      /**
       * `count` is the hub's bound, not the client's number (`since` alone): more matching
       * events than it make the history incomplete.
       */
      readonly capped?: boolean | undefined;
    }
  | { readonly kind: 'latest' };

export type SubscriberState = 'replaying' | 'live' | 'closed';

export type CloseReason =
  | 'client'
  | 'overflow'
  | 'lifetime'
  | 'idle'
  | 'expired'
  | 'shutdown'
  | 'error'
  /** The broker's log was lost or replaced: the client resumes and is told with `herald.gap`. */
  | 'reset'
  /** An admin ended it (`POST /v1/connections/disconnect`): the client was told why (`herald.disconnect`). */
  | 'disconnected';

/** The hub's side of the relationship, so a subscriber can hand transport events back to it. */
export interface SubscriberOwner {
  drained(subscriber: Subscriber): void;
  detach(subscriber: Subscriber, reason: CloseReason): void;
}

/**
 * One open stream: what it asked for (the `SubscriberRequest` it extends) and the state of its
 * connection, declared here. Between registration and the end of its replay it is `replaying`:
 * live events collect in its outbox but are not written, so the history it is sent and the live
 * events that follow meet without a gap or a duplicate.
 *
 * The request is the base class rather than a field so that both are one object: fan-out reads
 * the request (filter, grants, permissions) and the connection of every recipient of every event,
 * and a second object per subscriber measurably slowed it. The connection's fields are plain and
 * public for the same reason: the hub's parts (fan-out, flush, replay, ticker) read and set them
 * on every event, where a getter or a callback would cost.
 */
export class Subscriber extends SubscriberRequest {
  readonly id: string;
  /**
   * Proves that a request to change this stream comes from whoever holds it: sent only on the
   * stream itself (in `herald.connected`), never logged or listed, unlike `id`.
   */
  readonly secret: string;
  readonly sink: Sink;
  /** `false`: a plain SSE stream of another protocol (Mercure), without `herald.*` events. */
  readonly systemEvents: boolean;
  /** Carries other subscriptions' frames, and is not counted itself (see `Subscription`). */
  readonly carrier: boolean;
  readonly onClose: (() => void) | undefined;
  readonly requestId: string | undefined;
  /** Asked for `herald.presence` notices on its exact topics. */
  readonly presence: boolean;
  /** When the stream was opened, ms since the epoch. */
  readonly openedAt: number;
  /** When the lifetime limit ends this stream; Infinity without one. */
  readonly deadline: number;

  // Where the stream stands.
  state: SubscriberState = 'replaying';
  /** The last dispatch this subscriber was considered for: one event reaches it once, whatever its topics. */
  stamp = 0;
  lastSentId: string | undefined;
  /** While replaying: the last log position the replay must reach. */
  replayUntil = '';
  /** The client already has everything up to this position (it resumed ahead of this node's feed). */
  skipThrough: string | undefined;
  /** Events dropped by `drop-oldest` and not yet reported with a `herald.gap`. */
  dropped = 0;

  // Flags the hub's parts keep.
  /** The sink refused more; nothing is written until it drains. */
  blocked = false;
  /** Waiting in the hub's flush list. */
  dirty = false;
  /** In the hub's index: from registration (once the broker runs) until it closes. */
  indexed = false;
  /** `herald.reauth` has been sent. */
  warnedOfExpiry = false;

  // What the ticker and the stats read.
  lastWriteAt: number;
  lastEventAt: number;
  /** Bytes handed to the sink so far. */
  bytesWritten = 0;
  /** Live events written to it so far (the per-tenant figure `delivered`: one add per flush of this stream). */
  delivered = 0;

  private readonly owner: SubscriberOwner;
  private drainWaiters: (() => void)[] | undefined;
  /** Made on the first event: an idle stream never needs one. */
  private queue: Outbox | undefined;

  constructor(
    id: string,
    subscription: Subscription,
    sink: Sink,
    owner: SubscriberOwner,
    now: number,
    deadline: number,
  ) {
    super(subscription);
    this.id = id;
    this.secret = newSecret();
    this.onClose = subscription.onClose;
    this.requestId = subscription.requestId;
    this.presence = subscription.presence === true;
    this.openedAt = now;
    this.systemEvents = subscription.systemEvents ?? true;
    this.carrier = subscription.carrier === true;
    this.sink = sink;
    this.owner = owner;
    this.lastWriteAt = now;
    this.lastEventAt = now;
    this.deadline = deadline;
  }

  /** The events waiting for the socket. */
  get outbox(): Outbox {
    this.queue ??= new Outbox();
    return this.queue;
  }

  /** How many events wait, without making an outbox for it. */
  get queuedEvents(): number {
    return this.queue === undefined ? 0 : this.queue.count;
  }

  get queuedBytes(): number {
    return this.queue === undefined ? 0 : this.queue.bytes;
  }

  /** A getter, so checks after an `await` are not narrowed away by the compiler. */
  get isClosed(): boolean {
    return this.state === 'closed';
  }

  write(chunks: readonly Uint8Array[], now: number): boolean {
    if (this.state === 'closed') return false;
    this.lastWriteAt = now;
    for (let i = 0; i < chunks.length; i++) this.bytesWritten += (chunks[i] as Uint8Array).byteLength;
    if (!this.sink.write(chunks)) this.blocked = true;
    return !this.blocked;
  }

  /** Resolves once the sink has room again (or the stream is gone). */
  waitForDrain(): Promise<void> {
    if (!this.blocked || this.state === 'closed') return Promise.resolve();
    return new Promise((resolve) => {
      this.drainWaiters ??= [];
      this.drainWaiters.push(resolve);
    });
  }

  /** Transport: the sink has room again. */
  drained(): void {
    if (!this.blocked) return;
    this.blocked = false;
    this.releaseWaiters();
    this.owner.drained(this);
  }

  /** Transport: the client went away. */
  closed(): void {
    this.owner.detach(this, 'client');
  }

  /** Hub: this stream is over; wake anything waiting on it. */
  markClosed(): void {
    this.state = 'closed';
    this.queue?.clear();
    this.releaseWaiters();
  }

  private releaseWaiters(): void {
    const waiters = this.drainWaiters;
    if (waiters === undefined) return;
    this.drainWaiters = undefined;
    for (const resolve of waiters) resolve();
  }
}

/** 128 random bits, base64url: as hard to guess as a UUID, in 22 characters. */
function newSecret(): string {
  const bytes = globalThis.crypto.getRandomValues(new Uint8Array(16));
  let text = '';
  for (const byte of bytes) text += String.fromCharCode(byte);
  return btoa(text).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/**
 * Compares a presented secret with the stream's in time that depends only on their lengths, so
 * the answer's timing does not tell how much of a guess was right.
 */
export function sameSecret(presented: string, secret: string): boolean {
  if (presented.length !== secret.length) return false;
  let difference = 0;
  for (let i = 0; i < secret.length; i++) difference |= presented.charCodeAt(i) ^ secret.charCodeAt(i);
  return difference === 0;
}
