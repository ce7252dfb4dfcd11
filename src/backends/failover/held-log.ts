import type { EventDraft, HeraldEvent } from '../../core/event.ts';
import { chosenIdKey } from '../codec.ts';

export interface HeldEntry {
  /** What the publisher sent, for the broker once it is back (with the event's id). */
  readonly draft: EventDraft;
  readonly event: HeraldEvent;
  /**
   * Held because its append to the broker failed: the broker may have stored it all the same (its
   * answer was lost with the connection). Looked for in the broker before it is handed over.
   */
  readonly uncertain: boolean;
  /** Found in the broker: not handed over again. */
  stored: boolean;
}

/**
 * What a node accepted while its broker was down, in the order it accepted it: the events not yet
 * handed to the broker (held) and, behind them, those already handed over, kept so that this
 * node's replays of the outage still find them where its streams saw them. Bounded: at most `max`
 * held (the caller refuses more), and the handed-over ones are forgotten first, oldest first.
 */
export class HeldLog {
  readonly max: number;
  private entries: HeldEntry[] = [];
  /** `entries[handedOver..]` are held. */
  private handedOver = 0;
  /** Ids of the kept events, to their entry: chosen ids by `chosenIdKey`, held ids as they are. */
  private readonly ids = new Map<string, HeldEntry>();

  constructor(max: number) {
    this.max = max;
  }

  /** Events not yet in the broker. */
  get held(): number {
    return this.entries.length - this.handedOver;
  }

  /** Whether `count` more would be over the bound. */
  full(count: number): boolean {
    return this.held + count > this.max;
  }

  /** Whether `id` (as the hub named it) is kept in `tenant`, and its event. */
  find(id: string, tenant: string): HeraldEvent | undefined {
    return (this.ids.get(id) ?? this.ids.get(chosenIdKey(tenant, id)))?.event;
  }

  /** Whether an event with this held id is still kept here. */
  keeps(id: string): boolean {
    return this.ids.has(id);
  }

  /** Whether `tenant` has a kept event with the chosen id `id`. */
  chosen(tenant: string, id: string): boolean {
    return this.ids.has(chosenIdKey(tenant, id));
  }

  /**
   * Keeps an event this node delivered at a held position: accepted while the broker was down, or
   * (`stored`) already in the broker but not yet in this node's feed when it went down.
   */
  add(draft: EventDraft, event: HeraldEvent, uncertain: boolean, stored = false): void {
    const entry: HeldEntry = { draft, event, uncertain, stored };
    this.entries.push(entry);
    this.ids.set(event.pos, entry);
    if (event.id !== event.pos) this.ids.set(chosenIdKey(event.tenant, event.id), entry);
    // Handed-over events make room: they are in the broker.
    while (this.entries.length > this.max && this.handedOver > 0) this.forgetOldest();
  }

  /** Up to `count` of the oldest held events. */
  next(count: number): HeldEntry[] {
    return this.entries.slice(this.handedOver, this.handedOver + count);
  }

  /** The held events whose failed append the broker may have stored all the same. */
  uncertain(): HeldEntry[] {
    return this.entries.slice(this.handedOver).filter((entry) => entry.uncertain && !entry.stored);
  }

  /** The oldest `count` held events are in the broker now. */
  handOver(count: number): void {
    this.handedOver = Math.min(this.entries.length, this.handedOver + count);
  }

  /** Kept events after `after` and at or before `until`, in order, by `compare`. */
  between(after: string | null, until: string, compare: (a: string, b: string) => number): HeraldEvent[] {
    const events: HeraldEvent[] = [];
    for (const { event } of this.entries) {
      if (after !== null && compare(event.pos, after) <= 0) continue;
      if (compare(event.pos, until) > 0) break;
      events.push(event);
    }
    return events;
  }

  private forgetOldest(): void {
    const entry = this.entries.shift() as HeldEntry;
    this.handedOver--;
    this.ids.delete(entry.event.pos);
    if (entry.event.id !== entry.event.pos) this.ids.delete(chosenIdKey(entry.event.tenant, entry.event.id));
  }
}
