import { createClient } from 'redis';

/** A purchase order waiting to be processed, as the upload route queues it. */
export interface PurchaseOrderJob {
  readonly merchantId: string;
  readonly poId: string;
  readonly fileName: string;
}

export interface WorkerOptions {
  readonly redisUrl: string;
  /** Channels are `<prefix>:<merchantId>:<kind>` (seed 002: `merchant:<id>:progress`); the queue is `<prefix>:queue`. */
  readonly prefix: string;
  /** The pause between two progress steps, ms (the "work"). */
  readonly stepMs: number;
}

export interface Worker {
  /** Stops taking jobs, finishes none of them, and disconnects. */
  close(): Promise<void>;
}

/** Where the upload route queues jobs (a Redis list the worker pops). */
export const queueKey = (prefix: string) => `${prefix}:queue`;

const STEPS = [
  { progress: 20, message: 'Reading the file' },
  { progress: 40, message: 'Extracting line items' },
  { progress: 60, message: 'Matching products' },
  { progress: 80, message: 'Checking prices' },
  { progress: 100, message: 'Saving the purchase order' },
] as const;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Seed 002's workflow worker: takes purchase orders off a Redis list and publishes, on Redis
 * pub/sub exactly as the seed's `redisManager.publishMerchant*` did, a `stage` event when it
 * starts, `progress` events as it goes, and `completion` or `error` at the end. It knows nothing
 * of Herald or of browsers: a bridge carries the channels into Herald.
 *
 * A file whose name contains "corrupt" fails halfway, so the page's error path can be seen.
 */
export async function startWorker(options: WorkerOptions): Promise<Worker> {
  const publisher = createClient({ url: options.redisUrl });
  // BRPOP blocks its connection: it gets one of its own.
  const queue = publisher.duplicate();
  for (const client of [publisher, queue])
    client.on('error', (error) => console.error('worker redis:', error));
  await Promise.all([publisher.connect(), queue.connect()]);
  let running = true;

  const publish = (job: PurchaseOrderJob, kind: string, data: Record<string, unknown>) =>
    publisher.publish(
      `${options.prefix}:${job.merchantId}:${kind}`,
      JSON.stringify({ type: kind, poId: job.poId, ...data, timestamp: Date.now() }),
    );

  const processOrder = async (job: PurchaseOrderJob) => {
    await publish(job, 'stage', {
      stage: 'ai_parsing',
      status: 'started',
      message: `Parsing ${job.fileName}`,
    });
    for (const step of STEPS) {
      await sleep(options.stepMs);
      if (!running) return;
      if (step.progress > 40 && job.fileName.includes('corrupt')) {
        await publish(job, 'error', { stage: 'ai_parsing', error: 'the scan is unreadable after page 2' });
        return;
      }
      await publish(job, 'progress', step);
    }
    await publish(job, 'completion', {
      stage: 'ai_parsing',
      lineItems: 3 + (job.fileName.length % 7),
      confidence: 0.94,
    });
  };

  const loop = (async () => {
    const working = new Set<Promise<void>>();
    while (running) {
      // A one-second wait, so that close() is never held up by more than that.
      const popped = await queue.brPop(queueKey(options.prefix), 1).catch(() => null);
      if (popped === null) continue;
      const job = JSON.parse(popped.element) as PurchaseOrderJob;
      // Orders are processed side by side, as a pool of workers would.
      const work = processOrder(job).catch((error) => console.error(`worker: ${job.poId} failed:`, error));
      working.add(work);
      void work.finally(() => working.delete(work));
    }
    await Promise.all(working);
  })();

  return {
    async close() {
      running = false;
      await loop;
      await Promise.all([queue.close(), publisher.close()]);
    },
  };
}
