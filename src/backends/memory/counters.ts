import type { SharedCounting, WindowCount } from '../../core/cluster.ts';
import { counterKey, counterLimit, counterNode, liveNodes, windowArguments } from '../counter-input.ts';

/** How often, at most, expired windows are looked for and forgotten, ms. */
const SWEEP_INTERVAL_MS = 1000;

/**
 * Shared counters held in one process: the memory log's (a cluster of one, where they are exact)
 * and, through the primary, those of the workers of `herald serve --workers N` (ipc/broker.ts).
 * Each call is atomic because it runs to its end without awaiting anything. Windows follow this
 * process's clock; expired ones are forgotten at most once a second, on a later `consume`.
 */
export class MemoryCounters implements SharedCounting {
  /** Key → node → its count; a node at zero has no entry, a key without counts none either. */
  private readonly counts = new Map<string, Map<string, number>>();
  private readonly windows = new Map<string, { start: number; total: number; windowMs: number }>();
  private lastSweep = 0;

  async acquire(key: string, node: string, limit: number, live: readonly string[]): Promise<boolean> {
    counterKey(key);
    counterNode(node);
    counterLimit(limit);
    const alive = liveNodes(live, node);
    const counts = this.counts.get(key) ?? new Map<string, number>();
    let sum = 0;
    for (const [holder, count] of counts) {
      if (alive.has(holder)) sum += count;
      else counts.delete(holder);
    }
    if (sum >= limit) {
      if (counts.size === 0) this.counts.delete(key);
      return false;
    }
    counts.set(node, (counts.get(node) ?? 0) + 1);
    this.counts.set(key, counts);
    return true;
  }

  async release(key: string, node: string): Promise<void> {
    counterKey(key);
    counterNode(node);
    const counts = this.counts.get(key);
    const count = counts?.get(node);
    if (counts === undefined || count === undefined) return;
    if (count > 1) counts.set(node, count - 1);
    else counts.delete(node);
    if (counts.size === 0) this.counts.delete(key);
  }

  async consume(key: string, amount: number, windowMs: number): Promise<WindowCount> {
    counterKey(key);
    windowArguments(amount, windowMs);
    const now = Date.now();
    this.sweep(now);
    let window = this.windows.get(key);
    if (window === undefined || now >= window.start + window.windowMs) {
      window = { start: now, total: 0, windowMs };
      this.windows.set(key, window);
    }
    window.total += amount;
    return { total: window.total, resetMs: window.start + window.windowMs - now };
  }

  private sweep(now: number): void {
    if (now - this.lastSweep < SWEEP_INTERVAL_MS) return;
    this.lastSweep = now;
    for (const [key, window] of this.windows) {
      if (now >= window.start + window.windowMs) this.windows.delete(key);
    }
  }
}
