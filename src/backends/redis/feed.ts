import { HeraldError } from '../../core/errors.ts';
import type { HeraldEvent } from '../../core/event.ts';
import { BLOCK_MS, type RedisConnections } from './connections.ts';
import type { Epoch, Epochs } from './epochs.ts';
import { canonical, comparePositions, ORIGIN } from './positions.ts';
import { CHECK } from './scripts.ts';

/** Entries per `XREAD`: one feed batch. */
const FEED_BATCH = 1000;
/** Backoff cap of the feed after a failed read. */
const MAX_BACKOFF_MS = 1000;

export interface StreamEntry {
  readonly id: string;
  readonly message: Readonly<Record<string, string>>;
}

export interface FeedSettings {
  readonly connections: RedisConnections;
  readonly epochs: Epochs;
  /** The stream and its epoch record. */
  readonly logKey: string;
  readonly epochKey: string;
  /** The events of stream entries (what is not a Herald event is skipped and reported). */
  readonly decode: (entries: readonly StreamEntry[]) => HeraldEvent[];
  readonly onError: (error: unknown, context: string) => void;
}

/**
 * Each node's live feed of the Redis log: it tails the stream on its own connection, feeds each
 * entry once and in order, and follows the log across resets. Positions grow across epochs, so
 * the feed goes on after the last entry it fed; when it meets a new epoch (an entry of it, or a
 * check after a reconnection or a quiet second) it reports the reset once, calls `onReset` with
 * the new epoch's start, and follows the new log from that start: every node feeds the same
 * entries of it, none twice.
 */
export class RedisFeed {
  feed: ((events: readonly HeraldEvent[]) => void) | undefined;
  onReset: ((from: string) => void) | undefined;
  /** The last entry the feed passed on: it resumes after it, whatever happened meanwhile. */
  lastFed = ORIGIN;
  /** The tail loop, once started; it ends after `stop()`. */
  feeding: Promise<void> | undefined;
  private readonly connections: RedisConnections;
  private readonly epochs: Epochs;
  private readonly logKey: string;
  private readonly epochKey: string;
  private readonly decode: (entries: readonly StreamEntry[]) => HeraldEvent[];
  private readonly onError: (error: unknown, context: string) => void;
  /** The epoch the feed follows; it moves to the newest between two reads. */
  private feedEpoch: Epoch | undefined;
  /** Whether the feed looks at the epoch before its next read: after a reconnection, or a quiet read. */
  private checkBeforeRead = false;
  /** A position the feed was told to trust as it is (a check found nothing wrong there). */
  private trusted = '';
  private wake: (() => void) | undefined;

  constructor(settings: FeedSettings) {
    this.connections = settings.connections;
    this.epochs = settings.epochs;
    this.logKey = settings.logKey;
    this.epochKey = settings.epochKey;
    this.decode = settings.decode;
    this.onError = settings.onError;
    // Back after a lost connection: Redis may have restarted meanwhile, empty or from a snapshot.
    this.connections.feedReconnected = () => {
      this.checkBeforeRead = true;
    };
  }

  /** Starts tailing after `last`, in the newest epoch known. */
  begin(last: string): void {
    this.feedEpoch = this.epochs.current;
    this.lastFed = last;
    this.feeding = this.tail();
  }

  /** Stops passing events on, and cuts a backoff short; the loop ends at its next turn. */
  stop(): void {
    this.feed = undefined;
    this.onReset = undefined;
    this.wake?.();
  }

  /** Tails the stream: each batch fed once, in order; after a lost connection, resumes where it was. */
  private async tail(): Promise<void> {
    let failures = 0;
    while (!this.connections.closed) {
      try {
        if (!this.connections.blocking.isOpen) await this.connections.connectBlocking();
        if (this.checkBeforeRead) {
          this.checkBeforeRead = false;
          await this.check(false);
        }
        this.followEpoch();
        const reply = await this.connections.blocking.xRead(
          { key: this.logKey, id: this.lastFed },
          { BLOCK: BLOCK_MS, COUNT: FEED_BATCH },
        );
        failures = 0;
        if (this.connections.closed) return;
        const entries = reply?.[0]?.messages;
        if (entries === undefined || entries.length === 0) {
          // A quiet second: a log deleted or flushed meanwhile is noticed without waiting for an append.
          this.checkBeforeRead = true;
          continue;
        }
        const { count, proof } = this.sameLog(entries);
        if (count > 0) this.pass(entries.slice(0, count));
        if (count < entries.length && !this.connections.closed) {
          // An entry of an epoch this feed does not follow, or proof that the log went back:
          // learn (or make) the epoch; the next turn follows it.
          const before = this.epochs.current?.id;
          if (before === this.feedEpoch?.id) await this.check(proof);
          if (this.epochs.current?.id === before && before === this.feedEpoch?.id) {
            // Nothing to follow (a foreign epoch id, or a log put right meanwhile): take them as they are.
            const z = entries[count]?.message.z;
            if (z !== undefined && z !== before) this.epochs.retire(z);
            this.trusted = this.lastFed;
          }
        }
      } catch (error) {
        if (this.connections.closed) return;
        this.connections.report(error, 'feed');
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
      if (!ours && !this.epochs.retired.includes(z)) return { count: i, proof: false };
      if (i > 0 || !ours) continue;
      // Each entry names its predecessor: if that is not where this node stopped, what came in
      // between was trimmed before this node could read it (an outage longer than retention), or
      // the log went back.
      const previous = canonical(fields.p ?? '');
      if (previous === undefined) continue;
      if (comparePositions(previous, this.lastFed) < 0 && this.lastFed !== this.trusted)
        return { count: 0, proof: true };
      if (
        comparePositions(previous, this.lastFed) > 0 &&
        comparePositions(previous, this.feedEpoch?.start ?? ORIGIN) > 0
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
    if (comparePositions(this.lastFed, this.epochs.seen) > 0) this.epochs.seen = this.lastFed;
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
    const next = this.epochs.current;
    const left = this.feedEpoch;
    if (next === undefined || left === undefined || next.id === left.id) return;
    this.epochs.retire(left.id);
    this.feedEpoch = next;
    // Adopted (a log from before epochs, or one whose record was removed): the same log.
    if (next.start === ORIGIN) return;
    if (comparePositions(this.lastFed, next.start) > 0) this.lastFed = next.start;
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

  private async check(proof: boolean): Promise<void> {
    const reply = await this.connections.run(
      CHECK,
      [this.logKey, this.epochKey],
      this.epochs.args(proof),
      'epoch check',
    );
    if (!Array.isArray(reply) || reply.length !== 3) {
      throw new HeraldError(503, 'broker-unavailable', 'redis gave an unexpected answer to the epoch check');
    }
    this.epochs.learn(String(reply[0]), String(reply[1]), String(reply[2]));
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
}
