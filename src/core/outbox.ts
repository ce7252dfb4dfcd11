import type { HeraldEvent } from './event.ts';

export type OverflowPolicy = 'disconnect' | 'drop-oldest';

export interface OutboxLimits {
  readonly maxEvents: number;
  readonly maxBytes: number;
}

/**
 * The events waiting for one subscriber's socket, each with the frame this subscriber gets (shared
 * with every subscriber of the same visibility), so queueing costs no copy. Usually it empties
 * every tick; it only grows while the socket is full, and that is where conflation and priorities
 * act.
 */
export class Outbox {
  // Parallel arrays rather than an entry object per queued event: no allocation per recipient.
  // They keep their length when emptied (the slots are cleared, and `tail` marks the end): an
  // array cut to length 0 gives up its backing store, and the next event would allocate again.
  private items: (HeraldEvent | undefined)[] = [];
  private frames: (Uint8Array | undefined)[] = [];
  private head = 0;
  private tail = 0;
  count = 0;
  bytes = 0;
  /**
   * Canonical topic → key → index of the queued event holding that latest-value slot: the slot the
   * log keeps latest values by (tenant, topic, key; a subscriber is of one tenant). Nested rather
   * than one joined string key, so a keyed event costs no string per recipient. Created on first
   * keyed event.
   */
  private keys: Map<string, Map<string, number>> | undefined;

  push(event: HeraldEvent, frame: Uint8Array): void {
    const key = event.key;
    if (key !== undefined) {
      const topic = event.topics[0] as string;
      this.keys ??= new Map();
      let slots = this.keys.get(topic);
      if (slots === undefined) {
        slots = new Map();
        this.keys.set(topic, slots);
      }
      const previous = slots.get(key);
      // Conflation: the newer value replaces the queued one. It takes the newer position rather
      // than the older one, so ids still reach the client in log order.
      if (previous !== undefined) this.removeAt(previous);
      slots.set(key, this.tail);
    }
    this.items[this.tail] = event;
    this.frames[this.tail] = frame;
    this.tail++;
    this.count++;
    this.bytes += frame.byteLength;
  }

  /** Over its limits, never for a single event: one event however large always gets through. */
  isOver(limits: OutboxLimits): boolean {
    return this.count > 1 && (this.count > limits.maxEvents || this.bytes > limits.maxBytes);
  }

  /**
   * Drops the oldest events until the outbox is within its limits. A `high` event is never dropped
   * while a `normal` one is queued. Returns how many were dropped.
   */
  evict(limits: OutboxLimits): number {
    let dropped = 0;
    while (this.isOver(limits)) {
      let victim = -1;
      for (let i = this.head; i < this.tail; i++) {
        if (this.items[i]?.priority === 'normal') {
          victim = i;
          break;
        }
      }
      this.removeAt(victim === -1 ? this.head : victim);
      dropped++;
    }
    return dropped;
  }

  /** Drops queued events from the front while `test` holds for them. */
  dropWhile(test: (event: HeraldEvent) => boolean): void {
    for (let i = this.head; i < this.tail; i++) {
      const event = this.items[i];
      if (event === undefined) continue;
      if (!test(event)) return;
      this.removeAt(i);
    }
  }

  /**
   * Puts the queued frames into `out` in order from index `at` (its end unless given) and empties
   * the outbox. Returns the last event's id.
   */
  drainInto(out: Uint8Array[], at = out.length): string | undefined {
    let lastId: string | undefined;
    for (let i = this.head; i < this.tail; i++) {
      const event = this.items[i];
      if (event !== undefined) {
        out[at++] = this.frames[i] as Uint8Array;
        lastId = event.id;
      }
    }
    this.clear();
    return lastId;
  }

  clear(): void {
    if (this.items.length > KEPT_SLOTS) {
      // It grew while the socket was full: not worth keeping that much room.
      this.items = [];
      this.frames = [];
    } else {
      for (let i = this.head; i < this.tail; i++) {
        this.items[i] = undefined;
        this.frames[i] = undefined;
      }
    }
    this.head = 0;
    this.tail = 0;
    this.count = 0;
    this.bytes = 0;
    this.keys?.clear();
  }

  private removeAt(index: number): void {
    const event = this.items[index];
    if (event === undefined) return;
    this.items[index] = undefined;
    this.count--;
    this.bytes -= (this.frames[index] as Uint8Array).byteLength;
    this.frames[index] = undefined;
    if (event.key !== undefined) {
      const slots = this.keys?.get(event.topics[0] as string);
      if (slots?.get(event.key) === index) slots.delete(event.key);
    }
    while (this.head < this.tail && this.items[this.head] === undefined) this.head++;
  }
}

/** Slots an emptied outbox keeps for the next events; past this it starts over. */
const KEPT_SLOTS = 64;
