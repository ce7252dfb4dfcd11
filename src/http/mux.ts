import { badRequest, HeraldError } from '../core/errors.ts';
import type { Hub } from '../core/hub.ts';
import {
  CHANNEL_CLOSED_EVENT,
  type ChannelClosedPayload,
  CONNECTED_EVENT,
  type ConnectedPayload,
} from '../core/protocol/system-events.ts';
import { encodeRetry, encodeSystemEvent, OPENING_COMMENT } from '../core/sse.ts';
import { type Sink, type Subscriber, type Subscription, sameSecret } from '../core/subscriber.ts';

/**
 * One stream for many subscriptions (`GET /v1/events?mux=1`), so that the tabs of one origin can
 * share a single connection: each channel (`POST /v1/channels`) is an ordinary hub subscription,
 * with its own selectors, filters, resume point, history and connection id, whose frames are
 * written to the mux's response, each prefixed with `channel: <id>`.
 *
 * The mux itself is a hub subscriber with no selectors and without system events, so that the hub
 * drives it as any stream: heartbeats, lifetime, credential expiry, shutdown, and the transport's
 * `drained()` and `closed()`, which an `HttpStream` hands the hub's subscriber. Its first bytes,
 * the hub's opening comment, are replaced with `herald.connected` (without `id:`: a mux resumes
 * nothing, its channels do).
 *
 * Labelling costs one copy per event per channel, on mux streams only: a channel's sink is its
 * own, and nothing changes on the path of an ordinary stream.
 */

/** The most channels one mux stream carries at once. */
export const MAX_CHANNELS = 32;

/** What a client may name a channel: it comes back on every frame, so nothing that could break one. */
const CHANNEL_NAME = /^[A-Za-z0-9_-]{1,64}$/;

const LF = 0x0a;
const COLON = 0x3a;
const R = 0x72;
const encoder = new TextEncoder();

/** The open mux streams of each hub, by their connection id (what `POST /v1/channels` names). */
const muxesOf = new WeakMap<Hub, Map<string, Mux>>();

function muxes(hub: Hub): Map<string, Mux> {
  let open = muxesOf.get(hub);
  if (open === undefined) {
    open = new Map();
    muxesOf.set(hub, open);
  }
  return open;
}

/**
 * Opens a mux stream on `sink` (the transport's): the hub subscriber the transport wires, as
 * `hub.subscribe` returns one. `subscription` gives its tenant, credential and `onClose`; its
 * selectors are none, whatever it says.
 */
export function openMux(hub: Hub, subscription: Subscription, sink: Sink): Subscriber {
  const mux = new Mux(hub, sink);
  const parent = hub.subscribe(
    {
      ...subscription,
      selectors: [],
      filter: undefined,
      systemEvents: false,
      carrier: true,
      start: undefined,
      lastEventId: undefined,
      onClose: () => {
        subscription.onClose?.();
        mux.ended();
      },
    },
    mux.ownSink,
  );
  mux.parent = parent;
  muxes(hub).set(parent.id, mux);
  return parent;
}

/**
 * The open mux stream `connectionId` of this node, for a request that proves it holds it: a wrong
 * secret answers like a mux that does not exist (404), another credential 403, as a change of an
 * ordinary stream's subscriptions does.
 */
export function heldMux(
  hub: Hub,
  connectionId: string,
  secret: string,
  principal: { readonly tenant: string; readonly subject?: string | undefined; readonly admin: boolean },
): Mux {
  const mux = muxes(hub).get(connectionId);
  if (mux === undefined || mux.isClosed || !sameSecret(secret, mux.parent.secret)) {
    throw new HeraldError(
      404,
      'connection-not-found',
      `no open mux stream ${connectionId} on this node; it closed, or it is served by another node`,
    );
  }
  const { parent } = mux;
  if (parent.subject !== principal.subject || (parent.tenant !== principal.tenant && !principal.admin)) {
    throw new HeraldError(
      403,
      'not-your-stream',
      'only the credential that opened a mux stream may open or close its channels',
    );
  }
  return mux;
}

/** Refuses (400 `invalid-channel`) a channel name that is not 1–64 characters of `[A-Za-z0-9_-]`. */
export function channelName(value: unknown): string {
  if (typeof value !== 'string' || !CHANNEL_NAME.test(value)) {
    throw badRequest(
      'invalid-channel',
      `channel must be 1–64 characters of A–Z, a–z, 0–9, _ and -, not ${JSON.stringify(value)?.slice(0, 80)}`,
    );
  }
  return value;
}

/**
 * The mux streams and their channels open on this node, for `/v1/stats`: every one, or those of
 * `tenant` (a mux by the tenant it was opened in, a channel by the tenant it watches).
 */
export function muxFigures(hub: Hub, tenant?: string): { streams: number; channels: number } {
  let streams = 0;
  let channels = 0;
  for (const mux of muxes(hub).values()) {
    if (tenant === undefined || mux.parent.tenant === tenant) streams++;
    channels += mux.channelCount(tenant);
  }
  return { streams, channels };
}

/** One mux stream: the hub subscriber that holds its response, and the channels written to it. */
export class Mux {
  /** Set by `openMux` as soon as the hub has made it, before anything is written. */
  parent!: Subscriber;
  /** What the mux's own subscriber writes: the hub's opening comment, heartbeats, the end's `retry:`. */
  readonly ownSink: Sink;
  private readonly hub: Hub;
  private readonly out: Sink;
  private readonly channels = new Map<string, Channel>();
  private closed = false;
  private awaitingDrain = false;

  constructor(hub: Hub, out: Sink) {
    this.hub = hub;
    this.out = out;
    this.ownSink = {
      write: (chunks) => this.writeOwn(chunks),
      end: () => out.end(),
      destroy: () => out.destroy(),
    };
  }

  get isClosed(): boolean {
    return this.closed;
  }

  channelCount(tenant?: string): number {
    if (tenant === undefined) return this.channels.size;
    let count = 0;
    for (const channel of this.channels.values()) if (channel.subscriber.tenant === tenant) count++;
    return count;
  }

  /**
   * Opens channel `name` as a hub subscription of `subscription`, replacing the channel of that
   * name (closed first). `reserve` takes its stream slots once the count of channels allows it,
   * and returns what frees them. Returns the channel's subscriber.
   */
  open(name: string, subscription: Subscription, reserve: () => () => void): Subscriber {
    if (this.closed) {
      throw new HeraldError(404, 'connection-not-found', 'the mux stream closed; open a new one');
    }
    this.channels.get(name)?.subscriber.closed();
    if (this.channels.size >= MAX_CHANNELS) {
      throw badRequest(
        'too-many-channels',
        `this mux stream has ${this.channels.size} channels open; the limit is ${MAX_CHANNELS}: close one first, or open another mux stream`,
      );
    }
    const release = reserve();
    const channel = new Channel(this, name);
    try {
      channel.subscriber = this.hub.subscribe(
        {
          ...subscription,
          onClose: () => {
            release();
            if (this.channels.get(name) === channel) this.channels.delete(name);
          },
        },
        channel,
      );
    } catch (error) {
      release();
      throw error;
    }
    this.channels.set(name, channel);
    return channel.subscriber;
  }

  /**
   * Closes channel `name` at the client's request: nothing more of it is written. Closing one
   * that is not open is no error: the hub may have ended it a moment before (its credential
   * expired, its outbox overflowed), and a page closing its tab cannot know; what it asked for,
   * a channel that sends nothing, holds either way. Returns whether one was open.
   */
  close(name: string): boolean {
    const channel = this.channels.get(name);
    channel?.subscriber.closed();
    return channel !== undefined;
  }

  /** Writes a channel's frames, each labelled with its name; its heartbeats are dropped. */
  send(channel: Channel, chunks: readonly Uint8Array[]): boolean {
    if (this.closed) return false;
    const labelled: Uint8Array[] = [];
    for (const chunk of chunks) {
      const one = label(channel.prefix, chunk);
      if (one !== undefined) labelled.push(one);
    }
    if (labelled.length === 0) return true;
    // The mux carried something: no heartbeat of its own is due, and it is not idle.
    const parent = this.parent;
    const now = Date.now();
    parent.lastWriteAt = now;
    parent.lastEventAt = now;
    if (this.out.write(labelled)) return true;
    this.blocked();
    return false;
  }

  /** Tells the client that the hub ended `channel` while the mux stays open. */
  announce(channel: Channel, reason: ChannelClosedPayload['reason'] | 'shutdown'): void {
    // The hub is closing: the mux ends now too, and the client reopens everything.
    if (reason === 'shutdown') return;
    this.send(channel, [encodeSystemEvent(CHANNEL_CLOSED_EVENT, { reason } satisfies ChannelClosedPayload)]);
  }

  /**
   * Why the hub ended a channel with a `retry:` hint: a `Sink` is not told, so this is the first
   * of the hub's own reasons that holds, in the order its ticker checks them.
   */
  whyEnded(subscriber: Subscriber): ChannelClosedPayload['reason'] | 'shutdown' {
    const hub = this.hub;
    const now = Date.now();
    const idleMs = hub.options.idleTimeoutMs;
    if (hub.isClosing) return 'shutdown';
    if (now >= subscriber.expiresAt) return 'expired';
    if (now >= subscriber.deadline) return 'lifetime';
    if (idleMs > 0 && now - subscriber.lastEventAt >= idleMs) return 'idle';
    return 'reset';
  }

  /** The mux's subscriber closed, whoever closed it: every channel ends with it, unannounced. */
  ended(): void {
    if (this.closed) return;
    this.closed = true;
    const open = muxes(this.hub);
    if (open.get(this.parent.id) === this) open.delete(this.parent.id);
    for (const channel of [...this.channels.values()]) channel.subscriber.closed();
    this.channels.clear();
  }

  /**
   * The socket is full: the channels that write to it are blocked one by one as they find out,
   * and all of them are told when it drains. The transport tells the mux's own subscriber, which
   * only listens while it counts as blocked.
   */
  private blocked(): void {
    const parent = this.parent;
    parent.blocked = true;
    if (this.awaitingDrain) return;
    this.awaitingDrain = true;
    parent.waitForDrain().then(this.drained, () => {});
  }

  private readonly drained = (): void => {
    this.awaitingDrain = false;
    if (this.closed) return;
    for (const channel of [...this.channels.values()]) channel.subscriber.drained();
  };

  private writeOwn(chunks: readonly Uint8Array[]): boolean {
    const first = chunks[0];
    if (first === OPENING_COMMENT) {
      const parent = this.parent;
      const connected: ConnectedPayload = { connectionId: parent.id, lastEventId: '', secret: parent.secret };
      return this.out.write([
        encodeRetry(this.hub.options.retryMs),
        encodeSystemEvent(CONNECTED_EVENT, connected),
      ]);
    }
    // Heartbeats (`:`) and the end's `retry:` only. Events reach a mux through its channels: were
    // the mux given topics of its own (`POST /v1/subscriptions` with its id), their events would
    // come unlabelled, so they are dropped.
    if (first !== undefined && first[0] !== COLON && first[0] !== R) return true;
    return this.out.write(chunks);
  }
}

/** A channel's sink: what the hub writes to it goes to the mux, labelled. */
class Channel implements Sink {
  /** Set by `Mux.open` as soon as the hub has made it, before anything is written. */
  subscriber!: Subscriber;
  readonly prefix: Uint8Array;
  private readonly mux: Mux;

  constructor(mux: Mux, name: string) {
    this.mux = mux;
    this.prefix = encoder.encode(`channel: ${name}\n`);
  }

  write(chunks: readonly Uint8Array[]): boolean {
    return this.mux.send(this, chunks);
  }

  /** The hub ended the channel, after its `retry:` hint. */
  end(): void {
    this.mux.announce(this, this.mux.whyEnded(this.subscriber));
  }

  /**
   * Cut at once: its outbox overflowed, which only happens while its socket (the mux's) is full,
   * or its opening failed. The mux's response is not the channel's to drop.
   */
  destroy(): void {
    this.mux.announce(this, this.subscriber.blocked ? 'overflow' : 'error');
  }
}

/**
 * `chunk`'s events, each prefixed with `label`, in one new buffer; undefined when it holds only
 * comments. The hub's frames end with a blank line and hold none inside (`core/sse.ts`: every line
 * is `field: value`, data split at every line break), so a chunk of several splits at `\n\n`.
 */
export function label(prefix: Uint8Array, chunk: Uint8Array): Uint8Array | undefined {
  const length = chunk.length;
  const bounds = BOUNDS;
  bounds.length = 0;
  let size = 0;
  let start = 0;
  while (start < length) {
    let end = length;
    for (let at = chunk.indexOf(LF, start); at !== -1; at = chunk.indexOf(LF, at + 1)) {
      if (chunk[at + 1] === LF) {
        end = at + 2;
        break;
      }
    }
    if (chunk[start] !== COLON) {
      bounds.push(start, end);
      size += prefix.length + end - start;
    }
    start = end;
  }
  if (size === 0) return undefined;
  const out = new Uint8Array(size);
  let offset = 0;
  for (let i = 0; i < bounds.length; i += 2) {
    out.set(prefix, offset);
    offset += prefix.length;
    const from = bounds[i] as number;
    const to = bounds[i + 1] as number;
    out.set(chunk.subarray(from, to), offset);
    offset += to - from;
  }
  return out;
}

/** Reused by every `label`: it runs to its end without yielding. */
const BOUNDS: number[] = [];
