import type { JetStreamClient, JetStreamManager, StreamConfig, StreamInfo } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { isApiError } from './failures.ts';
import { DiscardPolicy, Kvm, nanos, nuid, RetentionPolicy, StorageType } from './library.ts';

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
export interface Epoch {
  readonly id: string;
  readonly start: number;
}

/** What `open()` sets up once: the connection and the JetStream handles that live on it. */
export interface Link {
  readonly nc: NatsConnection;
  readonly jsm: JetStreamManager;
  readonly js: JetStreamClient;
  /** Opened again when the log is made anew: a wiped server lost the bucket with it. */
  ids: KV;
  /**
   * The bucket of latest values per key (latest.ts), opened at its first use, so that a log whose
   * events have no keys has none. Forgotten when the log is made anew, as `ids` is opened again.
   */
  latest?: Promise<KV> | undefined;
}

/** What the stream's setup needs to know of the node that makes it. */
export interface StreamNode {
  /** Whether this node knew a log of this name: it was lost, so one is made anew after a pause. */
  knewLog(): boolean;
  /** The furthest sequence this node saw: a log made anew starts past it. */
  seen(): number;
  closed(): boolean;
}

/**
 * The JetStream stream that is the log, and the KV bucket of its chosen ids: made when missing,
 * brought to this node's limits when they differ, and made anew (with sequences past anything
 * the old one held) when it was lost.
 */
export class LogStream {
  readonly stream: string;
  readonly subject: string;
  /** The subject of a log being made: nothing is published to it, so nothing lands before its start. */
  readonly initSubject: string;
  readonly bucket: string;
  private readonly maxEvents: number;
  private readonly maxAgeMs: number;
  private readonly node: StreamNode;

  constructor(stream: string, limits: { maxEvents: number; maxAgeMs: number }, node: StreamNode) {
    this.stream = stream;
    this.subject = `${stream.toLowerCase()}.events`;
    this.initSubject = `${stream.toLowerCase()}.initializing`;
    this.bucket = `${stream}_IDS`;
    this.maxEvents = limits.maxEvents;
    this.maxAgeMs = limits.maxAgeMs;
    this.node = node;
  }

  /** The bucket of chosen ids, made when missing, its TTL following `maxAgeMs`. */
  async openBucket(jsm: JetStreamManager, js: JetStreamClient): Promise<KV> {
    const ids = await new Kvm(js).create(this.bucket, {
      history: 1,
      ttl: this.maxAgeMs,
      storage: StorageType.File,
    });
    await this.ensureBucketAge(jsm);
    return ids;
  }

  /** Creates the stream, or brings an existing one to this node's limits. */
  async ensureStream(jsm: JetStreamManager): Promise<StreamInfo> {
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
    if (this.node.knewLog()) {
      // nats-server (2.9) removes a deleted stream's files after it has answered: a stream of the
      // same name made at once can find its store removed under it, and never deliver a message.
      await new Promise((resolve) => setTimeout(resolve, RECREATE_DELAY_MS));
      try {
        return await jsm.streams.info(this.stream); // another node made it meanwhile
      } catch (error) {
        if (!isApiError(error, 10059)) throw error;
      }
    }
    const start = Math.max(this.node.seen(), Date.now() * 1000);
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
    while (this.initializing(info) && Date.now() < deadline && !this.node.closed()) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      info = await jsm.streams.info(this.stream);
    }
    return this.initializing(info) ? await this.finishStream(jsm) : info;
  }

  initializing(info: StreamInfo): boolean {
    return info.config.subjects?.length === 1 && info.config.subjects[0] === this.initSubject;
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
}

/** The epoch of the stream `info` describes. */
export function epochOf(info: StreamInfo): Epoch {
  const start = EPOCH_START.exec(info.config.description ?? '')?.[1];
  return { id: info.created, start: start === undefined ? 0 : Number(start) };
}
