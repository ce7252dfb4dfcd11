import { createHash, randomBytes } from 'node:crypto';
import { HeraldError } from '../core/errors.ts';
import type { EventDraft, HeraldEvent } from '../core/event.ts';
import type { Broker, HistoryStats, Location, LogHealth, PersistenceReporting } from '../core/log.ts';
import { chosenIdKey, decodeEvent, encodeDraft, toEvent } from './codec.ts';
import { DEFAULT_HISTORY_MAX_AGE_MS, DEFAULT_HISTORY_SIZE } from './memory.ts';
import { redactUrl } from './redact-url.ts';

// The client is an optional peer dependency, loaded at run time by Node from the app's
// node_modules: the comments keep app bundlers (Next.js) from resolving it at build time, where
// an app on the memory broker does not have it.
const { createClient, ErrorReply } = await import(
  /* webpackIgnore: true */ /* turbopackIgnore: true */ 'redis'
);

export interface RedisBrokerOptions {
  /** `redis[s]://[[user]:password@]host[:port][/db]`. */
  readonly url: string;
  /**
   * Key prefix: the log is the stream `<stream>:log`, its epoch the hash `<stream>:epoch`, and a
   * publisher-chosen id `<stream>:id:<chosenIdKey(tenant, id)>`. Default `herald`. On Redis
   * Cluster use a hash tag (`{herald}`) so every key of a log, which one script touches at once,
   * lives in one slot.
   */
  readonly stream?: string;
  /** Events kept for replay (exact `MAXLEN` trimming on every append). Default 10 000. */
  readonly maxEvents?: number;
  /** How long an event is kept for replay, in ms, by Redis's clock. Default 24 h. */
  readonly maxAgeMs?: number;
  /**
   * Connection trouble, for the operator's log; never thrown. Throttled: the first error of an
   * outage, then at most one per context every few seconds. Default: ignored.
   */
  readonly onError?: (error: unknown, context: string) => void;
}

/** How long a `XREAD BLOCK` waits: bounds how long `close()` or a silent dead link can go unnoticed. */
const BLOCK_MS = 1000;
/** Entries per `XREAD`: one feed batch. */
const FEED_BATCH = 1000;
/** A healthy Redis answers in milliseconds; past this a command fails (the append gets a 503). */
const COMMAND_TIMEOUT_MS = 3000;
/** Bounds the first connection: `start()` fails with a clear message rather than hanging. */
const CONNECT_TIMEOUT_MS = 2000;
const HEALTH_TIMEOUT_MS = 1000;
/** How long a command waits for a reconnection under way before it fails (the append's 503). */
const RECONNECT_GRACE_MS = 500;
/** Reconnection backoff cap: delivery resumes within about this long after Redis is back. */
const MAX_BACKOFF_MS = 1000;
const ERROR_REPORT_INTERVAL_MS = 5000;
/** A stream entry id, `<ms>-<seq>`, each part an unsigned 64-bit integer in decimal. */
const ENTRY_ID = /^(\d{1,20})-(\d{1,20})$/;
const ORIGIN = '0-0';
/** How many epochs a feed remembers having left (their entries may still be in the stream). */
const RETIRED_EPOCHS = 16;

/**
 * The epoch of the log, shared by every script, which all run it first: which incarnation of the
 * log this is, kept beside it in the hash `<stream>:epoch` (`id`, `start`). Every entry carries
 * its epoch's id (field `z`), and every entry of an epoch comes after its `start`.
 *
 * A log that is missing (never made, or lost: Redis restarted without persistence, FLUSHALL, the
 * stream deleted) gets a new epoch, whose start is past anything the old log can have held: past
 * Redis's clock (entry ids are time-based), past what the caller saw, past the stream's last id.
 * So positions keep growing across epochs, and a position before `start` is from an older log.
 * A log that went back (restored from an older snapshot: its last id is before what the caller
 * saw in this same epoch, or the caller has proof of it) also gets a new epoch, moved past it with
 * XSETID. A stream without a record (written before epochs existed) is adopted as it is, from
 * the origin: no position is before it.
 *
 * KEYS[1] the stream, KEYS[2] its epoch record. ARGV[1] a fresh epoch id (used only to make one),
 * ARGV[2] the caller's epoch, ARGV[3] the furthest position it saw in it, ARGV[4] '1' when it has
 * proof that the log went back. Returns the epoch id, its start and the stream's last id (of its
 * newest entry, or the last generated one when it has none).
 */
const EPOCH_LUA = `
local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms or 0), tonumber(seq or 0)
end
local function before(a, b)
  local am, as = parse(a)
  local bm, bs = parse(b)
  return am < bm or (am == bm and as < bs)
end
local function generated(log)
  local info = redis.call('XINFO', 'STREAM', log)
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then return info[i + 1] end
  end
  return '0-0'
end
local function epoch()
  local log, record = KEYS[1], KEYS[2]
  local fresh, known, seen, proof = ARGV[1], ARGV[2], ARGV[3], ARGV[4] == '1'
  local current = redis.call('HMGET', record, 'id', 'start')
  local id, start = current[1], current[2]
  local exists = redis.call('EXISTS', log) == 1
  local last = nil
  if exists then
    local newest = redis.call('XREVRANGE', log, '+', '-', 'COUNT', 1)
    if newest[1] then last = newest[1][1] else last = generated(log) end
    if not id then
      redis.call('HSET', record, 'id', fresh, 'start', '0-0')
      return fresh, '0-0', last
    end
    if id ~= known then return id, start, last end
    if not proof then
      if not before(last, seen) then return id, start, last end
      -- The newest entry may precede a start set by XSETID: the last generated id tells.
      local gen = generated(log)
      if not before(gen, seen) then return id, start, last end
    end
  end
  local now = redis.call('TIME')
  local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) + 1
  local seenMs = parse(seen) + 1
  if seenMs > ms then ms = seenMs end
  if last then
    local lastMs = parse(last) + 1
    if lastMs > ms then ms = lastMs end
  end
  start = string.format('%.0f', ms) .. '-0'
  if exists then
    redis.call('XSETID', log, start)
  else
    -- Creates the stream empty, its last generated id at the start: every entry comes after it.
    redis.call('XADD', log, 'MAXLEN', '=', '0', start, 'epoch', fresh)
  end
  redis.call('HSET', record, 'id', fresh, 'start', start)
  return fresh, start, start
end
`;

/**
 * Appends drafts atomically: every chosen id is checked first, so a duplicate appends nothing.
 * Each entry records `p`, the id of the entry before it (the stream's last generated id), so that
 * after trimming the first retained entry tells exactly where the lost part of the log ends —
 * Redis itself does not remember it (`max-deleted-entry-id` only follows XDEL, not trimming) —
 * and `z`, its epoch.
 *
 * A chosen id is taken while the entry it names is in the stream: its key outlives the entry
 * when the entry was trimmed by count or belonged to a log that was lost.
 *
 * KEYS: the log, its epoch record, then one `<stream>:id:<chosenIdKey>` per chosen id.
 * ARGV: the epoch's four (see EPOCH_LUA), maxEvents, maxAgeMs, trim by age now ('1'|'0'), then
 * per draft: JSON, index in KEYS or '0' (negative: an id that may be reused, pointed at the new
 * entry whether taken or not).
 * Returns {1, epoch id, epoch start, entry ids…}, or {0, index in KEYS of the duplicate}.
 */
const APPEND_SCRIPT = `${EPOCH_LUA}
local log = KEYS[1]
local id, start, last = epoch()
for i = 8, #ARGV, 2 do
  local chosen = tonumber(ARGV[i + 1])
  if chosen > 0 then
    local pos = redis.call('GET', KEYS[chosen])
    if pos and string.match(pos, '^%d+%-%d+$') and redis.call('XRANGE', log, pos, pos)[1] then
      return {0, chosen}
    end
  end
end
local prev = last
local ids = {1, id, start}
for i = 8, #ARGV, 2 do
  local entry = redis.call('XADD', log, 'MAXLEN', '=', ARGV[5], '*', 'e', ARGV[i], 'p', prev, 'z', id)
  local chosen = tonumber(ARGV[i + 1])
  if chosen ~= 0 then redis.call('SET', KEYS[math.abs(chosen)], entry, 'PX', ARGV[6]) end
  ids[#ids + 1] = entry
  prev = entry
end
if ARGV[7] == '1' then
  local now = redis.call('TIME')
  local cutoff = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) - tonumber(ARGV[6])
  if cutoff > 0 then redis.call('XTRIM', log, 'MINID', '=', string.format('%.0f', cutoff)) end
end
return ids
`;

/** Trims by age, by Redis's clock (entry ids carry it). KEYS: the log. ARGV: maxAgeMs. */
const TRIM_SCRIPT = `
local now = redis.call('TIME')
local cutoff = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) - tonumber(ARGV[1])
if cutoff <= 0 then return 0 end
return redis.call('XTRIM', KEYS[1], 'MINID', '=', string.format('%.0f', cutoff))
`;

/**
 * Where the log stands, without shipping entries to the client. KEYS: the log, its epoch record,
 * optionally a chosen-id key. ARGV: the epoch's four. Returns {epoch id, epoch start, last
 * generated id, where the trimmed part ends or '' when unknown, first entry id or '', entry of the
 * chosen id or ''}.
 */
const WHERE_SCRIPT = `${EPOCH_LUA}
local id, start = epoch()
local chosen = ''
if KEYS[3] then chosen = redis.call('GET', KEYS[3]) or '' end
local info = redis.call('XINFO', 'STREAM', KEYS[1])
local last, first, boundary, added, length = '0-0', '', '', 0, 0
for i = 1, #info, 2 do
  local name, value = info[i], info[i + 1]
  if name == 'last-generated-id' then last = value
  elseif name == 'entries-added' then added = value
  elseif name == 'length' then length = value
  elseif name == 'first-entry' and value then
    first = value[1]
    local fields = value[2]
    for j = 1, #fields, 2 do
      if fields[j] == 'p' then boundary = fields[j + 1] end
    end
  end
end
if boundary == '' and first ~= '' and added == length then boundary = '0-0' end
return {id, start, last, boundary, first, chosen}
`;

/** The epoch alone, made when missing. KEYS: the log, its epoch record. ARGV: the epoch's four. */
const CHECK_SCRIPT = `${EPOCH_LUA}
local id, start, last = epoch()
return {id, start, last}
`;

interface Script {
  readonly source: string;
  readonly sha: string;
}

const script = (source: string): Script => ({ source, sha: createHash('sha1').update(source).digest('hex') });
const APPEND = script(APPEND_SCRIPT);
const TRIM = script(TRIM_SCRIPT);
const WHERE = script(WHERE_SCRIPT);
const CHECK = script(CHECK_SCRIPT);

type Client = ReturnType<typeof newClient>;
interface StreamEntry {
  readonly id: string;
  readonly message: Readonly<Record<string, string>>;
}

function newClient(url: string, wasReady: () => boolean, blockMs: number) {
  return createClient({
    url,
    // Flat array replies whatever the server version; the stream commands' typed replies are
    // the same objects under RESP2 and RESP3.
    RESP: 2,
    // While disconnected, fail at once (the append answers 503) instead of queueing commands
    // that would run minutes later, after the publisher was told nothing.
    disableOfflineQueue: true,
    commandOptions: { timeout: blockMs + COMMAND_TIMEOUT_MS },
    socket: {
      connectTimeout: CONNECT_TIMEOUT_MS,
      // The first connection fails fast (start() reports it); once up, retry forever.
      reconnectStrategy: (retries: number) =>
        wasReady() ? Math.min(50 * 2 ** Math.min(retries, 10), MAX_BACKOFF_MS) + Math.random() * 50 : false,
    },
  });
}

/** Which incarnation of the log: its id, and the position every entry of it comes after. */
interface Epoch {
  readonly id: string;
  readonly start: string;
}

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
 * Resets: the log has an epoch (see EPOCH_LUA), which every script checks and makes anew when
 * the log was lost or went back. Positions grow across epochs, so each node's feed goes on after
 * the last entry it fed, and when it meets a new epoch (an entry of it, or a check after a
 * reconnection or a quiet second) it reports the reset once, calls `onReset` with the new
 * epoch's start, and follows the new log from that start: every node feeds the same entries of
 * it, none twice. `locate` answers `reset` for a position before the current epoch.
 */
export class RedisBroker implements Broker, PersistenceReporting {
  readonly kind = 'redis';
  private readonly url: string;
  private readonly logKey: string;
  private readonly epochKey: string;
  private readonly idPrefix: string;
  private readonly maxEvents: number;
  private readonly maxAgeMs: number;
  private readonly onError: (error: unknown, context: string) => void;
  private readonly client: Client;
  private readonly blocking: Client;
  private clientReady = false;
  private blockingReady = false;
  private opening: Promise<unknown> | undefined;
  private reconnecting: Promise<void> | undefined;
  private blockingOpening: Promise<unknown> | undefined;
  private feed: ((events: readonly HeraldEvent[]) => void) | undefined;
  private onReset: ((from: string) => void) | undefined;
  /** The last entry the feed passed on: it resumes after it, whatever happened meanwhile. */
  private lastFed = ORIGIN;
  private feeding: Promise<void> | undefined;
  /** The newest epoch any answer of Redis named. */
  private epoch: Epoch | undefined;
  /** The furthest position known to exist in `epoch`: a log whose last id is before it went back. */
  private seen = ORIGIN;
  /** The epoch the feed follows; it moves to `epoch` between two reads. */
  private feedEpoch: Epoch | undefined;
  /** Epochs the feed has left, whose entries it passes on as they come (the newest last). */
  private readonly retired: string[] = [];
  /** Whether the feed looks at the epoch before its next read: after a reconnection, or a quiet read. */
  private checkBeforeRead = false;
  /** A position the feed was told to trust as it is (a check found nothing wrong there). */
  private trusted = '';
  private closed = false;
  private wake: (() => void) | undefined;
  private sweeper: ReturnType<typeof setInterval> | undefined;
  private lastAgeTrim = 0;
  private readonly lastReport = new Map<string, number>();

  constructor(options: RedisBrokerOptions) {
    this.url = options.url;
    const stream = options.stream ?? 'herald';
    if (stream === '') throw new RangeError('the Redis stream name must not be empty');
    this.logKey = `${stream}:log`;
    this.epochKey = `${stream}:epoch`;
    this.idPrefix = `${stream}:id:`;
    this.maxEvents = positive(options.maxEvents ?? DEFAULT_HISTORY_SIZE, 'history size');
    this.maxAgeMs = positive(options.maxAgeMs ?? DEFAULT_HISTORY_MAX_AGE_MS, 'history max age');
    this.onError = options.onError ?? (() => {});
    this.client = newClient(options.url, () => this.clientReady, 0);
    this.blocking = newClient(options.url, () => this.blockingReady, BLOCK_MS);
    // node-redis emits 'error' on every failed (re)connection; unlistened, it would crash the process.
    this.client.on('error', (error: unknown) => this.report(error, 'redis connection'));
    this.client.on('ready', () => {
      this.clientReady = true;
      this.lastReport.delete('redis connection');
    });
    this.blocking.on('error', (error: unknown) => this.report(error, 'redis feed connection'));
    this.blocking.on('ready', () => {
      // Back after a lost connection: Redis may have restarted meanwhile, empty or from a snapshot.
      if (this.blockingReady) this.checkBeforeRead = true;
      this.blockingReady = true;
      this.lastReport.delete('redis feed connection');
      this.lastReport.delete('feed');
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
    this.feed = feed;
    this.onReset = onReset;
    if (this.feeding !== undefined) return this.lastFed;
    await this.connect();
    await this.connectBlocking();
    const where = await this.where(undefined);
    this.feedEpoch = this.epoch;
    this.lastFed = where.last;
    this.feeding = this.tail();
    this.sweeper ??= setInterval(() => this.sweep(), Math.max(100, Math.min(this.maxAgeMs / 4, 30_000)));
    this.sweeper.unref?.();
    return this.lastFed;
  }

  async append(drafts: readonly EventDraft[]): Promise<HeraldEvent[]> {
    if (drafts.length === 0) return [];
    const keys = [this.logKey, this.epochKey];
    /** The chosen id of each key of KEYS (1-based, as the script answers). */
    const named = new Map<number, string>();
    const taken = new Set<string>();
    const now = Date.now();
    const trimByAge = now - this.lastAgeTrim >= 1000;
    const args = [
      ...this.epochArgs(false),
      String(this.maxEvents),
      String(this.maxAgeMs),
      trimByAge ? '1' : '0',
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
    const reply = await this.run(APPEND, keys, args, 'append');
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
    this.learn(String(reply[1]), String(reply[2]), String(reply[reply.length - 1]));
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
    if (this.compare(pos, where.start) < 0) return { kind: 'reset', from: where.start };
    if (this.compare(pos, where.last) > 0) return { kind: 'unknown' };
    if (where.first === '') {
      // Nothing is retained: only a client that saw the very last event has missed nothing.
      return this.compare(pos, where.last) === 0
        ? { kind: 'found', pos }
        : { kind: 'expired', from: where.last };
    }
    // Replay starts after `pos`: everything after it must still be there. The trimmed part of
    // the log ends at `boundary` (the entry before the first retained one).
    const boundary = where.boundary === '' ? where.first : where.boundary;
    return this.compare(pos, boundary) < 0 ? { kind: 'expired', from: boundary } : { kind: 'found', pos };
  }

  async read(after: string | null, until: string, limit: number): Promise<HeraldEvent[]> {
    const end = canonical(until);
    const start = after === null ? undefined : canonical(after);
    if (end === undefined || limit <= 0) return [];
    if (start !== undefined && this.compare(start, end) >= 0) return [];
    const entries = await this.call('read', () =>
      this.client.xRange(this.logKey, start === undefined ? '-' : `(${start}`, end, { COUNT: limit }),
    );
    return this.decode(entries);
  }

  compare(a: string, b: string): number {
    const [msA, seqA] = parts(a);
    const [msB, seqB] = parts(b);
    return compareDecimal(msA, msB) || compareDecimal(seqA, seqB);
  }

  async history(): Promise<HistoryStats> {
    const [size, oldest, newest] = await this.call('history', () =>
      Promise.all([
        this.client.xLen(this.logKey),
        this.client.xRange(this.logKey, '-', '+', { COUNT: 1 }),
        this.client.xRevRange(this.logKey, '+', '-', { COUNT: 1 }),
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
    if (this.closed) return { ok: false, detail: 'the Redis broker is closed' };
    try {
      if (!this.client.isOpen) await this.connect();
      await this.client.sendCommand(['PING'], { timeout: HEALTH_TIMEOUT_MS });
      if (this.feeding !== undefined && !this.blocking.isReady) {
        return { ok: false, detail: `redis feed connection to ${redactUrl(this.url)} is down; reconnecting` };
      }
      return { ok: true };
    } catch (error) {
      if (error instanceof HeraldError) return { ok: false, detail: error.detail };
      return { ok: false, detail: `redis unreachable at ${redactUrl(this.url)}: ${message(error)}` };
    }
  }

  /**
   * What the Redis server's persistence can lose, for the operator's log at start; undefined
   * when it keeps an append-only file. See `persistenceWarning`.
   */
  async persistenceWarning(): Promise<string | undefined> {
    if (!this.client.isOpen) await this.connect();
    return persistenceOf(this.client, this.url);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.feed = undefined;
    this.onReset = undefined;
    clearInterval(this.sweeper);
    this.sweeper = undefined;
    this.wake?.();
    // Not waiting for a pending XREAD BLOCK: destroy rejects it now, and the loop sees `closed`.
    if (this.blocking.isOpen) this.blocking.destroy();
    await this.feeding;
    if (this.client.isOpen) {
      const timer = setTimeout(() => this.client.destroy(), COMMAND_TIMEOUT_MS);
      await this.client.close().catch(() => {});
      clearTimeout(timer);
    }
  }

  /** Tails the stream: each batch fed once, in order; after a lost connection, resumes where it was. */
  private async tail(): Promise<void> {
    let failures = 0;
    while (!this.closed) {
      try {
        if (!this.blocking.isOpen) await this.connectBlocking();
        if (this.checkBeforeRead) {
          this.checkBeforeRead = false;
          await this.check(false);
        }
        this.followEpoch();
        const reply = await this.blocking.xRead(
          { key: this.logKey, id: this.lastFed },
          { BLOCK: BLOCK_MS, COUNT: FEED_BATCH },
        );
        failures = 0;
        if (this.closed) return;
        const entries = reply?.[0]?.messages;
        if (entries === undefined || entries.length === 0) {
          // A quiet second: a log deleted or flushed meanwhile is noticed without waiting for an append.
          this.checkBeforeRead = true;
          continue;
        }
        const { count, proof } = this.sameLog(entries);
        if (count > 0) this.pass(entries.slice(0, count));
        if (count < entries.length && !this.closed) {
          // An entry of an epoch this feed does not follow, or proof that the log went back:
          // learn (or make) the epoch; the next turn follows it.
          const before = this.epoch?.id;
          if (before === this.feedEpoch?.id) await this.check(proof);
          if (this.epoch?.id === before && before === this.feedEpoch?.id) {
            // Nothing to follow (a foreign epoch id, or a log put right meanwhile): take them as they are.
            const z = entries[count]?.message.z;
            if (z !== undefined && z !== before) this.retire(z);
            this.trusted = this.lastFed;
          }
        }
      } catch (error) {
        if (this.closed) return;
        this.report(error, 'feed');
        await this.pause(Math.min(50 * 2 ** Math.min(failures++, 10), MAX_BACKOFF_MS));
      }
    }
  }

  /**
   * How many entries, from the first, belong to the log the feed follows; and whether the first
   * proves that log went back (its predecessor is before what was fed: entries this node fed are
   * no longer in the stream).
   */
  private sameLog(entries: readonly StreamEntry[]): { count: number; proof: boolean } {
    const current = this.feedEpoch?.id;
    for (let i = 0; i < entries.length; i++) {
      const fields = (entries[i] as StreamEntry).message;
      const z = fields.z;
      const ours = z === undefined || z === current;
      if (!ours && !this.retired.includes(z)) return { count: i, proof: false };
      if (i > 0 || !ours) continue;
      // Each entry names its predecessor: if that is not where this node stopped, what came in
      // between was trimmed before this node could read it (an outage longer than retention), or
      // the log went back.
      const previous = canonical(fields.p ?? '');
      if (previous === undefined) continue;
      if (this.compare(previous, this.lastFed) < 0 && this.lastFed !== this.trusted)
        return { count: 0, proof: true };
      if (
        this.compare(previous, this.lastFed) > 0 &&
        this.compare(previous, this.feedEpoch?.start ?? ORIGIN) > 0
      ) {
        this.onError(
          new Error(
            `the feed lost the events after ${this.lastFed} up to ${previous}: trimmed while this node was away`,
          ),
          'feed gap',
        );
      }
    }
    return { count: entries.length, proof: false };
  }

  private pass(entries: readonly StreamEntry[]): void {
    const events = this.decode(entries);
    this.lastFed = String(entries[entries.length - 1]?.id);
    if (this.compare(this.lastFed, this.seen) > 0) this.seen = this.lastFed;
    if (events.length === 0) return;
    try {
      this.feed?.(events);
    } catch (error) {
      this.onError(error, 'feed callback');
    }
  }

  /**
   * Between two reads: moves the feed to the newest epoch learned. Positions grow across epochs,
   * so going on after the last entry fed misses nothing of the new log, unless that entry is
   * past the new log's start (a clock gone back): then from the start.
   */
  private followEpoch(): void {
    const next = this.epoch;
    const left = this.feedEpoch;
    if (next === undefined || left === undefined || next.id === left.id) return;
    this.retire(left.id);
    this.feedEpoch = next;
    // Adopted (a log from before epochs, or one whose record was removed): the same log.
    if (next.start === ORIGIN) return;
    if (this.compare(this.lastFed, next.start) > 0) this.lastFed = next.start;
    this.onError(
      new Error(
        `the Redis log ${this.logKey} was lost or went back (a restart without persistence, FLUSHALL, ` +
          `the stream deleted, or an older snapshot restored); it goes on as a new log after ${next.start}. ` +
          'Events appended before that and not yet delivered by this node may be lost; ' +
          'clients resuming from before it are told with herald.gap "reset"',
      ),
      'log reset',
    );
    try {
      this.onReset?.(next.start);
    } catch (error) {
      this.onError(error, 'reset callback');
    }
  }

  private retire(id: string): void {
    if (this.retired.includes(id)) return;
    this.retired.push(id);
    if (this.retired.length > RETIRED_EPOCHS) this.retired.shift();
  }

  /** Takes in an epoch named by Redis, and the furthest position known in it. */
  private learn(id: string, start: string, last?: string): void {
    if (this.epoch?.id !== id) {
      if (this.retired.includes(id) || canonical(start) === undefined) return;
      this.epoch = { id, start };
      this.seen = start;
    }
    if (last !== undefined && canonical(last) !== undefined && this.compare(last, this.seen) > 0) {
      this.seen = last;
    }
  }

  /** ARGV of the epoch check every script starts with (see EPOCH_LUA). */
  private epochArgs(proof: boolean): string[] {
    return [randomBytes(9).toString('base64url'), this.epoch?.id ?? '', this.seen, proof ? '1' : '0'];
  }

  private async check(proof: boolean): Promise<void> {
    const reply = await this.run(CHECK, [this.logKey, this.epochKey], this.epochArgs(proof), 'epoch check');
    if (!Array.isArray(reply) || reply.length !== 3) {
      throw new HeraldError(503, 'broker-unavailable', 'redis gave an unexpected answer to the epoch check');
    }
    this.learn(String(reply[0]), String(reply[1]), String(reply[2]));
  }

  /** A backoff that `close()` cuts short. */
  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wake = done;
    });
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
        this.report(
          new Error(`stream entry ${entry.id} of ${this.logKey} is not a Herald event: ${message(error)}`),
          'decode',
        );
      }
    }
    return events;
  }

  private sweep(): void {
    if (!this.clientReady || !this.client.isReady) return;
    this.lastAgeTrim = Date.now();
    this.run(TRIM, [this.logKey], [String(this.maxAgeMs)], 'retention').catch((error: unknown) =>
      this.report(error, 'retention'),
    );
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
    const reply = await this.run(WHERE, keys, this.epochArgs(false), 'locate');
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
    this.learn(id, start, last);
    return { start, last, boundary, first, chosen };
  }

  /** EVALSHA, and EVAL when the server does not have the script yet (first use, or after a restart). */
  private run(
    script: Script,
    keys: readonly string[],
    args: readonly string[],
    what: string,
  ): Promise<unknown> {
    return this.call(what, async () => {
      const tail = [String(keys.length), ...keys, ...args];
      try {
        return await this.client.sendCommand(['EVALSHA', script.sha, ...tail]);
      } catch (error) {
        if (!(error instanceof ErrorReply && error.message.startsWith('NOSCRIPT'))) throw error;
        return await this.client.sendCommand(['EVAL', script.source, ...tail]);
      }
    });
  }

  /** Runs a command; any failure to get an answer from Redis is a 503 the caller can act on. */
  private async call<T>(what: string, command: () => Promise<T>): Promise<T> {
    try {
      if (!this.client.isOpen) await this.connect();
      else if (!this.client.isReady) await this.reconnected(RECONNECT_GRACE_MS);
      return await command();
    } catch (error) {
      if (error instanceof HeraldError) throw error;
      const detail =
        error instanceof ErrorReply
          ? `redis refused the ${what}: ${error.message}`
          : `redis unreachable at ${redactUrl(this.url)} (${what}): ${message(error)}`;
      throw new HeraldError(503, 'broker-unavailable', detail);
    }
  }

  /**
   * Waits a little for a reconnection under way: a blip (a killed connection, a failover) costs
   * the caller a few milliseconds instead of a 503, and a real outage still fails fast.
   */
  private async reconnected(ms: number): Promise<void> {
    this.reconnecting ??= new Promise<void>((resolve) => this.client.once('ready', resolve)).finally(() => {
      this.reconnecting = undefined;
    });
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([this.reconnecting, new Promise((resolve) => (timer = setTimeout(resolve, ms)))]);
    clearTimeout(timer);
  }

  /**
   * Opens the command connection, or waits for the opening under way. Once it has been up,
   * node-redis reconnects by itself; a first connection that fails is tried again on next use.
   */
  private async connect(): Promise<void> {
    if (this.closed) throw new HeraldError(503, 'broker-unavailable', 'the Redis broker is closed');
    if (!this.client.isOpen) {
      this.opening = this.client.connect().finally(() => {
        this.opening = undefined;
      });
    }
    try {
      await this.opening;
    } catch (error) {
      throw new HeraldError(
        503,
        'broker-unavailable',
        `redis unreachable at ${redactUrl(this.url)}: ${message(error)}`,
      );
    }
  }

  private async connectBlocking(): Promise<void> {
    if (this.closed) return;
    if (!this.blocking.isOpen) {
      this.blockingOpening = this.blocking.connect().finally(() => {
        this.blockingOpening = undefined;
      });
    }
    try {
      await this.blockingOpening;
    } catch (error) {
      throw new HeraldError(
        503,
        'broker-unavailable',
        `redis unreachable at ${redactUrl(this.url)} (feed): ${message(error)}`,
      );
    }
  }

  private report(error: unknown, context: string): void {
    if (this.closed) return;
    const now = Date.now();
    const last = this.lastReport.get(context);
    if (last !== undefined && now - last < ERROR_REPORT_INTERVAL_MS) return;
    this.lastReport.set(context, now);
    this.onError(error, context);
  }
}

/**
 * What a Redis server's persistence can lose, as a warning for the operator's log at start, or
 * undefined when it keeps an append-only file (with `appendfsync always` nothing acknowledged is
 * lost; with `everysec` or `no`, a crash of the machine, not of Redis, can lose the last second or
 * so). Tolerates a server where CONFIG is disabled (managed Redis): then INFO tells whether the
 * append-only file is on. Rejects only when Redis cannot be reached.
 */
export async function persistenceWarning(url: string): Promise<string | undefined> {
  const client = createClient({
    url,
    RESP: 2,
    socket: { connectTimeout: CONNECT_TIMEOUT_MS, reconnectStrategy: false },
  });
  client.on('error', () => {});
  try {
    await client.connect();
    return await persistenceOf(client, url);
  } finally {
    if (client.isOpen) client.destroy();
  }
}

type AnyClient = Pick<Client, 'sendCommand'>;

async function persistenceOf(client: AnyClient, url: string): Promise<string | undefined> {
  const where = `Redis at ${redactUrl(url)}`;
  const consequence =
    'Herald notices the lost log and tells resuming clients with herald.gap "reset", but those events are gone. ' +
    'To lose nothing, run Redis with appendonly yes and appendfsync always';
  let config: Map<string, string>;
  try {
    const reply = [
      ...((await client.sendCommand(['CONFIG', 'GET', 'append*'])) as unknown[]),
      ...((await client.sendCommand(['CONFIG', 'GET', 'save'])) as unknown[]),
    ];
    config = new Map();
    for (let i = 0; i + 1 < reply.length; i += 2) config.set(String(reply[i]), String(reply[i + 1]));
  } catch (error) {
    if (!(error instanceof ErrorReply)) throw error;
    // CONFIG renamed or refused (managed Redis): INFO tells whether the append-only file is on.
    const info = String(await client.sendCommand(['INFO', 'persistence']).catch(() => ''));
    const aof = /^aof_enabled:(\d)/m.exec(info)?.[1];
    if (aof === '1') return undefined;
    if (aof === undefined)
      return `${where}: could not tell its persistence (CONFIG and INFO refused). ${consequence}`;
    return (
      `${where} keeps no append-only file (INFO persistence; CONFIG is not available to tell its RDB snapshots): ` +
      `a Redis restart loses the events since the last snapshot, or the whole log without one. ${consequence}`
    );
  }
  if (config.get('appendonly') === 'yes') return undefined;
  const save = config.get('save') ?? '';
  if (save.trim() === '') {
    return (
      `${where} keeps no persistence (appendonly no, save ""): a Redis restart loses the whole event ` +
      `history, and the events not yet delivered. ${consequence}`
    );
  }
  return (
    `${where} keeps only RDB snapshots (appendonly no, save "${save}"): a Redis restart loses the events ` +
    `appended since the last snapshot. ${consequence}`
  );
}

function duplicate(id: string): HeraldError {
  return new HeraldError(409, 'duplicate-id', `id "${id}" is already in the history; ids must be unique`);
}

/** `<ms>-<seq>` without leading zeros, or undefined when `id` is not entry-id-shaped. */
function canonical(id: string): string | undefined {
  const match = ENTRY_ID.exec(id);
  if (match === null) return undefined;
  return `${stripZeros(match[1] as string)}-${stripZeros(match[2] as string)}`;
}

function parts(id: string): [ms: string, seq: string] {
  const match = ENTRY_ID.exec(id);
  if (match === null) return ['0', '0'];
  return [stripZeros(match[1] as string), stripZeros(match[2] as string)];
}

function stripZeros(digits: string): string {
  let i = 0;
  while (i < digits.length - 1 && digits.charCodeAt(i) === 48) i++;
  return i === 0 ? digits : digits.slice(i);
}

/** Compares unsigned decimals of any length (entry id parts go up to 2^64 - 1): no precision lost. */
function compareDecimal(a: string, b: string): number {
  if (a.length !== b.length) return a.length - b.length;
  return a < b ? -1 : a > b ? 1 : 0;
}

function message(error: unknown): string {
  if (error instanceof AggregateError && error.errors.length > 0) return message(error.errors[0]);
  if (error instanceof Error) return error.message || error.name;
  return String(error);
}

function positive(value: number, what: string): number {
  if (!Number.isSafeInteger(value) || value <= 0) throw new RangeError(`${what} must be a positive integer`);
  return value;
}
