import { createHash } from 'node:crypto';
import type {
  Consumer,
  ConsumerMessages,
  JetStreamClient,
  JetStreamManager,
  JsMsg,
  StoredMsg,
  StreamConfig,
  StreamInfo,
} from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { HeraldError } from '../core/errors.ts';
import type { EventDraft, HeraldEvent } from '../core/event.ts';
import type { Broker, HistoryStats, Location, LogHealth, PersistenceReporting } from '../core/log.ts';
import { chosenIdKey, decodeEvent, encodeDraft, toEvent } from './codec.ts';
import { DEFAULT_HISTORY_MAX_AGE_MS, DEFAULT_HISTORY_SIZE } from './memory.ts';
import { withTimeout } from './with-timeout.ts';

// The client is an optional peer dependency, loaded at run time by Node from the app's
// node_modules: the comments keep app bundlers (Next.js) from resolving it at build time, where
// an app on the memory broker does not have it.
const {
  AckPolicy,
  DeliverPolicy,
  DiscardPolicy,
  JetStreamApiError,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
} = await import(/* webpackIgnore: true */ /* turbopackIgnore: true */ '@nats-io/jetstream');
const { Kvm } = await import(/* webpackIgnore: true */ /* turbopackIgnore: true */ '@nats-io/kv');
const { connect, nanos, nuid } = await import(
  /* webpackIgnore: true */ /* turbopackIgnore: true */ '@nats-io/transport-node'
);

export interface NatsBrokerOptions {
  /** `nats://host:port`, or several for a cluster. */
  readonly servers: string | string[];
  /**
   * The JetStream stream that is the log. Default `HERALD`. Its subject is
   * `<stream in lower case>.events`; the bucket of publisher-chosen ids is `<stream>_IDS`.
   */
  readonly stream?: string;
  /** Events kept for replay (the stream's MaxMsgs). Default 10 000. */
  readonly maxEvents?: number;
  /** How long an event is kept for replay, in ms (the stream's MaxAge). Default 24 h. */
  readonly maxAgeMs?: number;
  /** Problems that no caller is waiting for: a lost connection, a feed that had to restart. */
  readonly onError?: (error: unknown, context: string) => void;
}

/** How long an append waits for JetStream's acknowledgement before answering 503. */
const PUBLISH_TIMEOUT_MS = 2000;
/** JetStream API requests (stream info, consumer create, KV). */
const API_TIMEOUT_MS = 2000;
const CONNECT_TIMEOUT_MS = 2000;
const HEALTH_TIMEOUT_MS = 1000;
/** Pull size of the live feed; the pull is renewed at 3/4 consumed. */
const FEED_BATCH = 512;
/**
 * How long one pull of the live feed lasts. Besides heartbeats (half of it), it bounds how long the
 * client's ordered consumer waits between two checks of its server-side consumer after a failed one.
 */
const FEED_EXPIRES_MS = 5000;
const MAX_RESTART_DELAY_MS = 5000;
/** A position: a stream sequence in canonical decimal, "0" being the head of a log never written. */
const POSITION = /^(?:0|[1-9][0-9]{0,15})$/;
/** Publisher-chosen ids longer than this (in UTF-8 bytes) cannot have been issued. */
const MAX_ID_BYTES = 1024;
/** What a claimed id maps to until its event has a sequence. */
const PENDING = '';
/** KV keys longer than this (a long tenant and a long id) are hashed: a subject has a length limit. */
const MAX_KEY_CHARS = 1024;
/** Where a log's description says which sequence its epoch starts after (see `createStream`). */
const EPOCH_START = /epoch starts after sequence (\d{1,16})/;
/** How long a node that knew the log waits, once it is gone, before making it anew (see `createStream`). */
const RECREATE_DELAY_MS = 1000;
/** How long a node waits for another to finish making the log before it finishes it itself. */
const TAKEOVER_MS = 3000;

/**
 * Which incarnation of the log: the stream's creation time (a stream deleted and made again, or
 * lost with a server's store, is another one), and the sequence every message of it comes after.
 */
interface Epoch {
  readonly id: string;
  readonly start: number;
}

/** What `open()` sets up once: the connection and the JetStream handles that live on it. */
interface Link {
  readonly nc: NatsConnection;
  readonly jsm: JetStreamManager;
  readonly js: JetStreamClient;
  /** Opened again when the log is made anew: a wiped server lost the bucket with it. */
  ids: KV;
}

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
 */
export class NatsBroker implements Broker, PersistenceReporting {
  readonly kind = 'nats';
  private readonly servers: string | string[];
  private readonly stream: string;
  private readonly subject: string;
  /** The subject of a log being made: nothing is published to it, so nothing lands before its start. */
  private readonly initSubject: string;
  private readonly bucket: string;
  private readonly maxEvents: number;
  private readonly maxAgeMs: number;
  private readonly onError: (error: unknown, context: string) => void;

  private opening: Promise<Link> | undefined;
  private link: Link | undefined;
  /** Whether the socket is up now: appends fail fast while the client reconnects. */
  private connected = false;
  private closed = false;

  private feed: ((events: readonly HeraldEvent[]) => void) | undefined;
  private onReset: ((from: string) => void) | undefined;
  /** The last sequence fed: the feed resumes after it, and never feeds it or anything before again. */
  private fedSeq = 0;
  /** The newest epoch learned from the stream. */
  private epoch: Epoch | undefined;
  /** The furthest sequence known in `epoch`: a new log starts past it. */
  private seen = 0;
  /** The epoch the feed follows; it moves to `epoch` when the feed restarts. */
  private feedEpoch: Epoch | undefined;
  /** Messages received while the feed checks the stream (one was not the next sequence). */
  private held: JsMsg[] | undefined;
  /** One making-anew of the log at a time. */
  private recovering: Promise<StreamInfo> | undefined;
  /** Events received in the current tick, fed together at its end. */
  private batch: HeraldEvent[] = [];
  private flushQueued = false;
  private consumer: Consumer | undefined;
  private messages: ConsumerMessages | undefined;
  /** Which `follow()` may feed: messages from a consumer that was replaced are ignored. */
  private feedToken: symbol | undefined;
  private restartTimer: ReturnType<typeof setTimeout> | undefined;
  private restartDelayMs = 250;

  constructor(options: NatsBrokerOptions) {
    this.servers = options.servers;
    this.stream = options.stream ?? 'HERALD';
    if (!/^[A-Za-z0-9_-]{1,200}$/.test(this.stream)) {
      throw new RangeError(`stream name "${this.stream}" may only hold letters, digits, "_" and "-"`);
    }
    this.subject = `${this.stream.toLowerCase()}.events`;
    this.initSubject = `${this.stream.toLowerCase()}.initializing`;
    this.bucket = `${this.stream}_IDS`;
    this.maxEvents = positive(options.maxEvents ?? DEFAULT_HISTORY_SIZE, 'history size');
    this.maxAgeMs = positive(options.maxAgeMs ?? DEFAULT_HISTORY_MAX_AGE_MS, 'history max age');
    this.onError = options.onError ?? (() => {});
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
      this.feed = feed;
      this.onReset = onReset;
      this.fedSeq = head;
      this.feedEpoch = this.epoch;
      await this.follow(link);
      return String(head);
    } catch (error) {
      this.feed = undefined;
      this.onReset = undefined;
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
      return await this.appendOnce(link, drafts, bodies);
    } catch (error) {
      if (!(error instanceof LogMissing)) throw error;
      // Nothing was stored: the log is gone (deleted, or lost with the server's store). Make it
      // anew and try once more.
      await this.recover(link);
      try {
        return await this.appendOnce(link, drafts, bodies);
      } catch (again) {
        throw again instanceof LogMissing ? unavailable(again.cause) : again;
      }
    }
  }

  private async appendOnce(
    link: Link,
    drafts: readonly EventDraft[],
    bodies: readonly string[],
  ): Promise<HeraldEvent[]> {
    const maxPayload = link.nc.info?.max_payload;
    if (maxPayload !== undefined) {
      for (const body of bodies) {
        const bytes = Buffer.byteLength(body);
        if (bytes > maxPayload) {
          throw new HeraldError(
            413,
            'data-too-large',
            `the event takes ${bytes} bytes stored; the NATS server accepts at most ${maxPayload} (max_payload)`,
          );
        }
      }
    }

    // 1. Claim the chosen ids, so that a duplicate is refused before anything is in the log.
    const claims = new Map<number, Claim>();
    const claimed = await Promise.allSettled(
      drafts.map(async (draft, i) => {
        if (draft.id === undefined || draft.reuseId === true) return;
        claims.set(i, await this.claim(link, draft.tenant, draft.id));
      }),
    );
    const refused = claimed.find((result) => result.status === 'rejected');
    if (refused !== undefined) {
      await this.release(link, [...claims.values()]);
      throw unavailable(refused.reason);
    }

    // 2. Publish, pipelined: one connection delivers them in order, so the sequences follow the drafts.
    const acks = await Promise.allSettled(
      bodies.map((body) => link.js.publish(this.subject, body, { timeout: PUBLISH_TIMEOUT_MS })),
    );

    // 3. Point each claimed id at its sequence; give back the claims of what was not stored.
    const recorded: Promise<unknown>[] = [];
    const released: Claim[] = [];
    for (const [i, claim] of claims) {
      const ack = acks[i] as PromiseSettledResult<{ seq: number }>;
      if (ack.status === 'fulfilled') {
        recorded.push(
          link.ids.update(claim.key, String(ack.value.seq), claim.revision).catch((error: unknown) => {
            // The event is in the log and will be delivered; only resuming after its id will fail.
            this.onError(error, `recording the sequence of id "${claim.id}"`);
          }),
        );
      } else released.push(claim);
    }
    // A reusable id is pointed at its newest event, in log order (a batch may repeat it).
    let reused = Promise.resolve();
    drafts.forEach((draft, i) => {
      const ack = acks[i] as PromiseSettledResult<{ seq: number }>;
      if (draft.id === undefined || draft.reuseId !== true || ack.status !== 'fulfilled') return;
      const id = draft.id;
      const key = keyOf(draft.tenant, id);
      reused = reused.then(() =>
        link.ids.put(key, String(ack.value.seq)).then(
          () => {},
          (error: unknown) => this.onError(error, `recording the sequence of id "${id}"`),
        ),
      );
    });
    await Promise.all([...recorded, reused, this.release(link, released)]);

    const failed = acks.findIndex((ack) => ack.status === 'rejected');
    if (failed !== -1 && acks.every((ack) => ack.status === 'rejected' && isNoLog(ack.reason))) {
      throw new LogMissing((acks[failed] as PromiseRejectedResult).reason);
    }
    if (failed !== -1) {
      const stored = acks.filter((ack) => ack.status === 'fulfilled').length;
      const reason = (acks[failed] as PromiseRejectedResult).reason;
      // Without atomic batches (nats-server 2.12), what was acknowledged stays in the log.
      const partial = stored > 0 ? ` (${stored} of the ${drafts.length} events were stored)` : '';
      throw unavailable(reason, partial);
    }
    const events = drafts.map((draft, i) =>
      toEvent(draft, String((acks[i] as PromiseFulfilledResult<{ seq: number }>).value.seq)),
    );
    this.saw(Number(events[events.length - 1]?.pos));
    return events;
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
      // One short-lived consumer per page: three round trips whatever the page size (a page of 500
      // takes a few ms), where direct gets would cost one each (batched direct get is nats-server 2.11).
      const info = await link.jsm.consumers.add(this.stream, {
        name: `herald_read_${nuid.next()}`,
        deliver_policy: DeliverPolicy.StartSequence,
        opt_start_seq: from,
        ack_policy: AckPolicy.None,
        mem_storage: true,
        num_replicas: 1,
        inactive_threshold: nanos(30_000),
      });
      try {
        // num_pending counts what the consumer has from `from` on: fetching no more than exists
        // means the fetch never sits waiting for messages that will not come.
        const wanted = Math.min(limit, to - from + 1, info.num_pending);
        if (wanted <= 0) return [];
        const messages = await link.js.consumers
          .getConsumerFromInfo(info)
          .fetch({ max_messages: wanted, expires: API_TIMEOUT_MS });
        const events: HeraldEvent[] = [];
        try {
          for await (const message of messages) {
            // Past `to` only when messages in the range were deleted: the range is exhausted.
            if (message.seq > to) break;
            const event = this.decode(message);
            if (event !== undefined) events.push(event);
            if (events.length >= limit || message.seq === to || message.info.pending === 0) break;
          }
        } finally {
          messages.stop();
        }
        return events;
      } finally {
        link.jsm.consumers.delete(this.stream, info.name).catch(() => {});
      }
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

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.feed = undefined;
    this.onReset = undefined;
    clearTimeout(this.restartTimer);
    const link = await this.opening?.catch(() => undefined);
    if (link === undefined) return;
    await this.unfollow(link);
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
    const nc = await connect({
      servers: this.servers,
      name: `herald ${this.stream}`,
      timeout: CONNECT_TIMEOUT_MS,
      // Once connected, never give up: a node outlives its NATS server's restarts.
      reconnect: true,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 500,
      reconnectJitter: 250,
      // A dead peer that never closes the socket is noticed within ~15 s.
      pingInterval: 5000,
      maxPingOut: 3,
    });
    try {
      const jsm = await jetstreamManager(nc, { timeout: API_TIMEOUT_MS });
      const info = await this.ensureStream(jsm);
      const js = jsm.jetstream();
      const ids = await this.openBucket(jsm, js);
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

  /** The bucket of chosen ids, made when missing, its TTL following `maxAgeMs`. */
  private async openBucket(jsm: JetStreamManager, js: JetStreamClient): Promise<KV> {
    const ids = await new Kvm(js).create(this.bucket, {
      history: 1,
      ttl: this.maxAgeMs,
      storage: StorageType.File,
    });
    await this.ensureBucketAge(jsm);
    return ids;
  }

  /** Creates the stream, or brings an existing one to this node's limits. */
  private async ensureStream(jsm: JetStreamManager): Promise<StreamInfo> {
    const wanted = {
      subjects: [this.subject],
      retention: RetentionPolicy.Limits,
      discard: DiscardPolicy.Old,
      max_msgs: this.maxEvents,
      max_age: nanos(this.maxAgeMs),
      // Must not exceed MaxAge; Herald does not use Nats-Msg-Id, so the window only costs memory.
      duplicate_window: nanos(Math.min(this.maxAgeMs, 120_000)),
      // Direct get serves `history()` from any replica without the stream leader's API round trip.
      allow_direct: true,
    } satisfies Partial<StreamConfig>;
    let info: StreamInfo;
    try {
      info = await jsm.streams.info(this.stream);
    } catch (error) {
      if (!isApiError(error, 10059)) throw error;
      info = await this.createStream(jsm, wanted);
    }
    if (this.initializing(info)) info = await this.awaitStream(jsm, info);
    const config = info.config;
    const same =
      config.subjects?.length === 1 &&
      config.subjects[0] === this.subject &&
      config.retention === wanted.retention &&
      config.discard === wanted.discard &&
      config.max_msgs === wanted.max_msgs &&
      config.max_age === wanted.max_age &&
      config.duplicate_window === wanted.duplicate_window &&
      config.allow_direct === true;
    return same ? info : await jsm.streams.update(this.stream, wanted);
  }

  /**
   * Makes the log, its sequences starting past anything an old log of this name can have held:
   * past what this node saw, and past the clock in microseconds (a log outruns it only at a
   * million events a second). JetStream sets a first sequence only by purging (`first_seq` is
   * nats-server 2.10), so the stream is made on a subject nobody publishes to, with its start in
   * the description, and its maker then sets the sequence and the subject (`finishStream`).
   * Other nodes wait for that (`awaitStream`).
   */
  private async createStream(jsm: JetStreamManager, wanted: Partial<StreamConfig>): Promise<StreamInfo> {
    if (this.epoch !== undefined) {
      // nats-server (2.9) removes a deleted stream's files after it has answered: a stream of the
      // same name made at once can find its store removed under it, and never deliver a message.
      await new Promise((resolve) => setTimeout(resolve, RECREATE_DELAY_MS));
      try {
        return await jsm.streams.info(this.stream); // another node made it meanwhile
      } catch (error) {
        if (!isApiError(error, 10059)) throw error;
      }
    }
    const start = Math.max(this.seen, Date.now() * 1000);
    // Unique to this attempt: an add succeeds again for an identical config, and only one maker may finish.
    const description = `Herald event log; epoch starts after sequence ${start} (made by ${nuid.next()})`;
    let info: StreamInfo;
    try {
      info = await jsm.streams.add({
        name: this.stream,
        storage: StorageType.File,
        ...wanted,
        subjects: [this.initSubject],
        description,
      });
    } catch (error) {
      // Another node made it meanwhile: its maker finishes it.
      return await jsm.streams.info(this.stream).catch(() => {
        throw error;
      });
    }
    return info.config.description === description ? await this.finishStream(jsm) : info;
  }

  /**
   * Sets a half-made log's first sequence, then its subject. Only while it is half made: once it
   * takes events, no purge has any business with it.
   */
  private async finishStream(jsm: JetStreamManager): Promise<StreamInfo> {
    const info = await jsm.streams.info(this.stream);
    if (!this.initializing(info)) return info;
    const start = epochOf(info).start;
    // Nothing can be in it below the start: purging up to it only moves the next sequence there.
    if (info.state.last_seq < start) await jsm.streams.purge(this.stream, { seq: start + 1 });
    return await jsm.streams.update(this.stream, { subjects: [this.subject] });
  }

  /** Waits for another node to finish the log it made; finishes it when that node seems gone. */
  private async awaitStream(jsm: JetStreamManager, info: StreamInfo): Promise<StreamInfo> {
    const deadline = Date.now() + TAKEOVER_MS;
    while (this.initializing(info) && Date.now() < deadline && !this.closed) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      info = await jsm.streams.info(this.stream);
    }
    return this.initializing(info) ? await this.finishStream(jsm) : info;
  }

  private initializing(info: StreamInfo): boolean {
    return info.config.subjects?.length === 1 && info.config.subjects[0] === this.initSubject;
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
    if (this.initializing(info)) info = await this.recover(link);
    this.learn(info);
    return info;
  }

  /** Makes the log (and its bucket) anew after it was lost; one at a time. */
  private recover(link: Link): Promise<StreamInfo> {
    this.recovering ??= (async () => {
      const info = await this.ensureStream(link.jsm);
      if (epochOf(info).id !== this.epoch?.id) link.ids = await this.openBucket(link.jsm, link.js);
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
      if (this.messages !== undefined && this.feedEpoch?.id !== epoch.id) this.restartFeed();
    }
    this.saw(info.state.last_seq);
  }

  private saw(seq: number): void {
    if (Number.isSafeInteger(seq) && seq > this.seen) this.seen = seq;
  }

  /**
   * Looks at the stream after a reconnection, or when the consumer lost it: a log made anew moves
   * the feed (see `learn`); one that went back (a server restarted on a store that had not yet
   * written the last messages) is reported, and the feed goes on from where it now ends.
   */
  private checkSoon(): void {
    // While the server is away there is nothing to ask; its return is checked (see `watch`).
    if (this.closed || this.feed === undefined || !this.connected) return;
    this.ready()
      .then(async (link) => {
        // What was fed before asking: the answer's last sequence is at least that, unless it went back.
        const fed = this.fedSeq;
        const info = await this.state(link);
        if (this.feedEpoch?.id !== this.epoch?.id || info.state.last_seq >= fed) return;
        this.onError(
          new Error(
            `the stream ${this.stream} went back from sequence ${fed} to ${info.state.last_seq}: ` +
              'the events after it that this node delivered are no longer in the log',
          ),
          'log went back',
        );
        this.fedSeq = info.state.last_seq;
        this.restartFeed();
      })
      .catch((error: unknown) => this.onError(error, 'checking the nats log'));
  }

  /** `Kvm.create` opens an existing bucket as it is: its TTL must follow `maxAgeMs` too. */
  private async ensureBucketAge(jsm: JetStreamManager): Promise<void> {
    const name = `KV_${this.bucket}`;
    const info = await jsm.streams.info(name);
    const max_age = nanos(this.maxAgeMs);
    const duplicate_window = nanos(Math.min(this.maxAgeMs, 120_000));
    if (info.config.max_age !== max_age || info.config.duplicate_window !== duplicate_window) {
      await jsm.streams.update(name, { max_age, duplicate_window });
    }
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
          this.checkSoon();
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
      if (this.feed !== undefined) this.scheduleRestart();
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

  // ---- the live feed

  /**
   * Follows the log after `fedSeq` with an ordered consumer, which the client recreates at the next
   * sequence whenever a delivery is out of order or the consumer went missing (a NATS restart, or
   * it expired while the node was cut off).
   *
   * Such a recreated consumer is replaced at once by a fresh one from `fedSeq`: @nats-io/jetstream
   * 3.4 keeps counting the pull of the consumer it replaced as outstanding, so it asks the new one
   * for only what that pull had left and then stalls until two heartbeats are missed (~7 s here).
   */
  private async follow(link: Link): Promise<void> {
    const token = Symbol('feed');
    this.feedToken = token;
    this.held = undefined;
    // The log may have been made anew since the feed last followed it.
    await this.state(link);
    if (this.closed || this.feedToken !== token) return;
    this.enterEpoch();
    const consumer = await link.js.consumers.get(this.stream, {
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: this.fedSeq + 1,
    });
    const messages = await consumer.consume({
      max_messages: FEED_BATCH,
      expires: FEED_EXPIRES_MS,
      // A consumer that was replaced may still hand over what it had in hand: ignore it.
      callback: (message) => {
        if (this.feedToken === token) this.receive(message, token);
      },
    });
    if (this.closed || this.feedToken !== token) {
      messages.stop();
      consumer.delete().catch(() => {});
      return;
    }
    this.consumer = consumer;
    this.messages = messages;
    this.restartDelayMs = 250;
    this.observe(messages);
    // A new epoch learned while the consumer was being made: follow it instead.
    if (this.epoch?.id !== this.feedEpoch?.id) this.restartFeed();
    messages.closed().then((error) => {
      if (this.messages !== messages || this.closed) return;
      this.messages = undefined;
      this.consumer = undefined;
      this.feedToken = undefined;
      this.onError(error ?? new Error('the consumer stopped'), 'nats feed');
      this.scheduleRestart();
    });
  }

  private observe(messages: ConsumerMessages): void {
    (async () => {
      for await (const note of messages.status()) {
        if (note.type === 'ordered_consumer_recreated') {
          if (this.messages !== messages || this.closed) return;
          // The recreated consumer is the client's; the next one is ours, from what was fed.
          this.restartFeed();
          return;
        }
        if (note.type === 'stream_not_found') {
          this.onError(new Error(`stream ${this.stream} not found`), 'nats feed');
          this.checkSoon();
        } else if (
          (note.type === 'consumer_deleted' || note.type === 'heartbeats_missed') &&
          this.messages === messages
        ) {
          // Deleted with its stream, perhaps: then the log is made anew now, not after the
          // client has given up on heartbeats and recreated the consumer.
          this.checkSoon();
        }
      }
    })().catch((error: unknown) => this.onError(error, 'nats feed status'));
  }

  /** Drops the consumer (and what it held) and follows again, at once, from what was fed. */
  private restartFeed(): void {
    const { messages, consumer } = this;
    this.messages = undefined;
    this.consumer = undefined;
    this.feedToken = undefined;
    this.held = undefined;
    messages?.stop();
    consumer?.delete().catch(() => {});
    this.restartDelayMs = 0;
    this.scheduleRestart();
  }

  /**
   * Moves the feed to the newest epoch, in feed order: what was received of the old log first,
   * then the report and `onReset`, then the new log from its start.
   */
  private enterEpoch(): void {
    const next = this.epoch;
    const left = this.feedEpoch;
    if (next === undefined || left === undefined || next.id === left.id) return;
    this.flush();
    this.feedEpoch = next;
    // A new stream holds nothing up to its start: follow it from there, whatever was fed before.
    this.fedSeq = next.start;
    this.onError(
      new Error(
        `the JetStream stream ${this.stream} was lost or replaced (deleted, or a server restarted without ` +
          `its store); it goes on as a new log after sequence ${next.start}. Events appended before that and ` +
          'not yet delivered by this node may be lost; clients resuming from before it are told with herald.gap "reset"',
      ),
      'log reset',
    );
    try {
      this.onReset?.(String(next.start));
    } catch (error) {
      this.onError(error, 'reset callback');
    }
  }

  private scheduleRestart(): void {
    if (this.closed || this.restartTimer !== undefined) return;
    const delay = this.restartDelayMs;
    this.restartDelayMs = Math.min(Math.max(this.restartDelayMs * 2, 250), MAX_RESTART_DELAY_MS);
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      if (this.closed || this.feed === undefined) return;
      this.ready()
        .then((link) => this.follow(link))
        .catch((error: unknown) => {
          this.onError(error, 'restarting the nats feed');
          this.scheduleRestart();
        });
    }, delay);
  }

  private async unfollow(link: Link): Promise<void> {
    const { messages, consumer } = this;
    this.messages = undefined;
    this.consumer = undefined;
    this.feedToken = undefined;
    if (messages === undefined) return;
    await withTimeout(messages.close(), 1000, 'consumer close').catch(() => {});
    // Ordered consumers are ephemeral (gone 5 minutes after their last pull); deleting is tidier.
    if (this.connected && !link.nc.isClosed()) {
      await withTimeout(consumer?.delete() ?? Promise.resolve(true), 500, 'consumer delete').catch(() => {});
    }
  }

  private receive(message: JsMsg, token: symbol): void {
    if (this.feed === undefined) return;
    if (this.held !== undefined) {
      this.held.push(message);
      return;
    }
    if (message.seq === this.fedSeq + 1) {
      this.accept(message);
      return;
    }
    // Not the next sequence: one fed already (the consumer after a reconnect), a gap (trimmed
    // while away, deleted), or a log made anew. Hold what comes until the stream says which.
    this.held = [message];
    this.verify(token).catch((error: unknown) => {
      if (this.feedToken !== token) return;
      this.onError(error, 'nats feed');
      this.restartFeed();
    });
  }

  private async verify(token: symbol): Promise<void> {
    await this.state(await this.ready());
    // A new epoch restarted the feed (see `learn`): what was held is dropped with the old consumer.
    if (this.feedToken !== token) return;
    if (this.epoch?.id !== this.feedEpoch?.id) {
      this.restartFeed();
      return;
    }
    const held = this.held ?? [];
    this.held = undefined;
    for (const message of held) {
      if (message.seq <= this.fedSeq) continue; // fed once, whatever the consumer does
      if (message.seq > this.fedSeq + 1) {
        this.onError(
          new Error(
            `the feed lost the events after ${this.fedSeq} up to ${message.seq - 1}: ` +
              'no longer in the stream when this node read it',
          ),
          'feed gap',
        );
      }
      this.accept(message);
    }
  }

  private accept(message: JsMsg): void {
    const seq = message.seq;
    this.fedSeq = seq;
    this.saw(seq);
    const event = this.decode(message);
    if (event === undefined) return;
    this.batch.push(event);
    if (!this.flushQueued) {
      this.flushQueued = true;
      // Messages that arrive in one socket read are handled in one task: feed them together.
      queueMicrotask(this.flush);
    }
  }

  private readonly flush = (): void => {
    this.flushQueued = false;
    const events = this.batch;
    this.batch = [];
    if (events.length === 0 || this.feed === undefined) return;
    try {
      this.feed(events);
    } catch (error) {
      this.onError(error, 'feeding events');
    }
  };

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

  // ---- publisher-chosen ids

  /** Takes `id` for a new event, or refuses it with 409 while an event with that id is retained. */
  private async claim(link: Link, tenant: string, id: string): Promise<Claim> {
    const key = keyOf(tenant, id);
    try {
      return { id, key, revision: await link.ids.create(key, PENDING) };
    } catch (error) {
      if (!isWrongLastSequence(error)) throw error;
    }
    // Taken. Free again if its event has left the log by count (age expires the key with it).
    const entry = await link.ids.get(key);
    const seq = entry?.operation === 'PUT' ? sequence(entry.string()) : undefined;
    if (entry === null || seq === undefined || seq >= (await this.info(link)).state.first_seq) {
      throw duplicate(id);
    }
    try {
      return { id, key, revision: await link.ids.update(key, PENDING, entry.revision) };
    } catch (error) {
      throw isWrongLastSequence(error) ? duplicate(id) : error;
    }
  }

  private async release(link: Link, claims: readonly Claim[]): Promise<void> {
    await Promise.all(
      claims.map((claim) =>
        link.ids.delete(claim.key, { previousSeq: claim.revision }).catch((error: unknown) => {
          // The id stays taken until the bucket's TTL: a retry with it is refused as a duplicate.
          this.onError(error, `releasing id "${claim.id}" after a failed append`);
        }),
      ),
    );
  }
}

interface Claim {
  readonly id: string;
  readonly key: string;
  /** The KV revision of the claim: later writes are conditional on it. */
  readonly revision: number;
}

/** Where a replay after `seq` stands: everything after it must still be in the stream. */
function where(seq: number, info: StreamInfo): Location {
  const { state } = info;
  // From a log that was lost or replaced: what followed it may be gone without trace.
  const start = epochOf(info).start;
  if (seq < start) return { kind: 'reset', from: String(start) };
  if (seq > state.last_seq) return { kind: 'unknown' };
  if (seq < state.first_seq - 1) return { kind: 'expired', from: String(state.first_seq - 1) };
  return { kind: 'found', pos: String(seq) };
}

function seqOf(pos: string): number {
  return POSITION.test(pos) ? Number(pos) : 0;
}

function sequence(value: string): number | undefined {
  return POSITION.test(value) && value !== '0' ? Number(value) : undefined;
}

/**
 * The KV key of a chosen id, in its tenant's namespace (`chosenIdKey`). KV keys are subject
 * tokens, `[-/_=.a-zA-Z0-9]`: base64url keeps any id within them; a long one is hashed.
 */
function keyOf(tenant: string, id: string): string {
  const key = Buffer.from(chosenIdKey(tenant, id)).toString('base64url');
  return key.length < MAX_KEY_CHARS ? `i${key}` : `h${createHash('sha256').update(key).digest('base64url')}`;
}

/** The epoch of the stream `info` describes. */
function epochOf(info: StreamInfo): Epoch {
  const start = EPOCH_START.exec(info.config.description ?? '')?.[1];
  return { id: info.created, start: start === undefined ? 0 : Number(start) };
}

/** Nothing listens on the log's subject: the stream is gone. */
function isNoLog(error: unknown): boolean {
  return error instanceof Error && error.name === 'JetStreamNotEnabled';
}

/** An append that stored nothing because the log is gone. */
class LogMissing extends Error {
  constructor(cause: unknown) {
    super('the log is gone', { cause });
  }
}

function checkChosenId(id: string): void {
  // A chosen id that reads as a sequence would make `locate` ambiguous.
  if (POSITION.test(id)) {
    throw new HeraldError(
      400,
      'invalid-id',
      `id "${id}" is a plain number, which on the NATS broker names a log position; choose another id`,
    );
  }
  if (id === '' || Buffer.byteLength(id) > MAX_ID_BYTES) {
    throw new HeraldError(400, 'invalid-id', `an id must hold 1 to ${MAX_ID_BYTES} bytes`);
  }
}

function duplicate(id: string): HeraldError {
  return new HeraldError(409, 'duplicate-id', `id "${id}" is already in the history; ids must be unique`);
}

/** Whatever went wrong talking to NATS, as the 503 callers expect; HeraldErrors pass through. */
function unavailable(error: unknown, suffix = ''): HeraldError {
  if (error instanceof HeraldError) return error;
  return new HeraldError(
    503,
    'broker-unavailable',
    `nats unreachable: ${message(error)}${suffix}; retry shortly`,
  );
}

function message(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause instanceof Error ? `: ${error.cause.message}` : '';
  return `${error.message}${cause}`;
}

function isApiError(error: unknown, code: number): boolean {
  return error instanceof JetStreamApiError && error.code === code;
}

/** A conditional write lost: the key exists (create) or moved on (update). */
function isWrongLastSequence(error: unknown): boolean {
  return isApiError(error, 10071) || isApiError(error, 10164);
}

function positive(value: number, what: string): number {
  if (!Number.isSafeInteger(value) || value <= 0) throw new RangeError(`${what} must be a positive integer`);
  return value;
}
