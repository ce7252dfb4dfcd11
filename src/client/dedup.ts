/**
 * The ids seen most recently, to drop an event delivered twice: by the old and the new stream
 * while they overlap (token refresh), or by a poll and the stream that replaces it. Ids are opaque
 * strings, so they are remembered, never compared: a set for lookups, a ring for eviction.
 */
export class RecentIds {
  private readonly ids = new Set<string>();
  private readonly ring: string[];
  private next = 0;

  /** `size`: how many ids are remembered; more than a stream can deliver during an overlap. */
  constructor(size = 1024) {
    this.ring = new Array(size);
  }

  /** Remembers `id`; false when it was already there (a duplicate). */
  add(id: string): boolean {
    const { ids, ring } = this;
    if (ids.has(id)) return false;
    const evicted = ring[this.next];
    if (evicted !== undefined) ids.delete(evicted);
    ring[this.next] = id;
    this.next = (this.next + 1) % ring.length;
    ids.add(id);
    return true;
  }
}
