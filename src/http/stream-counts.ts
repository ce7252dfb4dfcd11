/** Open-stream counts by key; a key at zero is deleted, so memory follows the open streams. */
export class StreamCounts {
  private readonly counts = new Map<string, number>();

  get size(): number {
    return this.counts.size;
  }

  get(key: string): number {
    return this.counts.get(key) ?? 0;
  }

  add(key: string): void {
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
  }

  remove(key: string): void {
    const count = (this.counts.get(key) ?? 0) - 1;
    if (count > 0) this.counts.set(key, count);
    else this.counts.delete(key);
  }

  /** The `n` largest counts, largest first. */
  top(n: number): Record<string, number> {
    const entries = [...this.counts].sort((a, b) => b[1] - a[1]).slice(0, n);
    return Object.fromEntries(entries);
  }
}
