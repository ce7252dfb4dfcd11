import type { JetStreamManager } from '@nats-io/jetstream';
import type { KV, KvEntry } from '@nats-io/kv';
import type { SharedCounting, WindowCount } from '../../core/cluster.ts';
import { HeraldError } from '../../core/errors.ts';
import { counterKey, counterLimit, counterNode, liveNodes, windowArguments } from '../counter-input.ts';
import { isWrongLastSequence, unavailable } from './failures.ts';
import { token } from './latest.ts';
import { Kvm, nanos, StorageType } from './library.ts';
import type { Link } from './stream.ts';

/*
 * Shared counters on NATS: two KV buckets, made at first use, written with compare-and-set
 * (`kv.update(key, value, revision)`; a write that lost to another node's reads again and
 * retries, a bounded number of times).
 *
 * - `<stream>_COUNTS`: per counter, JSON `{node: count}`; no expiry, as a count lasts as long as
 *   what it counts (an open stream may stay for days).
 * - `<stream>_WINDOWS`: per window counter, JSON `{start, total}`. The window is by the clocks
 *   of the nodes (NATS has none to offer): a node whose clock is off ends or prolongs windows it
 *   starts by as much. The bucket's max age follows the longest window asked for, so a window
 *   nobody uses any more leaves the bucket once it is over.
 *
 * Keys are any characters: each is one KV token (latest.ts's `token`, base64url, hashed when
 * long), so `.`, `*` and `>` never reach the subject syntax.
 *
 * The changes one node makes to one key are applied together in one compare-and-set, one batch
 * at a time: a burst of acquires from a node costs one write, and nodes compete only with each
 * other, never with themselves.
 */

/** Compare-and-set attempts per batch before the callers are told to retry (503). */
const MAX_TRIES = 10;
/** Jitter between attempts, ms: two nodes that collided rarely collide again. */
const RETRY_JITTER_MS = 5;

type Counts = Record<string, number>;

interface Window {
  readonly start: number;
  readonly total: number;
}

/** One caller's change: from the key's value (undefined when it has none), the next and the answer. */
interface Change<V> {
  apply(value: V | undefined, now: number): [next: V, answer: unknown];
  resolve(answer: unknown): void;
  reject(error: unknown): void;
}

/** One bucket's keys, with this node's changes to each waiting for the batch in flight. */
class CasBucket<V> {
  readonly name: string;
  private readonly open: (link: Link) => Promise<KV>;
  private readonly opened = new WeakMap<Link, Promise<KV>>();
  private readonly queues = new Map<string, Change<V>[]>();

  constructor(name: string, open: (link: Link, name: string) => Promise<KV>) {
    this.name = name;
    this.open = (link) => open(link, name);
  }

  /** The link's bucket, opened (made when missing) at its first use. */
  kv(link: Link): Promise<KV> {
    let kv = this.opened.get(link);
    if (kv === undefined) {
      const opening = this.open(link);
      this.opened.set(link, opening);
      // A failed opening is not kept: the next call tries again.
      opening.catch(() => {
        if (this.opened.get(link) === opening) this.opened.delete(link);
      });
      kv = opening;
    }
    return kv;
  }

  change<T>(link: Link, key: string, apply: Change<V>['apply']): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const change: Change<V> = { apply, resolve: resolve as (answer: unknown) => void, reject };
      const waiting = this.queues.get(key);
      if (waiting !== undefined) {
        waiting.push(change);
        return;
      }
      this.queues.set(key, [change]);
      void this.drain(link, key);
    });
  }

  /** Writes the key's batches one after another while changes keep coming. */
  private async drain(link: Link, key: string): Promise<void> {
    for (;;) {
      const batch = this.queues.get(key) ?? [];
      // Changes that arrive while this batch is written wait for the next one.
      this.queues.set(key, []);
      try {
        const answers = await this.write(link, key, batch);
        for (const [i, change] of batch.entries()) change.resolve(answers[i]);
      } catch (error) {
        for (const change of batch) change.reject(error);
      }
      if ((this.queues.get(key) ?? []).length === 0) {
        this.queues.delete(key);
        return;
      }
    }
  }

  private async write(link: Link, key: string, batch: readonly Change<V>[]): Promise<unknown[]> {
    const opened = this.kv(link);
    try {
      return await this.compareAndSet(await opened, key, batch);
    } catch (error) {
      if (error instanceof HeraldError) throw error;
      // The bucket may be gone (a server that lost its store): opened, so made, anew next time.
      if (this.opened.get(link) === opened) this.opened.delete(link);
      throw unavailable(error, ` (bucket ${this.name})`);
    }
  }

  private async compareAndSet(kv: KV, key: string, batch: readonly Change<V>[]): Promise<unknown[]> {
    for (let attempt = 1; ; attempt++) {
      const entry = await kv.get(key);
      const held = heldIn<V>(entry);
      const before = held === undefined ? undefined : JSON.stringify(held);
      const now = Date.now();
      let value = held;
      const answers = batch.map((change) => {
        const [next, answer] = change.apply(value, now);
        value = next;
        return answer;
      });
      const after = JSON.stringify(value);
      // Nothing changed (a refusal at the limit, a release of nothing): what was read is the answer.
      if (after === before) return answers;
      try {
        if (entry === null) await kv.create(key, after);
        else await kv.update(key, after, entry.revision);
        return answers;
      } catch (error) {
        if (!isWrongLastSequence(error)) throw error;
        if (attempt >= MAX_TRIES) {
          throw new HeraldError(
            503,
            'broker-unavailable',
            `the shared counter kept changing under ${MAX_TRIES} attempts to update it (bucket ${this.name}); retry shortly`,
          );
        }
        await new Promise((resolve) => setTimeout(resolve, Math.random() * RETRY_JITTER_MS * attempt));
      }
    }
  }
}

export class NatsCounters implements SharedCounting {
  private readonly ready: () => Promise<Link>;
  private readonly counts: CasBucket<Counts>;
  private readonly windows: CasBucket<Window>;
  /** The longest window the windows bucket is known to keep, per opening of it, ms. */
  private readonly windowAge = new WeakMap<Promise<KV>, number>();

  constructor(stream: string, ready: () => Promise<Link>) {
    this.ready = ready;
    this.counts = new CasBucket(`${stream}_COUNTS`, (link, name) =>
      new Kvm(link.js).create(name, { history: 1, storage: StorageType.File }),
    );
    this.windows = new CasBucket(`${stream}_WINDOWS`, (link, name) =>
      new Kvm(link.js).create(name, { history: 1, storage: StorageType.File }),
    );
  }

  async acquire(key: string, node: string, limit: number, live: readonly string[]): Promise<boolean> {
    counterKey(key);
    counterNode(node);
    counterLimit(limit);
    const alive = liveNodes(live, node);
    return this.counts.change<boolean>(await this.ready(), token(key), (value) => {
      const next: Counts = {};
      let sum = 0;
      for (const [holder, count] of Object.entries(value ?? {})) {
        if (!alive.has(holder) || !Number.isSafeInteger(count) || count <= 0) continue;
        next[holder] = count;
        sum += count;
      }
      if (sum >= limit) return [next, false];
      next[node] = (next[node] ?? 0) + 1;
      return [next, true];
    });
  }

  async release(key: string, node: string): Promise<void> {
    counterKey(key);
    counterNode(node);
    await this.counts.change<void>(await this.ready(), token(key), (value) => {
      const next: Counts = { ...value };
      const count = next[node] ?? 0;
      if (count > 1) next[node] = count - 1;
      else delete next[node];
      return [next, undefined];
    });
  }

  async consume(key: string, amount: number, windowMs: number): Promise<WindowCount> {
    counterKey(key);
    windowArguments(amount, windowMs);
    const link = await this.ready();
    await this.keepWindows(link, windowMs);
    return this.windows.change<WindowCount>(link, token(key), (value, now) => {
      const current = value !== undefined && now < value.start + windowMs ? value : { start: now, total: 0 };
      const next = { start: current.start, total: current.total + amount };
      return [next, { total: next.total, resetMs: next.start + windowMs - now }];
    });
  }

  /** Makes the windows bucket keep a window of `windowMs` whole: its max age at least that. */
  private async keepWindows(link: Link, windowMs: number): Promise<void> {
    // Per opening: a bucket made anew (its server lost its store) has no max age yet.
    const opened = this.windows.kv(link);
    if ((this.windowAge.get(opened) ?? 0) >= windowMs) return;
    try {
      await opened;
      const age = await keptAge(link.jsm, `KV_${this.windows.name}`, windowMs);
      this.windowAge.set(opened, Math.max(age, this.windowAge.get(opened) ?? 0));
    } catch (error) {
      throw unavailable(error, ` (the bucket ${this.windows.name})`);
    }
  }
}

/**
 * The stream's max age, raised to `ms` when it is shorter (the bucket is made without one: the
 * first window sets it); the age it keeps, ms. Nodes raising it at once only ever raise it.
 */
async function keptAge(jsm: JetStreamManager, stream: string, ms: number): Promise<number> {
  const { config } = await jsm.streams.info(stream);
  const current = config.max_age / 1_000_000;
  if (config.max_age > 0 && current >= ms) return current;
  // JetStream refuses a duplicate window longer than the max age.
  await jsm.streams.update(stream, { max_age: nanos(ms), duplicate_window: nanos(Math.min(ms, 120_000)) });
  return ms;
}

/** A key's value, or undefined when it has none (never written, deleted, or not JSON: overwritten). */
function heldIn<V>(entry: KvEntry | null): V | undefined {
  if (entry?.operation !== 'PUT') return undefined;
  try {
    return (entry.json<V>() ?? undefined) as V | undefined;
  } catch {
    return undefined;
  }
}
