import type { DisconnectPayload, HistoryPayload, ResumeGapReason } from './system-events.ts';

/**
 * The long-poll answer, the JSON body of `GET /v1/events/poll`: what the hub's long poll returns
 * and what herald/client reads. Types only, so the browser client bundles nothing of it.
 */

/** One event of a poll: what a stream frame carries. */
export interface PollEvent {
  readonly id: string;
  /** `message` for an event published without a type. */
  readonly type: string;
  /** As on the stream: the published data as text, with what the poller may not see removed. */
  readonly data: string;
  /** The publisher's reconnection delay (ms), when it set one. */
  readonly retry?: number;
}

export interface PollResult {
  readonly events: readonly PollEvent[];
  /** Where the next poll continues (`after=`): the last event's id, or how far the log was examined. */
  readonly lastEventId: string;
  /** The `after` id could not be resumed from exactly (as `herald.gap` on a stream). */
  readonly gap?: ResumeGapReason;
  /** A first poll that asked for history (`rewind`/`since`/`snapshot`): what it holds. */
  readonly history?: HistoryPayload;
  /**
   * An admin ended this client's connections (`POST /v1/connections/disconnect`), as
   * `herald.disconnect` on a stream: the poll answered at once, and with `reconnect: false` the
   * client is not to poll again with the same credential.
   */
  readonly disconnect?: DisconnectPayload;
}
