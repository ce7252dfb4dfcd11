/**
 * What a backend contributes to bridges: its pub/sub as a source of messages. The generic
 * machinery (spec parsing, the pump into Herald, the runner) knows sources only through these
 * types, so a backend adds a bridge source without the bridges knowing its client. This module
 * imports nothing: backend folders depend on it, never the other way round.
 */

/**
 * What a bridge reports through `onError`: which bridge (`source`, e.g. `redis:merchant:*:progress`),
 * which channel or subject the message came on when there was one, and why (`reason`).
 */
export class BridgeError extends Error {
  readonly source: string;
  readonly channel: string | undefined;
  readonly reason: string;

  constructor(source: string, reason: string, channel?: string, cause?: unknown) {
    super(
      `bridge ${source}${channel === undefined ? '' : ` (message on ${JSON.stringify(channel)})`}: ${reason}`,
      cause === undefined ? undefined : { cause },
    );
    this.name = 'BridgeError';
    this.source = source;
    this.channel = channel;
    this.reason = reason;
  }
}

/** The pattern syntax of a source's channels or subjects, as spec parsing checks it. */
export interface SourcePattern {
  /** What a pattern is called in messages: `channel pattern`, `subject`. */
  readonly noun: string;
  /**
   * Checks `pattern` (calling `fail` with the problem) and counts its capturing wildcards. A
   * `matcher` is the pattern as an anchored regular expression with a group per wildcard, for a
   * syntax that has one; otherwise `captures` matches a channel.
   */
  compile(pattern: string, fail: (problem: string) => never): { wildcards: number; matcher?: RegExp };
  /** What each wildcard matched in `channel`, or undefined when it does not match (no `matcher`). */
  captures?(pattern: string, channel: string): string[] | undefined;
}

/** One bridge as its source feeds it: the spec's pattern, and where its messages go. */
export interface BridgeInlet {
  readonly spec: { readonly text: string; readonly source: string; readonly pattern: string };
  /** One message from the source. Never throws. */
  push(channel: string, body: string): void;
}

/** What the runner tells a source when it starts it. */
export interface SourceSettings {
  /** The backend's URL: where the source subscribes. */
  readonly url: string;
  /** This runner's name on the backend (leases, connection names). */
  readonly nodeId: string;
  /** How long the first connection may take before the start fails, ms. */
  readonly connectTimeoutMs: number;
  readonly report: (error: BridgeError) => void;
  /** Lease lifetime, ms, for sources that elect one publisher per bridge. */
  readonly leaseMs: number;
  /** How often a lease is renewed or sought, ms. */
  readonly renewEveryMs: number;
  /** Prefix of lease keys. */
  readonly leasePrefix: string;
  /** Prefix of queue groups, for sources whose server hands each message to one member. */
  readonly queueGroup: string;
}

/** A running source: every bridge of its backend, subscribed. */
export interface RunningSource {
  /** Whether the connection to the backend is up. */
  readonly connected: boolean;
  /** Figures of the source's own per bridge, in the order the inlets were given (e.g. `leader`). */
  stats(): readonly object[];
  /** Stops listening and lets go of what it holds on the backend (leases). */
  close(): Promise<void>;
}

/** Subscribes every inlet (each with its spec's hash: its identity across nodes). */
export type StartSource = (
  inlets: readonly { readonly inlet: BridgeInlet; readonly hash: string }[],
  settings: SourceSettings,
) => Promise<RunningSource>;

/** A backend's bridge source, as it registers it. */
export interface BridgeSource {
  /** The pattern syntax of its channels or subjects. */
  readonly pattern: SourcePattern;
  /** What the source needs installed (optional peer dependencies), as `npm install` takes them. */
  readonly packages: readonly string[];
  /** The backend a bridge listens to when neither the option nor the broker names one. */
  readonly defaultUrl: string;
  /** Loads the source's client (lazily: a hub without such bridges never loads it). */
  load(): Promise<StartSource>;
}
