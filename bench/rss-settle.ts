import { rssBytes } from './proc-stats.ts';

/**
 * Resident memory of a server once it stops moving. Right after connections open, a Node server
 * still holds garbage it has not collected and buffers it has not shrunk, nginx its pools: a single
 * read would measure that churn, not what the connections cost.
 */

/** Settled: this many samples in a row within `TOLERANCE` of each other. */
const STEADY_SAMPLES = 5;
/** Of the total, or 256 KiB, whichever is larger: noise, not growth. */
const TOLERANCE = 0.005;
const MIN_TOLERANCE_BYTES = 256 * 1024;

export interface SettledRss {
  /** Sum over every pid, bytes: the last sample. */
  readonly bytes: number;
  /** Each pid's share of it. */
  readonly byPid: Readonly<Record<string, number>>;
  readonly settled: boolean;
  readonly waitedMs: number;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Samples the RSS of `pids()` (asked afresh each time: workers come and go) every `everyMs` until
 * it is steady or `maxMs` passes.
 */
export async function settledRss(
  pids: () => readonly number[],
  maxMs: number,
  everyMs = 500,
): Promise<SettledRss> {
  const start = performance.now();
  const recent: number[] = [];
  for (;;) {
    const byPid: Record<string, number> = {};
    let bytes = 0;
    for (const pid of pids()) {
      const rss = rssBytes([pid]);
      byPid[pid] = rss;
      bytes += rss;
    }
    recent.push(bytes);
    if (recent.length > STEADY_SAMPLES) recent.shift();
    const waitedMs = performance.now() - start;
    const spread = Math.max(...recent) - Math.min(...recent);
    const settled =
      recent.length === STEADY_SAMPLES && spread <= Math.max(MIN_TOLERANCE_BYTES, bytes * TOLERANCE);
    if (settled || waitedMs >= maxMs) return { bytes, byPid, settled, waitedMs };
    await sleep(everyMs);
  }
}
