/**
 * Herald's own events on a stream (`herald.*`): their types and what their data holds, shared by
 * the hub that writes them and by every reader (herald/client, `herald listen`, the dashboard).
 * No published event may have a type with this prefix, so a reader tells them apart by it alone.
 *
 * The browser client bundles this file: string constants and types only, and no import, so it
 * brings nothing else of the server into the bundle.
 */

/** The prefix of every system event type, reserved: a publish with it is refused. */
export const SYSTEM_EVENT_PREFIX = 'herald.';

/**
 * First on every stream that takes system events. Its `id:` is `lastEventId`, the point the stream
 * resumes from, so a client that drops before any event reconnects from there.
 */
export const CONNECTED_EVENT = 'herald.connected';
export interface ConnectedPayload {
  /** The stream's id, named by `POST /v1/subscriptions`. */
  readonly connectionId: string;
  /** Where the stream resumes from: also the event's `id:`. */
  readonly lastEventId: string;
  /** Sent on this stream only: proves that a subscription change comes from whoever holds it. */
  readonly secret: string;
  /**
   * Present when the stream starts with history it asked for (`rewind`/`since`, or
   * `snapshot=latest`). The event then has no `id:`: a client that drops before `herald.history`
   * reconnects without `Last-Event-ID` and is sent the history again, instead of losing it.
   */
  readonly history?: HistoryKind;
}

/** What a new stream asked to start with: recent events (`rewind`/`since`) or the latest per key. */
export type HistoryKind = 'rewind' | 'snapshot';

/**
 * After the history a stream asked for, before the live events. Its `id:` is where the stream goes
 * on from: a client that drops after it resumes with no gap and no duplicate.
 */
export const HISTORY_EVENT = 'herald.history';
export interface HistoryPayload {
  readonly kind: HistoryKind;
  /** How many events of history were sent. */
  readonly events: number;
  /** False when a bound of the hub (the most events, the most log entries examined) cut it short. */
  readonly complete: boolean;
}

/** Why a resume could not go on exactly where the client was (streams and polls alike). */
export type ResumeGapReason = 'unknown' | 'expired' | 'reset';

/** Events may have been missed: the client re-fetches the state they describe. */
export const GAP_EVENT = 'herald.gap';
export interface GapPayload {
  /** The last id the client had when the gap began (null when unknown). */
  readonly lastEventId: string | null;
  /**
   * `unknown` id, `expired` (older than the history, or before a hub restart), `reset` (the
   * broker's log was lost or replaced), `overflow` (too slow: its outbox dropped events).
   */
  readonly reason: ResumeGapReason | 'overflow';
  /** With `overflow`: how many events were dropped. */
  readonly dropped?: number;
}

/** The stream's credential expires soon: the client reconnects with a fresh one before it ends. */
export const REAUTH_EVENT = 'herald.reauth';
export interface ReauthPayload {
  /** When the credential expires, ISO 8601. */
  readonly expiresAt: string;
}

/**
 * On a mux stream (`GET /v1/events?mux=1`), labelled with the `channel:` it is about (no `id:`):
 * the hub ended that channel while the mux stays open. The client reopens it from its last id.
 * When the mux itself ends, its channels end with it and none is announced.
 */
export const CHANNEL_CLOSED_EVENT = 'herald.channel-closed';
export interface ChannelClosedPayload {
  /**
   * Why the hub ended it: `overflow` (its outbox overflowed while the mux's socket was full),
   * `expired` (its credential), `lifetime`, `idle`, `reset` (the broker's log was replaced) or
   * `error`.
   */
  readonly reason: 'overflow' | 'expired' | 'lifetime' | 'idle' | 'reset' | 'error';
}

/**
 * Last on a stream an admin ended (`POST /v1/connections/disconnect`), before the stream ends.
 * With `reconnect: false` the client must not reconnect with the same credential: herald/client
 * stops and reports the reason; the app may connect again with a new one.
 */
export const DISCONNECT_EVENT = 'herald.disconnect';
export interface DisconnectPayload {
  /** The admin's reason, as given (may be empty). */
  readonly reason: string;
  /** Whether the client may reconnect with the same credential (default true). */
  readonly reconnect: boolean;
}

/**
 * On a stream opened with `presence=1`, for each of its exact topics (no `id:`, outside the log):
 * a subject joined the topic (its first stream on it, on any node) or left it (its last one ended,
 * or the node holding it dropped out of the cluster).
 */
export const PRESENCE_EVENT = 'herald.presence';
export interface PresencePayload {
  readonly topic: string;
  readonly action: 'join' | 'leave';
  readonly subject: string;
  /** The subject's streams on the topic across the cluster after the change. */
  readonly connections: number;
}

/**
 * The dashboard's live figures, a notice on `STATS_TOPIC` once a second, outside the log (no id).
 * Its data is `DashboardStats` (src/dashboard/stats-feed.ts): the node's `/v1/stats`, a shape of
 * the server that the core may not import.
 */
export const STATS_EVENT = 'herald.stats';
/**
 * The reserved topic of `herald.stats`. Notices on it go to streams of tenant `*` only, which only
 * admin credentials may open, and no one can publish into tenant `*`.
 */
export const STATS_TOPIC = 'herald/stats';

/** The data of each system event that has a shape of its own, by type. */
export interface SystemEventPayloads {
  [CONNECTED_EVENT]: ConnectedPayload;
  [GAP_EVENT]: GapPayload;
  [REAUTH_EVENT]: ReauthPayload;
  [HISTORY_EVENT]: HistoryPayload;
  [CHANNEL_CLOSED_EVENT]: ChannelClosedPayload;
  [DISCONNECT_EVENT]: DisconnectPayload;
  [PRESENCE_EVENT]: PresencePayload;
}

export type SystemEventType =
  | typeof CONNECTED_EVENT
  | typeof GAP_EVENT
  | typeof REAUTH_EVENT
  | typeof HISTORY_EVENT
  | typeof CHANNEL_CLOSED_EVENT
  | typeof DISCONNECT_EVENT
  | typeof PRESENCE_EVENT
  | typeof STATS_EVENT;
