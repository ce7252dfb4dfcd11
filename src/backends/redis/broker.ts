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
  PersistenceReporting,
} from '../../core/log.ts';
import { chosenIdKey, decodeEvent, encodeDraft, toEvent } from '../codec.ts';
import { DEFAULT_HISTORY_MAX_AGE_MS, DEFAULT_HISTORY_SIZE, positive } from '../history.ts';
import { latestMaxKeysOf } from '../latest.ts';
import { RedisBus } from './bus.ts';
import { COMMAND_TIMEOUT_MS, message, RedisConnections } from './connections.ts';
import { RedisCounters } from './counters.ts';
import { Epochs } from './epochs.ts';
import { RedisFeed, type StreamEntry } from './feed.ts';
import { RedisLatest } from './latest.ts';
import { persistenceOf } from './persistence.ts';
import { canonical, comparePositions } from './positions.ts';
import { APPEND, TRIM, WHERE } from './scripts.ts';

export interface RedisBrokerOptions {
  /** `redis[s]://[[user]:password@]host[:port][/db]`. */
  readonly url: string;
  /**
   * Key prefix: the log is the stream `<stream>:log`, its epoch the hash `<stream>:epoch`, and a
   * publisher-chosen id `<stream>:id:<chosenIdKey(tenant, id)>`, the latest values per key
   * `<stream>:latest:…` and `<stream>:latest-order`, the shared counters `<stream>:count:…` and
   * `<stream>:window:…`; the cluster bus is the channel `<stream>:bus:<database>`. Default `herald`. On Redis Cluster use a hash
   * tag (`{herald}`) so every key of a log, which one script touches at once, lives in one slot:
   * the append evicts latest values of hashes it cannot declare in advance.
   */
  readonly stream?: string;
  /** Events kept for replay (exact `MAXLEN` trimming on every append). Default 10 000. */
  readonly maxEvents?: number;
  /** How long an event is kept for replay, in ms, by Redis's clock. Default 24 h. */
  readonly maxAgeMs?: number;
  /**
   * Latest values per (tenant, topic, key) kept, across tenants; 0: none. Default 10 000. Written
   * by the append's script, so atomically with the event.
   */
  readonly latestMaxKeys?: number;
  /**
   * Connection trouble, for the operator's log; never thrown. Throttled: the first error of an
   * outage, then at most one per context every few seconds. Default: ignored.
   */
  readonly onError?: (error: unknown, context: string) => void;
}

const HEALTH_TIMEOUT_MS = 1000;

/**
 * The log in a Redis stream, shared by every node: positions and ids are the stream's entry ids
 * (`<ms>-<seq>`), each node tails the stream on a connection of its own, and replay reads it.
 *
 * Appends are one Lua script each, so a batch is atomic and a duplicate chosen id appends
 * nothing. Retention is exact: `MAXLEN =` on every `XADD` and `MINID =` by age, on a timer and
 * at most once a second on append. Approximate trimming (`~`) only drops whole radix-tree nodes
 * (100 entries by default), so a small history, or one short in age, would be kept far past its
 * bound; exact trimming cost 2–7 % of append throughput when measured (16 concurrent appenders).
 *
 * Resets: the log has an epoch (see EPOCH_LUA in scripts.ts), which every script checks and
 * makes anew when the log was lost or went back; the feed (feed.ts) follows it from one epoch to
 * the next. `locate` answers `reset` for a position before the current epoch.
 *
 * The parts: scripts.ts (the Lua), connections.ts (the connections and their 503s),
 * epochs.ts, feed.ts (the live tail), latest.ts (latest values per key), persistence.ts (the
 * warning at start), positions.ts; for the cluster (core/cluster.ts), bus.ts (pub/sub) and
 * counters.ts, neither on the path of an event.
 */
export class RedisBroker
  implements Broker, BackwardReading, LatestKeeping, PersistenceReporting, Broadcasting, SharedCounting
{
  readonly kind = 'redis';
  readonly latestMaxKeys: number;
  private readonly url: string;
  private readonly logKey: string;
  private readonly epochKey: string;
  private readonly idPrefix: string;
  private readonly maxEvents: number;
  private readonly maxAgeMs: number;
  private readonly onError: (error: unknown, context: string) => void;
  private readonly connections: RedisConnections;
  private readonly epochs = new Epochs();
  private readonly tailer: RedisFeed;
  private readonly slots: RedisLatest;
  private readonly bus: RedisBus;
  private readonly counters: RedisCounters;
  private sweeper: ReturnType<typeof setInterval> | undefined;
  private lastAgeTrim = 0;

  constructor(options: RedisBrokerOptions) {
    this.url = options.url;
    const stream = options.stream ?? 'herald';
    if (stream === '') throw new RangeError('the Redis stream name must not be empty');
    this.logKey = `${stream}:log`;
    this.epochKey = `${stream}:epoch`;
    this.idPrefix = `${stream}:id:`;
    this.latestMaxKeys = latestMaxKeysOf(options.latestMaxKeys);
    this.maxEvents = positive(options.maxEvents ?? DEFAULT_HISTORY_SIZE, 'history size');
    this.maxAgeMs = positive(options.maxAgeMs ?? DEFAULT_HISTORY_MAX_AGE_MS, 'history max age');
    this.onError = options.onError ?? (() => {});
    this.connections = new RedisConnections(options.url, this.onError);
    this.slots = new RedisLatest(stream, this.latestMaxKeys, this.connections);
    this.bus = new RedisBus(stream, options.url, this.connections);
    this.counters = new RedisCounters(stream, this.connections);
    this.tailer = new RedisFeed({
      connections: this.connections,
      epochs: this.epochs,
      logKey: this.logKey,
      epochKey: this.epochKey,
      decode: (entries) => this.decode(entries),
      onError: this.onError,
    });
  }

  /**
   * Starts the feed. `onReset`, when given, is called in feed order when the feed leaves a log
   * that was lost or went back: after every entry of the old log it passes on, before any of the
   * new one, with the position the new log starts after.
   */
  async start(
    feed: (events: readonly HeraldEvent[]) => void,
    onReset?: (from: string) => void,
  ): Promise<string> {
    this.tailer.feed = feed;
    this.tailer.onReset = onReset;
    if (this.tailer.feeding !== undefined) return this.tailer.lastFed;
    await this.connections.connect();
    await this.connections.connectBlocking();
    const where = await this.where(undefined);
    this.tailer.begin(where.last);
    this.sweeper ??= setInterval(() => this.sweep(), Math.max(100, Math.min(this.maxAgeMs / 4, 30_000)));
    this.sweeper.unref?.();
    return this.tailer.lastFed;
  }

  async append(drafts: readonly EventDraft[]): Promise<HeraldEvent[]> {
    if (drafts.length === 0) return [];
    const keys = [this.logKey, this.epochKey, this.slots.orderKey];
    /** The chosen id of each key of KEYS (1-based, as the script answers). */
    const named = new Map<number, string>();
    const taken = new Set<string>();
    const now = Date.now();
    const trimByAge = now - this.lastAgeTrim >= 1000;
    const args = [
      ...this.epochs.args(false),
      String(this.maxEvents),
      String(this.maxAgeMs),
      trimByAge ? '1' : '0',
      String(this.latestMaxKeys),
      this.slots.prefix,
      String(drafts.length),
    ];
    for (const draft of drafts) {
      args.push(encodeDraft(draft));
      if (draft.id === undefined) {
        args.push('0');
        continue;
      }
      // In the tenant's namespace: another tenant's ids are neither taken, moved nor confirmed.
      const key = chosenIdKey(draft.tenant, draft.id);
      if (draft.reuseId !== true) {
        if (taken.has(key)) throw duplicate(draft.id);
        taken.add(key);
      }
      const index = keys.push(this.idPrefix + key);
      named.set(index, draft.id);
      args.push(String(draft.reuseId === true ? -index : index));
    }
    this.slots.addSlots(drafts, keys, args);
    const reply = await this.connections.run(APPEND, keys, args, 'append');
    if (trimByAge) this.lastAgeTrim = now;
    if (!Array.isArray(reply) || reply.length !== (reply[0] === 0 ? 2 : drafts.length + 3)) {
      throw new HeraldError(503, 'broker-unavailable', `redis gave an unexpected answer to the append`);
    }
    // {0, i}: the chosen id of KEYS[i] is taken. Nothing was appended.
    if (reply[0] === 0) throw duplicate(named.get(Number(reply[1])) ?? '?');
    const events: HeraldEvent[] = [];
    for (let i = 0; i < drafts.length; i++) {
      events.push(toEvent(drafts[i] as EventDraft, String(reply[i + 3])));
    }
    this.epochs.learn(String(reply[1]), String(reply[2]), String(reply[reply.length - 1]));
    return events;
  }

  async locate(id: string, tenant: string): Promise<Location> {
    const shaped = canonical(id);
    // Any string may be a chosen id (a key is any bytes); one neither chosen in the caller's
    // tenant nor entry-id-shaped is unknown. Only an unreachable Redis throws (503).
    const where = await this.where(id === '' ? undefined : this.idPrefix + chosenIdKey(tenant, id));
    const pos = canonical(where.chosen) ?? shaped;
    if (pos === undefined) return { kind: 'unknown' };
    // From a log that was lost or went back: what followed it may be gone without trace.
    if (comparePositions(pos, where.start) < 0) return { kind: 'reset', from: where.start };
    if (comparePositions(pos, where.last) > 0) return { kind: 'unknown' };
    if (where.first === '') {
      // Nothing is retained: only a client that saw the very last event has missed nothing.
      return comparePositions(pos, where.last) === 0
        ? { kind: 'found', pos }
        : { kind: 'expired', from: where.last };
    }
    // Replay starts after `pos`: everything after it must still be there. The trimmed part of
    // the log ends at `boundary` (the entry before the first retained one).
    const boundary = where.boundary === '' ? where.first : where.boundary;
    return comparePositions(pos, boundary) < 0 ? { kind: 'expired', from: boundary } : { kind: 'found', pos };
  }

  async read(after: string | null, until: string, limit: number): Promise<HeraldEvent[]> {
    const end = canonical(until);
    const start = after === null ? undefined : canonical(after);
    if (end === undefined || limit <= 0) return [];
    if (start !== undefined && comparePositions(start, end) >= 0) return [];
    const entries = await this.connections.call('read', () =>
      this.connections.client.xRange(this.logKey, start === undefined ? '-' : `(${start}`, end, {
        COUNT: limit,
      }),
    );
    return this.decode(entries);
  }

  async readBack(until: string, limit: number, exclusive: boolean): Promise<HeraldEvent[]> {
    const end = canonical(until);
    if (end === undefined || limit <= 0) return [];
    // One round trip a page, newest first, down to whatever trimming left.
    const entries = await this.connections.call('read', () =>
      this.connections.client.xRevRange(this.logKey, exclusive ? `(${end}` : end, '-', { COUNT: limit }),
    );
    return this.decode(entries);
  }

  latest(tenant: string, limit: number): Promise<LatestEvents> {
    return this.slots.read(tenant, limit);
  }

  compare(a: string, b: string): number {
    return comparePositions(a, b);
  }

  async history(): Promise<HistoryStats> {
    const [size, oldest, newest] = await this.connections.call('history', () =>
      Promise.all([
        this.connections.client.xLen(this.logKey),
        this.connections.client.xRange(this.logKey, '-', '+', { COUNT: 1 }),
        this.connections.client.xRevRange(this.logKey, '+', '-', { COUNT: 1 }),
      ]),
    );
    const stats: { -readonly [K in keyof HistoryStats]: HistoryStats[K] } = {
      size: Number(size),
      maxSize: this.maxEvents,
      maxAgeMs: this.maxAgeMs,
    };
    const oldestId = this.decode(oldest)[0]?.id;
    const newestId = this.decode(newest)[0]?.id;
    if (oldestId !== undefined) stats.oldestId = oldestId;
    if (newestId !== undefined) stats.newestId = newestId;
    return stats;
  }

  async health(): Promise<LogHealth> {
    if (this.connections.closed) return { ok: false, detail: 'the Redis broker is closed' };
    try {
      if (!this.connections.client.isOpen) await this.connections.connect();
      await this.connections.client.sendCommand(['PING'], { timeout: HEALTH_TIMEOUT_MS });
      if (this.tailer.feeding !== undefined && !this.connections.blocking.isReady) {
        return {
          ok: false,
          detail: `redis feed connection to ${this.connections.where} is down; reconnecting`,
        };
      }
      return { ok: true };
    } catch (error) {
      if (error instanceof HeraldError) return { ok: false, detail: error.detail };
      return { ok: false, detail: `redis unreachable at ${this.connections.where}: ${message(error)}` };
    }
  }

  /**
   * What the Redis server's persistence can lose, for the operator's log at start; undefined
   * when it keeps an append-only file. See `persistenceWarning`.
   */
  async persistenceWarning(): Promise<string | undefined> {
    if (!this.connections.client.isOpen) await this.connections.connect();
    return persistenceOf(this.connections.client, this.url);
  }

  /** To every node on this Redis and stream, this one included (bus.ts). */
  broadcast(message: string): Promise<void> {
    return this.bus.broadcast(message);
  }

  /** Opens the bus's own connection at the first call (bus.ts). */
  listen(listener: (message: string) => void): () => void {
    return this.bus.listen(listener);
  }

  acquire(key: string, node: string, limit: number, live: readonly string[]): Promise<boolean> {
    return this.counters.acquire(key, node, limit, live);
  }

  release(key: string, node: string): Promise<void> {
    return this.counters.release(key, node);
  }

  /** A window by Redis's clock (counters.ts). */
  consume(key: string, amount: number, windowMs: number): Promise<WindowCount> {
    return this.counters.consume(key, amount, windowMs);
  }

  async close(): Promise<void> {
    if (this.connections.closed) return;
    this.connections.closed = true;
    this.bus.close();
    this.tailer.stop();
    clearInterval(this.sweeper);
    this.sweeper = undefined;
    const { client, blocking } = this.connections;
    // Not waiting for a pending XREAD BLOCK: destroy rejects it now, and the loop sees `closed`.
    if (blocking.isOpen) blocking.destroy();
    await this.tailer.feeding;
    if (client.isOpen) {
      const timer = setTimeout(() => client.destroy(), COMMAND_TIMEOUT_MS);
      await client.close().catch(() => {});
      clearTimeout(timer);
    }
  }

  private decode(entries: readonly StreamEntry[] | null): HeraldEvent[] {
    const events: HeraldEvent[] = [];
    for (const entry of entries ?? []) {
      const text = entry.message.e;
      try {
        if (text === undefined) throw new Error('the entry has no "e" field');
        events.push(decodeEvent(text, entry.id));
      } catch (error) {
        // Something else wrote to the stream: skip the entry rather than wedge every node on it.
        this.connections.report(
          new Error(`stream entry ${entry.id} of ${this.logKey} is not a Herald event: ${message(error)}`),
          'decode',
        );
      }
    }
    return events;
  }

  private sweep(): void {
    if (!this.connections.clientReady || !this.connections.client.isReady) return;
    this.lastAgeTrim = Date.now();
    this.connections
      .run(TRIM, [this.logKey], [String(this.maxAgeMs)], 'retention')
      .catch((error: unknown) => this.connections.report(error, 'retention'));
  }

  private async where(chosenKey: string | undefined): Promise<{
    start: string;
    last: string;
    boundary: string;
    first: string;
    chosen: string;
  }> {
    const keys = [this.logKey, this.epochKey];
    if (chosenKey !== undefined) keys.push(chosenKey);
    const reply = await this.connections.run(WHERE, keys, this.epochs.args(false), 'locate');
    if (!Array.isArray(reply) || reply.length !== 6) {
      throw new HeraldError(503, 'broker-unavailable', 'redis gave an unexpected answer to locate');
    }
    const [id, start, last, boundary, first, chosen] = reply.map(String) as [
      string,
      string,
      string,
      string,
      string,
      string,
    ];
    this.epochs.learn(id, start, last);
    return { start, last, boundary, first, chosen };
  }
}

function duplicate(id: string): HeraldError {
  return new HeraldError(409, 'duplicate-id', `id "${id}" is already in the history; ids must be unique`);
}
