import { createHash } from 'node:crypto';
import type { JetStreamClient, JetStreamManager } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import type { EventDraft, HeraldEvent } from '../../core/event.ts';
import type { LatestEvents } from '../../core/log.ts';
import { decodeEvent } from '../codec.ts';
import { isWrongLastSequence } from './failures.ts';
import { AckPolicy, DeliverPolicy, DiscardPolicy, Kvm, nanos, nuid, StorageType } from './library.ts';
import type { Link } from './stream.ts';

/*
 * The latest value per (tenant, canonical topic, key) on NATS (see `LatestKeeping` in
 * core/log.ts): a KV bucket `<stream>_LATEST`, one key per slot, `history: 1`. Its stream is
 * bounded by `max_msgs = latestMaxKeys` with `discard: old`: with one message per key, JetStream
 * itself evicts the slot updated longest ago, across tenants.
 *
 * Not atomic with the append, unlike Redis and memory: the slot is written after the event's
 * acknowledgement, with compare-and-set so that a node's older event never overwrites another's
 * newer one (two nodes' writes can land out of log order). A failure between the two leaves the
 * slot stale (the event itself is in the log and delivered); it is reported through `onError`.
 */

/** Compare-and-set attempts per slot before giving up (each loss means another node wrote it). */
const MAX_TRIES = 5;
/** Tokens of a slot's KV key longer than this are hashed: subjects must stay well under 4 KiB. */
const MAX_TOKEN_BYTES = 200;
/** How long a read's fetch may wait, ms (it never waits for messages that do not exist). */
const FETCH_EXPIRES_MS = 2000;

/** A slot's value in the bucket: the event's sequence and its stored JSON (as in the log). */
interface SlotValue {
  readonly p: number;
  readonly e: string;
}

/** An event just stored in the log, whose slot is to be written. */
export interface Stored {
  readonly draft: EventDraft;
  readonly body: string;
  readonly seq: number;
}

export class LatestBucket {
  readonly bucket: string;
  private readonly maxKeys: number;
  private readonly onError: (error: unknown, context: string) => void;
  /**
   * Each slot's writes from this node, one after another: concurrent appends of one key would
   * otherwise all compete for the same compare-and-set and exhaust its tries.
   */
  private readonly queues = new Map<string, Promise<void>>();

  constructor(stream: string, maxKeys: number, onError: (error: unknown, context: string) => void) {
    this.bucket = `${stream}_LATEST`;
    this.maxKeys = maxKeys;
    this.onError = onError;
  }

  /** The link's bucket, opened (and made when missing) at its first use. */
  private bucketOf(link: Link): Promise<KV> {
    link.latest ??= this.open(link.jsm, link.js).catch((error: unknown) => {
      link.latest = undefined;
      throw error;
    });
    return link.latest;
  }

  /** The bucket, made when missing, its stream bounded by `maxKeys` with the oldest discarded. */
  private async open(jsm: JetStreamManager, js: JetStreamClient): Promise<KV> {
    const kv = await new Kvm(js).create(this.bucket, { history: 1, storage: StorageType.File });
    // KV buckets refuse new keys when full (discard new); here the oldest slot must go instead.
    const name = `KV_${this.bucket}`;
    const { config } = await jsm.streams.info(name);
    if (config.max_msgs !== this.maxKeys || config.discard !== DiscardPolicy.Old) {
      await jsm.streams.update(name, { max_msgs: this.maxKeys, discard: DiscardPolicy.Old });
    }
    return kv;
  }

  /**
   * Writes the slots of the keyed events just stored: the last of each slot in the batch, each
   * only if what the slot holds is older. Never throws: failures go to `onError`.
   */
  async keep(link: Link, stored: readonly Stored[]): Promise<void> {
    let kv: KV;
    try {
      kv = await this.bucketOf(link);
    } catch (error) {
      this.onError(error, `opening the bucket ${this.bucket} of latest values`);
      return;
    }
    const newest = new Map<string, Stored>();
    for (const item of stored) {
      if (item.draft.key === undefined) continue;
      newest.set(slotKey(item.draft.tenant, item.draft.topics[0] as string, item.draft.key), item);
    }
    await Promise.all([...newest].map(([key, item]) => this.queue(kv, key, item)));
  }

  private queue(kv: KV, key: string, item: Stored): Promise<void> {
    const queued = (this.queues.get(key) ?? Promise.resolve())
      .then(() => this.write(kv, key, item))
      .catch((error: unknown) => {
        this.onError(error, `keeping the latest value of key "${item.draft.key}" (sequence ${item.seq})`);
      })
      .finally(() => {
        if (this.queues.get(key) === queued) this.queues.delete(key);
      });
    this.queues.set(key, queued);
    return queued;
  }

  /** The tenant's slots, read by a short-lived consumer that gets the last message of each key. */
  async read(link: Link, tenant: string, limit: number): Promise<LatestEvents> {
    await this.bucketOf(link);
    const stream = `KV_${this.bucket}`;
    const prefix = `$KV.${this.bucket}.`;
    const info = await link.jsm.consumers.add(stream, {
      name: `herald_latest_${nuid.next()}`,
      deliver_policy: DeliverPolicy.LastPerSubject,
      filter_subject: `${prefix}${token(tenant)}.>`,
      ack_policy: AckPolicy.None,
      mem_storage: true,
      num_replicas: 1,
      inactive_threshold: nanos(30_000),
    });
    try {
      const events: HeraldEvent[] = [];
      const wanted = Math.min(limit, info.num_pending);
      if (wanted <= 0) return { events, complete: info.num_pending === 0 };
      const messages = await link.js.consumers
        .getConsumerFromInfo(info)
        .fetch({ max_messages: wanted, expires: FETCH_EXPIRES_MS });
      try {
        for await (const message of messages) {
          const event = this.decode(message.subject.slice(prefix.length), message.string());
          if (event?.tenant === tenant) events.push(event);
          if (events.length >= wanted || message.info.pending === 0) break;
        }
      } finally {
        messages.stop();
      }
      return { events, complete: info.num_pending <= limit };
    } finally {
      link.jsm.consumers.delete(stream, info.name).catch(() => {});
    }
  }

  private async write(kv: KV, key: string, item: Stored): Promise<void> {
    const value = JSON.stringify({ p: item.seq, e: item.body } satisfies SlotValue);
    for (let attempt = 1; ; attempt++) {
      const entry = await kv.get(key);
      const held = entry?.operation === 'PUT' ? (entry.json<SlotValue>().p ?? 0) : 0;
      if (held >= item.seq) return;
      try {
        if (entry === null) await kv.create(key, value);
        else await kv.update(key, value, entry.revision);
        return;
      } catch (error) {
        // Another node wrote the slot meanwhile: look again at what it holds.
        if (!isWrongLastSequence(error) || attempt >= MAX_TRIES) throw error;
      }
    }
  }

  /** The slot's event, when the value is one and it belongs to the slot its key names. */
  private decode(key: string, text: string): HeraldEvent | undefined {
    try {
      const { p, e } = JSON.parse(text) as SlotValue;
      const event = decodeEvent(e, String(p));
      // A hashed token could in theory name two slots: the event must be the key's own.
      if (event.key === undefined || slotKey(event.tenant, event.topics[0] as string, event.key) !== key) {
        return undefined;
      }
      return event;
    } catch (error) {
      this.onError(error, `undecodable latest value ${key} in bucket ${this.bucket}`);
      return undefined;
    }
  }
}

/** The KV key of a slot: a subject of three tokens, tenant, canonical topic and key. */
export function slotKey(tenant: string, topic: string, key: string): string {
  return `${token(tenant)}.${token(topic)}.${token(key)}`;
}

/**
 * Any string as one subject token, within the KV key alphabet `[-/_=.a-zA-Z0-9]`: `_` and its
 * base64url (so the empty tenant is `_`), or `=` and the base64url of its SHA-256 when long.
 */
export function token(text: string): string {
  const bytes = Buffer.from(text);
  return bytes.length <= MAX_TOKEN_BYTES
    ? `_${bytes.toString('base64url')}`
    : `=${createHash('sha256').update(bytes).digest('base64url')}`;
}
