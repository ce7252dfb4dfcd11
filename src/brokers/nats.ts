import {
  AckPolicy,
  type Consumer,
  type ConsumerMessages,
  DeliverPolicy,
  DiscardPolicy,
  JetStreamApiError,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
  type StoredMsg,
  type StreamConfig,
  type StreamInfo,
} from '@nats-io/jetstream';
import { type KV, Kvm } from '@nats-io/kv';
import { connect, type NatsConnection, nanos, nuid } from '@nats-io/transport-node';
import { HeraldError } from '../core/errors.ts';
import type { EventDraft, HeraldEvent } from '../core/event.ts';
import type { Broker, BrokerHealth, HistoryStats, Location } from './broker.ts';
import { decodeEvent, encodeDraft, toEvent } from './codec.ts';
import { DEFAULT_HISTORY_MAX_AGE_MS, DEFAULT_HISTORY_SIZE } from './memory.ts';
import { withTimeout } from './with-timeout.ts';

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

/** What `open()` sets up once: the connection and the JetStream handles that live on it. */
interface Link {
  readonly nc: NatsConnection;
  readonly jsm: JetStreamManager;
  readonly js: JetStreamClient;
  readonly ids: KV;
}

/**
 * The log on NATS JetStream. One stream is the log: positions and ids are stream sequence numbers
 * (`"42"`), retention is the stream's MaxMsgs and MaxAge, and every node follows the stream with an
 * ordered consumer. Publisher-chosen ids live in a KV bucket, id → sequence, with the same MaxAge.
 *
 * Subjects: every event goes to one subject, `<stream>.events` (e.g. `herald.events`), because the
 * hub wants the whole log, in one order, on every node. Sharding by tenant would publish to
 * `herald.events.<tenant-token>` (the tenant base64url-encoded, as subject tokens cannot hold any
 * character) with the stream bound to `herald.events.>`: a node or a bridge could then follow one
 * tenant with `filter_subjects`, and tenants could be split over several streams, each its own log
 * with its own sequence, at the price of ids that name their stream. One subject is enough today.
 */
export class NatsBroker implements Broker {
  readonly kind = 'nats';
  private readonly servers: string | string[];
  private readonly stream: string;
  private readonly subject: string;
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
  /** The last sequence fed: the feed resumes after it, and never feeds it or anything before again. */
  private fedSeq = 0;
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
    this.bucket = `${this.stream}_IDS`;
    this.maxEvents = positive(options.maxEvents ?? DEFAULT_HISTORY_SIZE, 'history size');
    this.maxAgeMs = positive(options.maxAgeMs ?? DEFAULT_HISTORY_MAX_AGE_MS, 'history max age');
    this.onError = options.onError ?? (() => {});
  }

  async start(feed: (events: readonly HeraldEvent[]) => void): Promise<string> {
    const link = await this.ready();
    try {
      const head = (await this.info(link)).state.last_seq;
      this.feed = feed;
      this.fedSeq = head;
      await this.follow(link);
      return String(head);
    } catch (error) {
      this.feed = undefined;
      throw unavailable(error);
    }
  }

  async append(drafts: readonly EventDraft[]): Promise<HeraldEvent[]> {
    if (drafts.length === 0) return [];
    const seen = new Set<string>();
    for (const draft of drafts) {
      if (draft.id === undefined) continue;
      checkChosenId(draft.id);
      if (draft.reuseId === true) continue;
      if (seen.has(draft.id)) throw duplicate(draft.id);
      seen.add(draft.id);
    }
    const bodies = drafts.map(encodeDraft);
    const link = await this.ready();
    this.checkConnected(link);
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
        claims.set(i, await this.claim(link, draft.id));
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
      reused = reused.then(() =>
        link.ids.put(keyOf(id), String(ack.value.seq)).then(
          () => {},
          (error: unknown) => this.onError(error, `recording the sequence of id "${id}"`),
        ),
      );
    });
    await Promise.all([...recorded, reused, this.release(link, released)]);

    const failed = acks.findIndex((ack) => ack.status === 'rejected');
    if (failed !== -1) {
      const stored = acks.filter((ack) => ack.status === 'fulfilled').length;
      const reason = (acks[failed] as PromiseRejectedResult).reason;
      // Without atomic batches (nats-server 2.12), what was acknowledged stays in the log.
      const partial = stored > 0 ? ` (${stored} of the ${drafts.length} events were stored)` : '';
      throw unavailable(reason, partial);
    }
    return drafts.map((draft, i) =>
      toEvent(draft, String((acks[i] as PromiseFulfilledResult<{ seq: number }>).value.seq)),
    );
  }

  async locate(id: string): Promise<Location> {
    try {
      const link = await this.ready();
      if (POSITION.test(id)) return where(Number(id), (await this.info(link)).state);
      if (id === '' || Buffer.byteLength(id) > MAX_ID_BYTES) return { kind: 'unknown' };
      const [entry, info] = await Promise.all([link.ids.get(keyOf(id)), this.info(link)]);
      if (entry === null || entry.operation !== 'PUT') return { kind: 'unknown' };
      const seq = sequence(entry.string());
      // Pending: its append is in flight, or failed between publishing and recording.
      if (seq === undefined) return { kind: 'unknown' };
      return where(seq, info.state);
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

  async health(): Promise<BrokerHealth> {
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

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.feed = undefined;
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
      await this.ensureStream(jsm);
      const js = jsm.jetstream();
      const ids = await new Kvm(js).create(this.bucket, {
        history: 1,
        ttl: this.maxAgeMs,
        storage: StorageType.File,
      });
      await this.ensureBucketAge(jsm);
      const link: Link = { nc, jsm, js, ids };
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

  /** Creates the stream, or brings an existing one to this node's limits. */
  private async ensureStream(jsm: JetStreamManager): Promise<void> {
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
      try {
        await jsm.streams.add({ name: this.stream, storage: StorageType.File, ...wanted });
        return;
      } catch (addError) {
        // Another node created it meanwhile, with other limits: update it as below.
        info = await jsm.streams.info(this.stream).catch(() => {
          throw addError;
        });
      }
    }
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
    if (!same) await jsm.streams.update(this.stream, wanted);
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
    const consumer = await link.js.consumers.get(this.stream, {
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: this.fedSeq + 1,
    });
    const messages = await consumer.consume({
      max_messages: FEED_BATCH,
      expires: FEED_EXPIRES_MS,
      // A consumer that was replaced may still hand over what it had in hand: ignore it.
      callback: (message) => {
        if (this.feedToken === token) this.receive(message);
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
    this.observe(messages, consumer);
    messages.closed().then((error) => {
      if (this.messages !== messages || this.closed) return;
      this.messages = undefined;
      this.consumer = undefined;
      this.feedToken = undefined;
      this.onError(error ?? new Error('the consumer stopped'), 'nats feed');
      this.scheduleRestart();
    });
  }

  private observe(messages: ConsumerMessages, consumer: Consumer): void {
    (async () => {
      for await (const note of messages.status()) {
        if (note.type === 'ordered_consumer_recreated') {
          if (this.messages !== messages || this.closed) return;
          this.messages = undefined;
          this.consumer = undefined;
          this.feedToken = undefined;
          messages.stop();
          // The recreated consumer is the client's; the next one is ours, from what was fed.
          consumer.delete().catch(() => {});
          this.restartDelayMs = 0;
          this.scheduleRestart();
          return;
        }
        if (note.type === 'stream_not_found') {
          this.onError(new Error(`stream ${this.stream} not found`), 'nats feed');
        }
      }
    })().catch((error: unknown) => this.onError(error, 'nats feed status'));
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

  private receive(message: JsMsg): void {
    const seq = message.seq;
    // Whatever the consumer does after a reconnect, a sequence is fed once.
    if (seq <= this.fedSeq || this.feed === undefined) return;
    this.fedSeq = seq;
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
  private async claim(link: Link, id: string): Promise<Claim> {
    const key = keyOf(id);
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
function where(seq: number, state: { readonly first_seq: number; readonly last_seq: number }): Location {
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

/** KV keys are subject tokens: `[-/_=.a-zA-Z0-9]`. Base64url keeps any id within them. */
function keyOf(id: string): string {
  return `i${Buffer.from(id).toString('base64url')}`;
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
