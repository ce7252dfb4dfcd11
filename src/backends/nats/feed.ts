import type { Consumer, ConsumerMessages, JsMsg, StreamInfo } from '@nats-io/jetstream';
import type { HeraldEvent } from '../../core/event.ts';
import { withTimeout } from '../with-timeout.ts';
import { DeliverPolicy } from './library.ts';
import type { Epoch, Link } from './stream.ts';

/** Pull size of the live feed; the pull is renewed at 3/4 consumed. */
const FEED_BATCH = 512;
/**
 * How long one pull of the live feed lasts. Besides heartbeats (half of it), it bounds how long the
 * client's ordered consumer waits between two checks of its server-side consumer after a failed one.
 */
const FEED_EXPIRES_MS = 5000;
const MAX_RESTART_DELAY_MS = 5000;

/** What the feed needs of the broker it feeds for. */
export interface FeedNode {
  readonly stream: string;
  readonly onError: (error: unknown, context: string) => void;
  closed(): boolean;
  /** Whether the socket is up now. */
  connected(): boolean;
  /** The newest epoch learned from the stream. */
  epoch(): Epoch | undefined;
  ready(): Promise<Link>;
  /** The stream's info, the log made anew when it is gone; learns its epoch (see `epochLearned`). */
  state(link: Link): Promise<StreamInfo>;
  /** Told each sequence fed: a log made anew starts past it. */
  saw(seq: number): void;
  decode(message: JsMsg): HeraldEvent | undefined;
}

/**
 * Each node's live feed of the NATS log: an ordered consumer from the last sequence fed, each
 * message fed once and in order, messages of one socket read fed together. It checks the stream
 * whenever a message is not the next sequence, after a reconnection, and when its consumer loses
 * the stream; on a new epoch it reports the reset once, calls `onReset`, and follows the new log
 * from its start.
 */
export class NatsFeed {
  private readonly node: FeedNode;
  private feed: ((events: readonly HeraldEvent[]) => void) | undefined;
  private onReset: ((from: string) => void) | undefined;
  /** The last sequence fed: the feed resumes after it, and never feeds it or anything before again. */
  private fedSeq = 0;
  /** The epoch the feed follows; it moves to the newest when the feed restarts. */
  private feedEpoch: Epoch | undefined;
  /** Messages received while the feed checks the stream (one was not the next sequence). */
  private held: JsMsg[] | undefined;
  /** Events received in the current tick, fed together at its end. */
  private batch: HeraldEvent[] = [];
  private flushQueued = false;
  private consumer: Consumer | undefined;
  private messages: ConsumerMessages | undefined;
  /** Which `follow()` may feed: messages from a consumer that was replaced are ignored. */
  private feedToken: symbol | undefined;
  private restartTimer: ReturnType<typeof setTimeout> | undefined;
  private restartDelayMs = 250;

  constructor(node: FeedNode) {
    this.node = node;
  }

  /** Feeds what is appended after `head`, from now on. */
  async begin(
    link: Link,
    head: number,
    feed: (events: readonly HeraldEvent[]) => void,
    onReset: ((from: string) => void) | undefined,
  ): Promise<void> {
    this.feed = feed;
    this.onReset = onReset;
    this.fedSeq = head;
    this.feedEpoch = this.node.epoch();
    await this.follow(link);
  }

  /** Feeds nothing more. */
  forget(): void {
    this.feed = undefined;
    this.onReset = undefined;
  }

  /** Feeds nothing more, and restarts nothing. */
  stop(): void {
    this.forget();
    clearTimeout(this.restartTimer);
  }

  /** A new epoch was learned: a running feed restarts on it. */
  epochLearned(epoch: Epoch): void {
    if (this.messages !== undefined && this.feedEpoch?.id !== epoch.id) this.restartFeed();
  }

  /** The connection ended for good (the broker opens another): follow again on the next one. */
  connectionClosed(): void {
    if (this.feed !== undefined) this.scheduleRestart();
  }

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
    await this.node.state(link);
    if (this.node.closed() || this.feedToken !== token) return;
    this.enterEpoch();
    const consumer = await link.js.consumers.get(this.node.stream, {
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
    if (this.node.closed() || this.feedToken !== token) {
      messages.stop();
      consumer.delete().catch(() => {});
      return;
    }
    this.consumer = consumer;
    this.messages = messages;
    this.restartDelayMs = 250;
    this.observe(messages);
    // A new epoch learned while the consumer was being made: follow it instead.
    if (this.node.epoch()?.id !== this.feedEpoch?.id) this.restartFeed();
    messages.closed().then((error) => {
      if (this.messages !== messages || this.node.closed()) return;
      this.messages = undefined;
      this.consumer = undefined;
      this.feedToken = undefined;
      this.node.onError(error ?? new Error('the consumer stopped'), 'nats feed');
      this.scheduleRestart();
    });
  }

  private observe(messages: ConsumerMessages): void {
    (async () => {
      for await (const note of messages.status()) {
        if (note.type === 'ordered_consumer_recreated') {
          if (this.messages !== messages || this.node.closed()) return;
          // The recreated consumer is the client's; the next one is ours, from what was fed.
          this.restartFeed();
          return;
        }
        if (note.type === 'stream_not_found') {
          this.node.onError(new Error(`stream ${this.node.stream} not found`), 'nats feed');
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
    })().catch((error: unknown) => this.node.onError(error, 'nats feed status'));
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
    const next = this.node.epoch();
    const left = this.feedEpoch;
    if (next === undefined || left === undefined || next.id === left.id) return;
    this.flush();
    this.feedEpoch = next;
    // A new stream holds nothing up to its start: follow it from there, whatever was fed before.
    this.fedSeq = next.start;
    this.node.onError(
      new Error(
        `the JetStream stream ${this.node.stream} was lost or replaced (deleted, or a server restarted without ` +
          `its store); it goes on as a new log after sequence ${next.start}. Events appended before that and ` +
          'not yet delivered by this node may be lost; clients resuming from before it are told with herald.gap "reset"',
      ),
      'log reset',
    );
    try {
      this.onReset?.(String(next.start));
    } catch (error) {
      this.node.onError(error, 'reset callback');
    }
  }

  private scheduleRestart(): void {
    if (this.node.closed() || this.restartTimer !== undefined) return;
    const delay = this.restartDelayMs;
    this.restartDelayMs = Math.min(Math.max(this.restartDelayMs * 2, 250), MAX_RESTART_DELAY_MS);
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      if (this.node.closed() || this.feed === undefined) return;
      this.node
        .ready()
        .then((link) => this.follow(link))
        .catch((error: unknown) => {
          this.node.onError(error, 'restarting the nats feed');
          this.scheduleRestart();
        });
    }, delay);
  }

  /** Stops the consumer (deleting it when the server is there to hear it). */
  async unfollow(link: Link): Promise<void> {
    const { messages, consumer } = this;
    this.messages = undefined;
    this.consumer = undefined;
    this.feedToken = undefined;
    if (messages === undefined) return;
    await withTimeout(messages.close(), 1000, 'consumer close').catch(() => {});
    // Ordered consumers are ephemeral (gone 5 minutes after their last pull); deleting is tidier.
    if (this.node.connected() && !link.nc.isClosed()) {
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
      this.node.onError(error, 'nats feed');
      this.restartFeed();
    });
  }

  private async verify(token: symbol): Promise<void> {
    await this.node.state(await this.node.ready());
    // A new epoch restarted the feed (see `learn`): what was held is dropped with the old consumer.
    if (this.feedToken !== token) return;
    if (this.node.epoch()?.id !== this.feedEpoch?.id) {
      this.restartFeed();
      return;
    }
    const held = this.held ?? [];
    this.held = undefined;
    for (const message of held) {
      if (message.seq <= this.fedSeq) continue; // fed once, whatever the consumer does
      if (message.seq > this.fedSeq + 1) {
        this.node.onError(
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
    this.node.saw(seq);
    const event = this.node.decode(message);
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
      this.node.onError(error, 'feeding events');
    }
  };

  /**
   * Looks at the stream after a reconnection, or when the consumer lost it: a log made anew moves
   * the feed (see `learn`); one that went back (a server restarted on a store that had not yet
   * written the last messages) is reported, and the feed goes on from where it now ends.
   */
  checkSoon(): void {
    // While the server is away there is nothing to ask; its return is checked (see `watch`).
    if (this.node.closed() || this.feed === undefined || !this.node.connected()) return;
    this.node
      .ready()
      .then(async (link) => {
        // What was fed before asking: the answer's last sequence is at least that, unless it went back.
        const fed = this.fedSeq;
        const info = await this.node.state(link);
        if (this.feedEpoch?.id !== this.node.epoch()?.id || info.state.last_seq >= fed) return;
        this.node.onError(
          new Error(
            `the stream ${this.node.stream} went back from sequence ${fed} to ${info.state.last_seq}: ` +
              'the events after it that this node delivered are no longer in the log',
          ),
          'log went back',
        );
        this.fedSeq = info.state.last_seq;
        this.restartFeed();
      })
      .catch((error: unknown) => this.node.onError(error, 'checking the nats log'));
  }
}
