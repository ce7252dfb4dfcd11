import type { Broadcasting, SharedCounting, WindowCount } from '../../core/cluster.ts';
import { HeraldError } from '../../core/errors.ts';
import type { EventDraft, HeraldEvent } from '../../core/event.ts';
import type {
  BackwardReading,
  Broker,
  HistoryStats,
  LatestEvents,
  LatestKeeping,
  Location,
  LogHealth,
} from '../../core/log.ts';
import { BusListeners } from '../bus-listeners.ts';
import { chosenIdKey, toEvent } from '../codec.ts';
import { DEFAULT_HISTORY_MAX_AGE_MS, DEFAULT_HISTORY_SIZE, positive } from '../history.ts';
import { latestMaxKeysOf } from '../latest.ts';
import { MemoryCounters } from './counters.ts';
import { LatestSlots } from './latest.ts';

export { DEFAULT_HISTORY_MAX_AGE_MS, DEFAULT_HISTORY_SIZE } from '../history.ts';

export interface MemoryBrokerOptions {
  /** Events kept for replay. Default 10 000. */
  readonly maxEvents?: number;
  /** How long an event is kept for replay, in ms. Default 24 h. */
  readonly maxAgeMs?: number;
  /** Latest values per (tenant, topic, key) kept, across tenants; 0: none. Default 10 000. */
  readonly latestMaxKeys?: number;
}

// Digits, a dash, digits: the shape every broker's positions share, which chosen ids may not take.
const POSITION = /^(\d{1,16})-(\d{1,16})$/;

/**
 * The embedded log: one process, bounded history in a ring buffer, ids `<epoch>-<seq>` (the epoch
 * is the start time in ms, so positions are shaped like Redis's entry ids and a chosen id can
 * never be mistaken for one: the hub refuses chosen ids of that shape).
 *
 * A new epoch per process start makes ids from before a restart recognisable: they precede
 * everything in the current epoch, so a client coming back with one gets the whole current
 * history (after a `herald.gap`, since what the old process held is gone).
 */
export class MemoryBroker implements Broker, BackwardReading, LatestKeeping, Broadcasting, SharedCounting {
  readonly kind = 'memory';
  readonly latestMaxKeys: number;
  private readonly epoch: string;
  private readonly epochValue: number;
  private readonly maxEvents: number;
  private readonly maxAgeMs: number;
  /** Slot `seq % maxEvents` holds event `seq`; retained events are `first..last`. */
  private readonly ring: (HeraldEvent | undefined)[] = [];
  private first = 1;
  private last = 0;
  /** Publisher-chosen ids of retained events (keyed by `chosenIdKey`), to their sequence numbers. */
  private readonly chosenIds = new Map<string, number>();
  private feed: ((events: readonly HeraldEvent[]) => void) | undefined;
  private sweeper: ReturnType<typeof setInterval> | undefined;
  /** Undefined when `latestMaxKeys` is 0: keyed appends then cost what unkeyed ones do. */
  private readonly slots: LatestSlots | undefined;
  private readonly bus = new BusListeners();
  private readonly counters = new MemoryCounters();

  constructor(options: MemoryBrokerOptions = {}) {
    this.maxEvents = positive(options.maxEvents ?? DEFAULT_HISTORY_SIZE, 'history size');
    this.maxAgeMs = positive(options.maxAgeMs ?? DEFAULT_HISTORY_MAX_AGE_MS, 'history max age');
    this.latestMaxKeys = latestMaxKeysOf(options.latestMaxKeys);
    this.slots = this.latestMaxKeys > 0 ? new LatestSlots(this.latestMaxKeys) : undefined;
    this.epochValue = Date.now();
    this.epoch = String(this.epochValue);
  }

  async start(feed: (events: readonly HeraldEvent[]) => void): Promise<string> {
    this.feed = feed;
    // Age-based trimming also happens on every append; the sweep releases memory when idle.
    this.sweeper ??= setInterval(() => this.trimByAge(Date.now()), Math.min(this.maxAgeMs, 60_000));
    this.sweeper.unref?.();
    return this.position(this.last);
  }

  async append(drafts: readonly EventDraft[]): Promise<HeraldEvent[]> {
    // Made for the first chosen id only: most events have none.
    let seen: Set<string> | undefined;
    for (const draft of drafts) {
      if (draft.id === undefined) continue;
      if (draft.reuseId === true) continue;
      const key = chosenIdKey(draft.tenant, draft.id);
      seen ??= new Set();
      if (this.chosenIds.has(key) || seen.has(key)) {
        throw new HeraldError(
          409,
          'duplicate-id',
          `id "${draft.id}" is already in the history; ids must be unique`,
        );
      }
      seen.add(key);
    }
    const events: HeraldEvent[] = new Array(drafts.length);
    for (let i = 0; i < drafts.length; i++) {
      const draft = drafts[i] as EventDraft;
      const seq = ++this.last;
      const pos = this.position(seq);
      const event = toEvent(draft, pos);
      const slot = seq % this.maxEvents;
      const evicted = this.ring[slot];
      if (evicted !== undefined) this.forget(evicted);
      this.ring[slot] = event;
      if (draft.id !== undefined) this.chosenIds.set(chosenIdKey(draft.tenant, draft.id), seq);
      if (draft.key !== undefined) this.slots?.keep(event);
      events[i] = event;
    }
    this.first = Math.max(this.first, this.last - this.maxEvents + 1);
    this.trimByAge(drafts[0]?.time ?? Date.now());
    this.feed?.(events);
    return events;
  }

  async locate(id: string, tenant: string): Promise<Location> {
    this.trimByAge(Date.now());
    const chosen = this.chosenIds.get(chosenIdKey(tenant, id));
    if (chosen !== undefined) return { kind: 'found', pos: this.position(chosen) };
    const parsed = parse(id);
    if (parsed === undefined) return { kind: 'unknown' };
    const [epoch, seq] = parsed;
    if (epoch < this.epochValue) return this.expired();
    if (epoch > this.epochValue || seq > this.last) return { kind: 'unknown' };
    // Replay starts after `seq`: everything from seq + 1 on must still be here.
    if (seq < this.first - 1) return this.expired();
    return { kind: 'found', pos: this.position(seq) };
  }

  private expired(): Location {
    return { kind: 'expired', from: this.position(this.first - 1) };
  }

  async read(after: string | null, until: string, limit: number): Promise<HeraldEvent[]> {
    this.trimByAge(Date.now());
    const from = Math.max(after === null ? this.first : this.seqOf(after) + 1, this.first);
    const to = Math.min(this.seqOf(until), this.last, from + limit - 1);
    const events: HeraldEvent[] = [];
    for (let seq = from; seq <= to; seq++) {
      const event = this.ring[seq % this.maxEvents];
      if (event !== undefined) events.push(event);
    }
    return events;
  }

  async readBack(until: string, limit: number, exclusive: boolean): Promise<HeraldEvent[]> {
    this.trimByAge(Date.now());
    const from = Math.min(this.seqOf(until) - (exclusive ? 1 : 0), this.last);
    const events: HeraldEvent[] = [];
    for (let seq = from; seq >= this.first && events.length < limit; seq--) {
      const event = this.ring[seq % this.maxEvents];
      if (event !== undefined) events.push(event);
    }
    return events;
  }

  async latest(tenant: string, limit: number): Promise<LatestEvents> {
    return this.slots?.latest(tenant, limit) ?? { events: [], complete: true };
  }

  compare(a: string, b: string): number {
    return compareMemoryPositions(a, b);
  }

  async history(): Promise<HistoryStats> {
    this.trimByAge(Date.now());
    const size = Math.max(0, this.last - this.first + 1);
    const stats: { -readonly [K in keyof HistoryStats]: HistoryStats[K] } = {
      size,
      maxSize: this.maxEvents,
      maxAgeMs: this.maxAgeMs,
    };
    if (size > 0) {
      stats.oldestId = this.ring[this.first % this.maxEvents]?.id;
      stats.newestId = this.ring[this.last % this.maxEvents]?.id;
    }
    return stats;
  }

  async health(): Promise<LogHealth> {
    return { ok: true };
  }

  /** The bus of a cluster of one: delivered on a later turn, as a broker's bus would. */
  async broadcast(message: string): Promise<void> {
    this.bus.deliverSoon(message);
  }

  listen(listener: (message: string) => void): () => void {
    return this.bus.listen(listener);
  }

  /** Counters of one process: exact, as every node sharing them is this one (counters.ts). */
  acquire(key: string, node: string, limit: number, live: readonly string[]): Promise<boolean> {
    return this.counters.acquire(key, node, limit, live);
  }

  release(key: string, node: string): Promise<void> {
    return this.counters.release(key, node);
  }

  consume(key: string, amount: number, windowMs: number): Promise<WindowCount> {
    return this.counters.consume(key, amount, windowMs);
  }

  async close(): Promise<void> {
    clearInterval(this.sweeper);
    this.sweeper = undefined;
    this.feed = undefined;
    this.bus.close();
  }

  private position(seq: number): string {
    return `${this.epoch}-${seq}`;
  }

  /** Positions given to `read` come from this broker, so they are always of this epoch. */
  private seqOf(pos: string): number {
    return parse(pos)?.[1] ?? 0;
  }

  private trimByAge(now: number): void {
    const cutoff = now - this.maxAgeMs;
    while (this.first <= this.last) {
      const slot = this.first % this.maxEvents;
      const event = this.ring[slot];
      if (event !== undefined && event.time >= cutoff) return;
      if (event !== undefined) this.forget(event);
      this.ring[slot] = undefined;
      this.first++;
    }
  }

  private forget(event: HeraldEvent): void {
    if (event.id === event.pos) return;
    // A reused id names a newer event by now: that mapping stays.
    const key = chosenIdKey(event.tenant, event.id);
    const seq = this.chosenIds.get(key);
    if (seq !== undefined && this.position(seq) === event.pos) this.chosenIds.delete(key);
  }
}

/** Orders two positions of a memory log; shared with the workers that reach one over IPC. */
export function compareMemoryPositions(a: string, b: string): number {
  const [epochA, seqA] = parse(a) ?? [0, 0];
  const [epochB, seqB] = parse(b) ?? [0, 0];
  return epochA - epochB || seqA - seqB;
}

function parse(id: string): [epoch: number, seq: number] | undefined {
  const match = POSITION.exec(id);
  if (match === null) return undefined;
  return [Number(match[1]), Number(match[2])];
}
