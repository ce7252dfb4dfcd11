import type { ProtocolName } from './protocols.ts';

/** IPC between the orchestrator and its load-generator processes. */

// ── subscriber worker ────────────────────────────────────────────────────────────────────────

export interface OpenStreams {
  readonly type: 'open';
  readonly host: string;
  readonly port: number;
  readonly protocol: ProtocolName;
  readonly topic: string;
  readonly connections: number;
  /** Connection attempts in flight at once (a burst overflows the server's accept backlog). */
  readonly concurrency: number;
  readonly timeoutMs: number;
  /** One topic per connection, in place of `topic` (S4: each stream its own). */
  readonly topics?: readonly string[];
  /** The source address every socket binds (127.0.0.x): one address has ~28 000 ephemeral ports. */
  readonly localAddress?: string;
  /** Resume after this event id (`Last-Event-ID`); every stream then starts past `afterSeq`. */
  readonly lastEventId?: string;
  /** The seq each stream counts as already received: what follows must be `afterSeq + 1`. */
  readonly afterSeq?: number;
  /** Count and time events from this seq on, from the first byte (as `measure` does later). */
  readonly measureFrom?: number;
  /**
   * Publishers whose events interleave (`PublishPhase.lanes`): seq g is lane `(g - 1) % lanes`'s,
   * and order, gaps and duplicates are checked per lane. Default 1: one ordered sequence.
   */
  readonly lanes?: number;
}

/** From now on, events with `seq >= fromSeq` are the measured ones. */
export interface Measure {
  readonly type: 'measure';
  readonly fromSeq: number;
}

export interface RequestReport {
  readonly type: 'report';
}

export interface Quit {
  readonly type: 'quit';
}

export type SubscriberIn = OpenStreams | Measure | RequestReport | Quit;

export interface Opened {
  readonly type: 'opened';
  /** When the first connection attempt began, on `nowMs()`'s clock. */
  readonly startedAt: number;
  readonly ready: number;
  readonly failed: number;
  /** A few distinct error messages, for the report. */
  readonly errors: readonly string[];
}

export interface MeasureStarted {
  readonly type: 'measuring';
}

/** Sent every few milliseconds while something changes. */
export interface Progress {
  readonly type: 'progress';
  /** The highest seq every open stream has reached; null without open streams. */
  readonly minSeq: number | null;
  readonly open: number;
}

export interface SubscriberReport {
  readonly type: 'report';
  readonly streams: number;
  /** Streams that ended or failed after they were ready. */
  readonly closed: number;
  /** Measured events received. */
  readonly delivered: number;
  /** Forward jumps in seq: events a stream never saw. */
  readonly missing: number;
  /** Events at or below a stream's last seq: duplicates or out of order. */
  readonly duplicates: number;
  /** Data blocks that were not benchmark payloads (system events). */
  readonly other: number;
  /** Latencies below zero (clock skew between processes), recorded as 0. */
  readonly negative: number;
  /** Arrival time of the last measured event, on `nowMs()`'s clock; 0 if none. */
  readonly lastArrival: number;
  /** hdr-histogram-js, compressed base64, microseconds. */
  readonly histogram: string;
  /** CPU time this worker spent since `measure`, microseconds. */
  readonly cpuMicros: number;
  readonly errors: readonly string[];
}

export type SubscriberOut = Opened | MeasureStarted | Progress | SubscriberReport;

// ── publisher worker ─────────────────────────────────────────────────────────────────────────

export interface PublishPhase {
  readonly type: 'run';
  readonly host: string;
  readonly port: number;
  readonly protocol: ProtocolName;
  readonly topic: string;
  /** seq of the first event; every event after it is one more. */
  readonly firstSeq: number;
  /** Events per second; 0: saturated, limited by `window`. */
  readonly rate: number;
  readonly durationMs: number;
  /** Hard cap on events in this phase. */
  readonly maxEvents: number;
  /** Saturated: events per request. Fixed rate: requests carry what is due, at most this many. */
  readonly batch: number;
  /** Saturated: never publish beyond seq `minSeq + window`. */
  readonly window: number;
  readonly payloadBytes: number;
  /**
   * Events spread over these topics, round robin, in place of `topic`: the event numbered g goes
   * to `topics[(g - 1) % n]` and carries seq `floor((g - 1) / n) + 1`, so each topic's events are
   * numbered 1, 2, 3 … for its subscribers. `firstSeq` and `lastSeq` count g.
   */
  readonly topics?: readonly string[];
  /** With `topics`, on a protocol without `publishEach`: single-event requests in flight at once. */
  readonly parallel?: number;
  /**
   * One event per request even where the protocol takes batches (`publishEach`, `maxBatch`): the
   * way the seeds publish. With `topics`, `parallel` requests at once.
   */
  readonly single?: boolean;
  /**
   * One topic, one event per request, from this many publishers at once, each on its own
   * keep-alive connection (a lane): event g is lane `(g - 1) % lanes`'s, and a lane sends its
   * next only once the server answered its last, so each lane's events reach a subscriber in
   * order, whatever the lanes do between them (the subscribers check order per lane).
   */
  readonly lanes?: number;
}

/** The orchestrator's latest view of what every subscriber has received. */
export interface Delivered {
  readonly type: 'delivered';
  readonly minSeq: number;
}

export type PublisherIn = PublishPhase | Delivered | Quit;

export interface PhaseDone {
  readonly type: 'done';
  readonly firstSeq: number;
  /** seq of the last event published; firstSeq - 1 if none. */
  readonly lastSeq: number;
  readonly requests: number;
  readonly elapsedMs: number;
  /** Fixed rate: how far the publisher fell behind its schedule at worst, ms. */
  readonly maxLagMs: number;
  /** CPU time the publisher spent in this phase, microseconds. */
  readonly cpuMicros: number;
  /** Set when a publish failed; the phase stopped there. */
  readonly error?: string;
}

export type PublisherOut = PhaseDone;
