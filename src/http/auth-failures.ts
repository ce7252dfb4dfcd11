/**
 * Requests refused for their credential (401) or its rights (403), by problem code: counted by
 * the router, which sees every refusal, and read by `/metrics`. Bounded: the codes are ours.
 */
export class AuthFailures {
  private readonly counts = new Map<string, number>();

  record(code: string): void {
    this.counts.set(code, (this.counts.get(code) ?? 0) + 1);
  }

  /** Each code refused so far with its count. */
  entries(): IterableIterator<[string, number]> {
    return this.counts.entries();
  }
}
