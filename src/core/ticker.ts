import type { EndStream, HubState } from './hub-state.ts';
import { REAUTH_EVENT, type ReauthPayload } from './protocol/system-events.ts';
import { encodeSystemEvent, HEARTBEAT } from './sse.ts';

const HEARTBEAT_CHUNKS: readonly Uint8Array[] = [HEARTBEAT];

/**
 * One timer for every stream of the node, running while there is one: it ends streams whose
 * credential expired, whose lifetime is over or that stayed idle too long, warns a stream with
 * `herald.reauth` before its credential expires, and sends a heartbeat on a quiet one.
 */
export class Ticker {
  private readonly state: HubState;
  private readonly end: EndStream;
  private timer: ReturnType<typeof setInterval> | undefined;

  constructor(state: HubState, end: EndStream) {
    this.state = state;
    this.end = end;
  }

  start(): void {
    if (this.timer !== undefined) return;
    // Fine enough that a heartbeat is never more than a fraction of a second late.
    const period = Math.min(500, Math.max(20, this.state.options.heartbeatMs / 4));
    this.timer = setInterval(this.tick, period);
    this.timer.unref?.();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private readonly tick = (): void => {
    const now = Date.now();
    const { heartbeatMs, idleTimeoutMs, reauthLeadMs } = this.state.options;
    for (const subscriber of this.state.subscribers.values()) {
      if (subscriber.state === 'closed') continue;
      const expiresAt = subscriber.expiresAt;
      if (now >= expiresAt) this.end(subscriber, 'expired');
      else if (now >= subscriber.deadline) this.end(subscriber, 'lifetime');
      else if (idleTimeoutMs > 0 && now - subscriber.lastEventAt >= idleTimeoutMs)
        this.end(subscriber, 'idle');
      else if (subscriber.systemEvents && !subscriber.warnedOfExpiry && now >= expiresAt - reauthLeadMs) {
        // The client fetches a fresh token now and reconnects with it; the end follows at expiry.
        subscriber.warnedOfExpiry = true;
        subscriber.write(
          [
            encodeSystemEvent(REAUTH_EVENT, {
              expiresAt: new Date(expiresAt).toISOString(),
            } satisfies ReauthPayload),
          ],
          now,
        );
      } else if (!subscriber.blocked && now - subscriber.lastWriteAt >= heartbeatMs) {
        subscriber.write(HEARTBEAT_CHUNKS, now);
      }
    }
  };
}
