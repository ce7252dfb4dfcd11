import { type Histogram, mergeHistograms } from './histogram.ts';
import type { SubscriberIn, SubscriberOut, SubscriberReport } from './messages.ts';
import type { RunningTarget } from './targets.ts';
import { WorkerHandle } from './worker-handle.ts';

const WORKER = new URL('./subscriber-worker.ts', import.meta.url);

export interface FleetOptions {
  readonly topic: string;
  readonly connections: number;
  readonly workers: number;
  /** Connection attempts in flight at once, per worker. */
  readonly concurrency?: number;
  readonly openTimeoutMs?: number;
  /** One topic per connection, in place of `topic`. */
  readonly topics?: readonly string[];
  /** Source addresses (127.0.0.x), one per worker in turn: every socket of a worker binds its worker's. */
  readonly sourceAddresses?: readonly string[];
  /** As in `OpenStreams`: resume after this id, count past `afterSeq`, measure from the start. */
  readonly lastEventId?: string;
  readonly afterSeq?: number;
  readonly measureFrom?: number;
  /** As in `OpenStreams`: publishers whose events interleave, order checked per lane. */
  readonly lanes?: number;
}

export interface FleetReport {
  readonly streams: number;
  readonly closed: number;
  readonly delivered: number;
  readonly missing: number;
  readonly duplicates: number;
  readonly other: number;
  readonly negative: number;
  readonly lastArrival: number;
  readonly cpuMicros: number;
  readonly histogram: Histogram;
  readonly errors: readonly string[];
}

type Worker = WorkerHandle<SubscriberIn, SubscriberOut>;

/**
 * The subscriber side of a scenario: streams spread over a few worker processes, with one view of
 * their progress (the lowest seq every open stream has reached) and one merged report.
 */
export class SubscriberFleet {
  readonly ready: number;
  readonly failed: number;
  readonly errors: readonly string[];
  /** When the first worker began connecting, on `nowMs()`'s clock. */
  readonly startedAt: number;
  private readonly workers: readonly Worker[];
  private readonly progress: ({ minSeq: number | null; open: number } | undefined)[];
  private listener: ((minSeq: number | null) => void) | undefined;
  private waiters: { seq: number; resolve: (reached: boolean) => void }[] = [];

  private constructor(
    workers: readonly Worker[],
    ready: number,
    failed: number,
    errors: readonly string[],
    startedAt: number,
  ) {
    this.startedAt = startedAt;
    this.workers = workers;
    this.ready = ready;
    this.failed = failed;
    this.errors = errors;
    this.progress = workers.map(() => undefined);
    workers.forEach((worker, i) => {
      worker.on('progress', (message) => {
        this.progress[i] = { minSeq: message.minSeq, open: message.open };
        this.changed();
      });
    });
  }

  /**
   * Forks the workers and opens every stream on the target's `subscribeTo` node; resolves once
   * each is ready or has failed.
   */
  static async open(target: RunningTarget, options: FleetOptions): Promise<SubscriberFleet> {
    const count = Math.max(1, Math.min(options.workers, options.connections));
    const workers: Worker[] = [];
    try {
      for (let i = 0; i < count; i++) workers.push(new WorkerHandle(WORKER, `subscriber worker ${i + 1}`));
      const timeoutMs = options.openTimeoutMs ?? 60_000;
      const opened = await Promise.all(
        workers.map((worker, i) => {
          // Spread evenly: the first `connections % count` workers take one more.
          const base = Math.floor(options.connections / count);
          const extra = options.connections % count;
          const connections = base + (i < extra ? 1 : 0);
          const first = i * base + Math.min(i, extra);
          const localAddress = options.sourceAddresses?.[i % options.sourceAddresses.length];
          worker.send({
            ...(options.topics !== undefined && { topics: options.topics.slice(first, first + connections) }),
            ...(localAddress !== undefined && { localAddress }),
            ...(options.lastEventId !== undefined && { lastEventId: options.lastEventId }),
            ...(options.afterSeq !== undefined && { afterSeq: options.afterSeq }),
            ...(options.measureFrom !== undefined && { measureFrom: options.measureFrom }),
            ...(options.lanes !== undefined && { lanes: options.lanes }),
            type: 'open',
            host: target.subscribeTo.host,
            port: target.subscribeTo.port,
            protocol: target.protocol,
            topic: options.topic,
            connections,
            concurrency: options.concurrency ?? 50,
            timeoutMs,
          });
          return worker.next('opened', timeoutMs + 10_000);
        }),
      );
      const errors = [...new Set(opened.flatMap((o) => o.errors))];
      const sum = (key: 'ready' | 'failed') => opened.reduce((total, o) => total + o[key], 0);
      const startedAt = Math.min(...opened.map((o) => o.startedAt));
      return new SubscriberFleet(workers, sum('ready'), sum('failed'), errors, startedAt);
    } catch (error) {
      await Promise.all(workers.map((worker) => worker.stop({ type: 'quit' })));
      throw error;
    }
  }

  /** The lowest seq every open stream has reached; null when no stream is open (or none reported yet). */
  minSeq(): number | null {
    let min: number | null = null;
    for (const p of this.progress) {
      if (p === undefined || p.minSeq === null) continue;
      if (min === null || p.minSeq < min) min = p.minSeq;
    }
    return min;
  }

  /** Streams open now, as last reported. */
  open(): number {
    return this.progress.reduce((total, p) => total + (p?.open ?? 0), 0);
  }

  /** Called on every progress change with the new `minSeq()`. */
  onProgress(listener: (minSeq: number | null) => void): void {
    this.listener = listener;
  }

  /**
   * Resolves true once every open stream has received `seq` (or none is open any more), false if
   * that has not happened within `timeoutMs`.
   */
  waitFor(seq: number, timeoutMs: number): Promise<boolean> {
    if (this.reached(seq)) return Promise.resolve(true);
    return new Promise((resolve) => {
      const waiter = {
        seq,
        resolve: (reached: boolean) => {
          clearTimeout(timer);
          this.waiters = this.waiters.filter((w) => w !== waiter);
          resolve(reached);
        },
      };
      const timer = setTimeout(() => waiter.resolve(false), timeoutMs);
      this.waiters.push(waiter);
    });
  }

  /** Starts the measured part: events from `fromSeq` on are counted and timed, nothing before. */
  async measure(fromSeq: number): Promise<void> {
    await Promise.all(
      this.workers.map((worker) => {
        worker.send({ type: 'measure', fromSeq });
        return worker.next('measuring', 10_000);
      }),
    );
  }

  /** Every worker's counts, summed, and their histograms, merged. */
  async report(): Promise<FleetReport> {
    const reports: SubscriberReport[] = await Promise.all(
      this.workers.map((worker) => {
        worker.send({ type: 'report' });
        return worker.next('report', 30_000);
      }),
    );
    const sum = (
      key: 'streams' | 'closed' | 'delivered' | 'missing' | 'duplicates' | 'other' | 'negative' | 'cpuMicros',
    ) => reports.reduce((total, r) => total + r[key], 0);
    return {
      streams: sum('streams'),
      closed: sum('closed'),
      delivered: sum('delivered'),
      missing: sum('missing'),
      duplicates: sum('duplicates'),
      other: sum('other'),
      negative: sum('negative'),
      cpuMicros: sum('cpuMicros'),
      lastArrival: Math.max(0, ...reports.map((r) => r.lastArrival)),
      histogram: mergeHistograms(reports.map((r) => r.histogram)),
      errors: [...new Set(reports.flatMap((r) => r.errors))],
    };
  }

  async stop(): Promise<void> {
    for (const waiter of [...this.waiters]) waiter.resolve(false);
    await Promise.all(this.workers.map((worker) => worker.stop({ type: 'quit' })));
  }

  private reached(seq: number): boolean {
    // Every worker must have reported at least once, else its streams are unknown.
    if (this.progress.some((p) => p === undefined)) return false;
    const min = this.minSeq();
    return min === null || min >= seq;
  }

  private changed(): void {
    this.listener?.(this.minSeq());
    for (const waiter of [...this.waiters]) if (this.reached(waiter.seq)) waiter.resolve(true);
  }
}
