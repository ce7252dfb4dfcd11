import type { HubCounters } from './hub-state.ts';
import { LatencyHistogram } from './latency.ts';
import { GAP_EVENT, type GapPayload } from './protocol/system-events.ts';
import { encodeSystemEvent } from './sse.ts';
import type { Subscriber } from './subscriber.ts';

const EMPTY_CHUNK = new Uint8Array(0);

/** Events of one flush whose publish-to-write latency is recorded. */
const MAX_LATENCY_SAMPLES_PER_FLUSH = 4_096;

/** Runs `fn` in the next turn of the event loop, after the I/O of this one. */
export const schedule: (fn: () => void) => void =
  typeof setImmediate === 'function' ? (fn) => setImmediate(fn) : (fn) => setTimeout(fn, 0);

/**
 * Writes what the streams have queued: once per tick, so a burst of events costs one write per
 * socket. Fan-out marks a live, writable stream dirty when it queues an event for it; the flush
 * that follows drains each dirty stream's outbox into a single write.
 */
export class Flusher {
  /** From an event's acceptance to the flush that first writes it, once per event. */
  readonly writeLatency = new LatencyHistogram();
  private readonly counters: HubCounters;
  /** Acceptance times of events dispatched to a writable stream since the last flush. */
  private readonly unflushedTimes = new Float64Array(MAX_LATENCY_SAMPLES_PER_FLUSH);
  private unflushedCount = 0;
  /** Live, writable subscribers with something queued this tick. */
  private dirty: Subscriber[] = [];
  private pending = false;
  /** Reused by every flush of a single event; flushes never overlap. */
  private readonly single: Uint8Array[] = [EMPTY_CHUNK];

  constructor(counters: HubCounters) {
    this.counters = counters;
  }

  markDirty(subscriber: Subscriber): void {
    if (subscriber.dirty) return;
    subscriber.dirty = true;
    this.dirty.push(subscriber);
    if (!this.pending) {
      this.pending = true;
      schedule(this.flush);
    }
  }

  /** An event accepted at `time` was queued for a stream the next flush writes: it measures it. */
  sample(time: number): void {
    // Past the cap, a burst is sampled by its first events: the figure stays cheap.
    if (this.unflushedCount < MAX_LATENCY_SAMPLES_PER_FLUSH)
      this.unflushedTimes[this.unflushedCount++] = time;
  }

  /** The socket of a live stream has room again: what it still holds goes out with the next flush. */
  drained(subscriber: Subscriber): void {
    if (subscriber.state === 'live' && subscriber.queuedEvents + subscriber.dropped > 0)
      this.markDirty(subscriber);
  }

  readonly flush = (): void => {
    this.pending = false;
    const list = this.dirty;
    this.dirty = [];
    const now = Date.now();
    for (const subscriber of list) {
      subscriber.dirty = false;
      if (subscriber.state === 'live' && !subscriber.blocked) this.flushOne(subscriber, now);
    }
    // Once per event, not per recipient: the figure says how long the hub took, not how many heard.
    for (let i = 0; i < this.unflushedCount; i++) {
      this.writeLatency.observe(now - (this.unflushedTimes[i] as number));
    }
    this.unflushedCount = 0;
  };

  /** Writes what `subscriber` has queued, with a `herald.gap` first for what its outbox dropped. */
  flushOne(subscriber: Subscriber, now: number): void {
    const count = subscriber.queuedEvents;
    // One event, the usual case, goes out in an array of one slot that is reused and never
    // resized: nothing is allocated per recipient. A burst pays for its array once per write.
    const out = count === 1 && subscriber.dropped === 0 ? this.single : [];
    if (subscriber.dropped > 0 && !subscriber.systemEvents) subscriber.dropped = 0;
    if (subscriber.dropped > 0) {
      out.push(
        encodeSystemEvent(GAP_EVENT, {
          lastEventId: subscriber.lastSentId ?? null,
          reason: 'overflow',
          dropped: subscriber.dropped,
        } satisfies GapPayload),
      );
      this.counters.gaps++;
      subscriber.dropped = 0;
    }
    const lastId =
      count === 0 ? undefined : subscriber.outbox.drainInto(out, out === this.single ? 0 : out.length);
    if (lastId !== undefined) subscriber.lastSentId = lastId;
    this.counters.delivered += count;
    subscriber.delivered += count;
    if (out === this.single || out.length > 0) subscriber.write(out, now);
    // The frame is not kept alive until the next flush.
    this.single[0] = EMPTY_CHUNK;
  }
}
