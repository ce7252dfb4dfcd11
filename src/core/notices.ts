import type { HubState } from './hub-state.ts';
import { encodeSystemEvent } from './sse.ts';
import type { Subscriber } from './subscriber.ts';

/**
 * Writes a notice to this node's streams of `tenant` that selected `topic` exactly, outside the
 * log: no `id:` (a client's resume point does not move), no replay, not counted as a delivery,
 * and never seen by `*` or template selectors, which stand for the log's events. It is meant
 * for per-node figures that are stale a second later (the dashboard's stats): a stream still
 * replaying or with a full socket skips it, and the next notice supersedes it. Filters (type,
 * tags) select among the log's events and do not apply; `only` narrows the recipients further
 * (the streams that asked for presence notices). Returns how many streams got it.
 */
export function notify(
  state: HubState,
  tenant: string,
  topic: string,
  type: string,
  payload: unknown,
  only?: (subscriber: Subscriber) => boolean,
): number {
  const recipients = state.index.get(tenant)?.exact.get(topic);
  if (recipients === undefined) return 0;
  // One frame and one chunk list for every recipient.
  const chunks = [encodeSystemEvent(type, payload)];
  const now = Date.now();
  let written = 0;
  for (const subscriber of recipients instanceof Set ? recipients : [recipients]) {
    // Long-poll waiters sit in the index too, but they answer from the log only.
    if (state.subscribers.get(subscriber.id) !== subscriber) continue;
    if (subscriber.state !== 'live' || subscriber.blocked || !subscriber.systemEvents) continue;
    if (only !== undefined && !only(subscriber)) continue;
    subscriber.write(chunks, now);
    written++;
  }
  return written;
}

/** How many of this node's streams of `tenant` selected `topic` exactly (who a `notify` would reach). */
export function watchers(state: HubState, tenant: string, topic: string): number {
  const recipients = state.index.get(tenant)?.exact.get(topic);
  return recipients === undefined ? 0 : recipients instanceof Set ? recipients.size : 1;
}
