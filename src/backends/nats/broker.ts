import type { StoredMsg, StreamInfo } from '@nats-io/jetstream';
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
import { chosenIdKey, decodeEvent, encodeDraft } from '../codec.ts';
import { DEFAULT_HISTORY_MAX_AGE_MS, DEFAULT_HISTORY_SIZE, positive } from '../history.ts';
import { latestMaxKeysOf } from '../latest.ts';
import { withTimeout } from '../with-timeout.ts';
import { type AppendTarget, appendOnce } from './append.ts';
import { NatsBus } from './bus.ts';
import { natsConnection } from './client.ts';
import { NatsCounters } from './counters.ts';
import { duplicate, isApiError, LogMissing, message, unavailable } from './failures.ts';
import { NatsFeed } from './feed.ts';
import { checkChosenId, keyOf, MAX_ID_BYTES } from './ids.ts';
import { LatestBucket } from './latest.ts';
import { jetstreamManager, StorageType } from './library.ts';
import { POSITION, seqOf, sequence, where } from './positions.ts';
import { readBackPage, readPage } from './read.ts';
import { type Epoch, epochOf, type Link, LogStream } from './stream.ts';

export interface NatsBrokerOptions {
  /** `nats://host:port`, or several for a cluster. */
  readonly servers: string | string[];
  /**
   * The JetStream stream that is the log. Default `HERALD`. Its subject is
   * `<stream in lower case>.events`; the bucket of publisher-chosen ids is `<stream>_IDS`, that
   * of the latest values per key `<stream>_LATEST`, those of the shared counters
   * `<stream>_COUNTS` and `<stream>_WINDOWS`; the cluster bus is `<stream in lower case>.bus`.
   */
  readonly stream?: string;
  /** Events kept for replay (the stream's MaxMsgs). Default 10 000. */
  readonly maxEvents?: number;
  /** How long an event is kept for replay, in ms (the stream's MaxAge). Default 24 h. */
  readonly maxAgeMs?: number;
  /**
   * Latest values per (tenant, topic, key) kept, across tenants (the bucket's MaxMsgs); 0: none.
   * Default 10 000. Written right after the append, not atomically with it (latest.ts).
   */
  readonly latestMaxKeys?: number;
  /** Problems that no caller is waiting for: a lost connection, a feed that had to restart. */
  readonly onError?: (error: unknown, context: string) => void;
}

/** JetStream API requests (stream info, consumer create, KV). */
const API_TIMEOUT_MS = 2000;
const CONNECT_TIMEOUT_MS = 2000;
const HEALTH_TIMEOUT_MS = 1000;

/**
 * The log on NATS JetStream. One stream is the log: positions and ids are stream sequence numbers
 * (`"42"`), retention is the stream's MaxMsgs and MaxAge, and every node follows the stream with an
 * ordered consumer. Publisher-chosen ids live in a KV bucket, id → sequence, with the same MaxAge.
 *
 * Resets: a log deleted and made again, or lost with a server's store (memory storage, a wiped
 * disk), is another stream, with another creation time: its epoch. Herald makes a missing log
 * anew (any node, whichever notices first) with sequences that start past anything the old one can
 * have held (past what the node saw, and past the clock in microseconds), and writes that start
 * in the stream's description. A node's feed checks the stream whenever a message is not the next
 * sequence, after a reconnection, and when its consumer loses the stream; on a new epoch it
 * reports the reset once, calls `onReset`, and follows the new log from its start. `locate`
 * answers `reset` for a sequence before the current epoch.
 *
 * Subjects: every event goes to one subject, `<stream>.events` (e.g. `herald.events`), because the
 * hub wants the whole log, in one order, on every node. Sharding by tenant would publish to
 * `herald.events.<tenant-token>` (the tenant base64url-encoded, as subject tokens cannot hold any
 * character) with the stream bound to `herald.events.>`: a node or a bridge could then follow one
 * tenant with `filter_subjects`, and tenants could be split over several streams, each its own log
 * with its own sequence, at the price of ids that name their stream. One subject is enough today.
 *
 * The parts: stream.ts (making the stream and its bucket), append.ts, ids.ts (chosen ids),
 * latest.ts (latest values per key), feed.ts (the live feed), read.ts, positions.ts, failures.ts;
 * client.ts makes the connection; for the cluster (core/cluster.ts), bus.ts and counters.ts,
 * neither on the path of an event. What stays here, past the ~400 lines a module keeps to, is one
 * idea: the connection's state (link, epoch, furthest sequence seen, one recovery at a time) that
 * the feed, appends and reads all share and change. Split further, each part would hold callbacks
 * into the others' state, which reads worse than the state machine whole.
 */
export class NatsBroker
  implements Broker, BackwardReading, LatestKeeping, PersistenceReporting, Broadcasting, SharedCounting
{
  readonly kind = 'nats';
  readonly latestMaxKeys: number;
  private readonly servers: string | string[];
  private readonly stream: string;
  private readonly subject: string;
  private readonly maxEvents: number;
  private readonly maxAgeMs: number;
  private readonly onError: (error: unknown, context: string) => void;
  private readonly log: LogStream;
  private readonly tailer: NatsFeed;
  private readonly latestBucket: LatestBucket | undefined;
  /** Where appends go, and what they tell this broker. */
  private readonly target: AppendTarget;
  private readonly bus: NatsBus;
  private readonly counters: NatsCounters;

  private opening: Promise<Link> | undefined;
  private link: Link | undefined;
  /** Whether the socket is up now: appends fail fast while the client reconnects. */
  private connected = false;
  private closed = false;
  /** The newest epoch learned from the stream. */
  private epoch: Epoch | undefined;
  /** The furthest sequence known in `epoch`: a new log starts past it. */
  private seen = 0;
  /** One making-anew of the log at a time. */
  private recovering: Promise<StreamInfo> | undefined;

  constructor(options: NatsBrokerOptions) {
    this.servers = options.servers;
    this.stream = options.stream ?? 'HERALD';
    if (!/^[A-Za-z0-9_-]{1,200}$/.test(this.stream)) {
      throw new RangeError(`stream name "${this.stream}" may only hold letters, digits, "_" and "-"`);
    }
    this.maxEvents = positive(options.maxEvents ?? DEFAULT_HISTORY_SIZE, 'history size');
    this.maxAgeMs = positive(options.maxAgeMs ?? DEFAULT_HISTORY_MAX_AGE_MS, 'history max age');
    this.onError = options.onError ?? (() => {});
    this.latestMaxKeys = latestMaxKeysOf(options.latestMaxKeys);
    this.latestBucket =
      this.latestMaxKeys > 0 ? new LatestBucket(this.stream, this.latestMaxKeys, this.onError) : undefined;
    this.log = new LogStream(
      this.stream,
      { maxEvents: this.maxEvents, maxAgeMs: this.maxAgeMs },
      {
        knewLog: () => this.epoch !== undefined,
        seen: () => this.seen,
        closed: () => this.closed,
      },
    );
    this.subject = this.log.subject;
    this.target = {
      stream: this.stream,
      subject: this.subject,
      onError: this.onError,
      saw: (seq) => this.saw(seq),
      latest: this.latestBucket,
    };
    this.tailer = new NatsFeed({
      stream: this.stream,
      onError: this.onError,
      closed: () => this.closed,
      connected: () => this.connected,
      epoch: () => this.epoch,
      ready: () => this.ready(),
      state: (link) => this.state(link),
      saw: (seq) => this.saw(seq),
      decode: (message) => this.decode(message),
    });
    this.bus = new NatsBus(this.stream, {
      ready: () => this.ready(),
      connected: () => this.connected,
      closed: () => this.closed,
      where: () => this.where(),
      onError: this.onError,
    });
    this.counters = new NatsCounters(this.stream, () => this.ready());
  }

  /**
   * Starts the feed. `onReset`, when given, is called in feed order when the feed leaves a log
   * that was lost or replaced: after every message of the old log it passes on, before any of the
   * new one, with the position the new log starts after.
   */
  async start(
    feed: (events: readonly HeraldEvent[]) => void,
    onReset?: (from: string) => void,
  ): Promise<string> {
    const link = await this.ready();
    try {
      const head = (await this.state(link)).state.last_seq;
      await this.tailer.begin(link, head, feed, onReset);
      return String(head);
    } catch (error) {
      this.tailer.forget();
      throw unavailable(error);
    }
  }

  async append(drafts: readonly EventDraft[]): Promise<HeraldEvent[]> {
    if (drafts.length === 0) return [];
    const taken = new Set<string>();
    for (const draft of drafts) {
      if (draft.id === undefined) continue;
      checkChosenId(draft.id);
      if (draft.reuseId === true) continue;
      // In the tenant's namespace: another tenant's ids are neither taken, moved nor confirmed.
      const key = chosenIdKey(draft.tenant, draft.id);
      if (taken.has(key)) throw duplicate(draft.id);
      taken.add(key);
    }
    const bodies = drafts.map(encodeDraft);
    const link = await this.ready();
    this.checkConnected(link);
    try {
      return await appendOnce(link, this.target, drafts, bodies);
    } catch (error) {
      if (!(error instanceof LogMissing)) throw error;
      // Nothing was stored: the log is gone (deleted, or lost with the server's store). Make it
      // anew and try once more.
      await this.recover(link);
      try {
        return await appendOnce(link, this.target, drafts, bodies);
      } catch (again) {
        throw again instanceof LogMissing ? unavailable(again.cause) : again;
      }
    }
  }

  async locate(id: string, tenant: string): Promise<Location> {
    try {
      const link = await this.ready();
      if (POSITION.test(id)) return where(Number(id), await this.state(link));
      if (id === '' || Buffer.byteLength(id) > MAX_ID_BYTES) return { kind: 'unknown' };
      // Looked up in the caller's tenant only: another tenant's id is not there, as if never issued.
      const info = await this.state(link);
      const entry = await link.ids.get(keyOf(tenant, id));
      if (entry === null || entry.operation !== 'PUT') return { kind: 'unknown' };
      const seq = sequence(entry.string());
      // Pending: its append is in flight, or failed between publishing and recording.
      if (seq === undefined) return { kind: 'unknown' };
      return where(seq, info);
    } catch (error) {
      throw unavailable(error);
    }
  }

  async read(after: string | null, until: string, limit: number): Promise<HeraldEvent[]> {
    const from = after === null ? 1 : seqOf(after) + 1;
    const to = seqOf(until);
    if (limit <= 0 || to < from) return [];
    try {
      const link = await this.ready();
      return await readPage(link, this.stream, { from, to, limit }, (message) => this.decode(message));
    } catch (error) {
      throw unavailable(error);
    }
  }

  async readBack(until: string, limit: number, exclusive: boolean): Promise<HeraldEvent[]> {
    try {
      const link = await this.ready();
      const range = { until: seqOf(until), limit, exclusive };
      return await readBackPage(link, this.stream, range, (message) => this.decode(message));
    } catch (error) {
      throw unavailable(error);
    }
  }

  async latest(tenant: string, limit: number): Promise<LatestEvents> {
    if (this.latestBucket === undefined) return { events: [], complete: true };
    try {
      return await this.latestBucket.read(await this.ready(), tenant, limit);
    } catch (error) {
      throw unavailable(error);
    }
  }

  compare(a: string, b: string): number {
    return seqOf(a) - seqOf(b);
  }

  async history(): Promise<HistoryStats> {
    try {
      const link = await this.ready();
      const { messages, first_seq } = (await this.info(link)).state;
      const stats: { -readonly [K in keyof HistoryStats]: HistoryStats[K] } = {
        size: messages,
        maxSize: this.maxEvents,
        maxAgeMs: this.maxAgeMs,
      };
      if (messages > 0) {
        const [oldest, newest] = await Promise.all([
          link.jsm.direct.getMessage(this.stream, { seq: first_seq, next_by_subj: this.subject }),
          link.jsm.direct.getMessage(this.stream, { last_by_subj: this.subject }),
        ]);
        stats.oldestId = this.idOf(oldest);
        stats.newestId = this.idOf(newest);
      }
      return stats;
    } catch (error) {
      throw unavailable(error);
    }
  }

  async health(): Promise<LogHealth> {
    if (this.closed) return { ok: false, detail: 'nats unreachable: the broker is closed' };
    try {
      const link = await withTimeout(this.ready(), HEALTH_TIMEOUT_MS, 'no connection');
      if (!this.connected || link.nc.isClosed()) {
        return { ok: false, detail: `nats unreachable: connection to ${this.where()} lost, reconnecting` };
      }
      await withTimeout(link.jsm.streams.info(this.stream), HEALTH_TIMEOUT_MS, 'stream info did not answer');
      return { ok: true };
    } catch (error) {
      return {
        ok: false,
        detail: error instanceof HeraldError ? error.detail : `nats unreachable: ${message(error)}`,
      };
    }
  }

  /**
   * What the stream's storage can lose, for the operator's log at start; undefined with file
   * storage (a crash of nats-server loses nothing; see the operations docs for a machine's crash).
   */
  async persistenceWarning(): Promise<string | undefined> {
    const { config } = await this.state(await this.ready());
    if (config.storage !== StorageType.Memory) return undefined;
    return (
      `the JetStream stream ${this.stream} is kept in memory: a restart of its nats-server` +
      `${config.num_replicas > 1 ? 's (all replicas)' : ''} loses the whole event history and the events not yet delivered. ` +
      'Herald notices the lost log and tells resuming clients with herald.gap "reset", but those events are gone. ' +
      'To lose nothing, use file storage'
    );
  }

  /** To every node on this NATS and stream, this one included, on the broker's connection (bus.ts). */
  broadcast(message: string): Promise<void> {
    return this.bus.broadcast(message);
  }

  listen(listener: (message: string) => void): () => void {
    return this.bus.listen(listener);
  }

  acquire(key: string, node: string, limit: number, live: readonly string[]): Promise<boolean> {
    return this.counters.acquire(key, node, limit, live);
  }

  release(key: string, node: string): Promise<void> {
    return this.counters.release(key, node);
  }

  /** A window by the nodes' clocks, which NATS does not offer (counters.ts). */
  consume(key: string, amount: number, windowMs: number): Promise<WindowCount> {
    return this.counters.consume(key, amount, windowMs);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.bus.close();
    this.tailer.stop();
    const link = await this.opening?.catch(() => undefined);
    if (link === undefined) return;
    await this.tailer.unfollow(link);
    // Drain flushes what is still to be sent; a connection that is down cannot drain, so bounded.
    await withTimeout(link.nc.drain(), 2000, 'drain').catch(() => link.nc.close());
  }

  // ---- connection

  private ready(): Promise<Link> {
    if (this.closed)
      return Promise.reject(new HeraldError(503, 'broker-unavailable', 'the nats broker is closed'));
    this.opening ??= this.open().catch((error: unknown) => {
      this.opening = undefined;
      throw unavailable(error);
    });
    return this.opening;
  }

  private async open(): Promise<Link> {
    const nc = await natsConnection({
      servers: this.servers,
      name: `herald ${this.stream}`,
      connectTimeoutMs: CONNECT_TIMEOUT_MS,
    });
    try {
      const jsm = await jetstreamManager(nc, { timeout: API_TIMEOUT_MS });
      const info = await this.log.ensureStream(jsm);
      const js = jsm.jetstream();
      const ids = await this.log.openBucket(jsm, js);
      const link: Link = { nc, jsm, js, ids };
      this.learn(info);
      if (this.closed) throw new Error('closed while connecting');
      this.link = link;
      this.connected = true;
      this.watch(link);
      return link;
    } catch (error) {
      await nc.close().catch(() => {});
      throw error;
    }
  }

  /**
   * The stream's info, the log made anew when it is gone; learns its epoch (which moves the feed
   * to a new one).
   */
  private async state(link: Link): Promise<StreamInfo> {
    let info: StreamInfo;
    try {
      info = await this.info(link);
    } catch (error) {
      if (!isApiError(error, 10059)) throw error;
      info = await this.recover(link);
    }
    if (this.log.initializing(info)) info = await this.recover(link);
    this.learn(info);
    return info;
  }

  /** Makes the log (and its bucket) anew after it was lost; one at a time. */
  private recover(link: Link): Promise<StreamInfo> {
    this.recovering ??= (async () => {
      const info = await this.log.ensureStream(link.jsm);
      if (epochOf(info).id !== this.epoch?.id) {
        link.ids = await this.log.openBucket(link.jsm, link.js);
        link.latest = undefined;
      }
      this.learn(info);
      return info;
    })().finally(() => {
      this.recovering = undefined;
    });
    return this.recovering;
  }

  /** Takes in the stream's epoch and how far it goes; a new epoch restarts a running feed on it. */
  private learn(info: StreamInfo): void {
    const epoch = epochOf(info);
    if (epoch.id !== this.epoch?.id) {
      this.epoch = epoch;
      this.seen = epoch.start;
      this.tailer.epochLearned(epoch);
    }
    this.saw(info.state.last_seq);
  }

  private saw(seq: number): void {
    if (Number.isSafeInteger(seq) && seq > this.seen) this.seen = seq;
  }

  /** Follows the connection's ups and downs. */
  private watch(link: Link): void {
    (async () => {
      for await (const status of link.nc.status()) {
        if (status.type === 'disconnect') {
          this.connected = false;
          if (!this.closed)
            this.onError(new Error(`lost the connection to ${status.server}`), 'nats connection');
        } else if (status.type === 'reconnect') {
          this.connected = true;
          // The server may have restarted without its store, or from an older one.
          this.tailer.checkSoon();
        } else if (status.type === 'error') {
          this.onError(status.error, 'nats connection');
        }
      }
    })().catch((error: unknown) => this.onError(error, 'nats connection status'));
    link.nc.closed().then((error) => {
      this.connected = false;
      if (this.closed) return;
      // Only a fatal error (say, revoked credentials) ends a connection that retries forever.
      this.onError(error ?? new Error('connection closed'), 'nats connection');
      if (this.link === link) {
        this.link = undefined;
        this.opening = undefined;
      }
      this.tailer.connectionClosed();
    });
  }

  private checkConnected(link: Link): void {
    // Publishing while the client reconnects would only queue the message: it would wait for the
    // timeout, answer 503, and still be sent (and stored) once the connection is back.
    if (!this.connected || link.nc.isClosed()) {
      throw new HeraldError(
        503,
        'broker-unavailable',
        `nats unreachable: connection to ${this.where()} lost, reconnecting; retry shortly`,
      );
    }
  }

  private info(link: Link): Promise<StreamInfo> {
    return link.jsm.streams.info(this.stream);
  }

  private where(): string {
    return Array.isArray(this.servers) ? this.servers.join(', ') : this.servers;
  }

  private decode(message: { readonly seq: number; string(): string }): HeraldEvent | undefined {
    try {
      return decodeEvent(message.string(), String(message.seq));
    } catch (error) {
      // Something other than Herald published on the log's subject.
      this.onError(error, `undecodable message ${message.seq} in stream ${this.stream}`);
      return undefined;
    }
  }

  private idOf(message: StoredMsg | null): string | undefined {
    if (message === null) return undefined;
    return this.decode(message)?.id ?? String(message.seq);
  }
}
