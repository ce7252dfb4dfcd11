import type { JsMsg } from '@nats-io/jetstream';
import type { HeraldEvent } from '../../core/event.ts';
import { AckPolicy, DeliverPolicy, nanos, nuid } from './library.ts';
import type { Link } from './stream.ts';

/** How long a page's fetch may wait, ms (it never waits for messages that do not exist). */
const FETCH_EXPIRES_MS = 2000;

/**
 * Up to `limit` events of the sequences `from`..`to` of the log, oldest first. What is not a
 * Herald event is skipped (`decode` reports it).
 */
export async function readPage(
  link: Link,
  stream: string,
  range: { readonly from: number; readonly to: number; readonly limit: number },
  decode: (message: JsMsg) => HeraldEvent | undefined,
): Promise<HeraldEvent[]> {
  const { from, to, limit } = range;
  // One short-lived consumer per page: three round trips whatever the page size (a page of 500
  // takes a few ms), where direct gets would cost one each (batched direct get is nats-server 2.11).
  const info = await link.jsm.consumers.add(stream, {
    name: `herald_read_${nuid.next()}`,
    deliver_policy: DeliverPolicy.StartSequence,
    opt_start_seq: from,
    ack_policy: AckPolicy.None,
    mem_storage: true,
    num_replicas: 1,
    inactive_threshold: nanos(30_000),
  });
  try {
    // num_pending counts what the consumer has from `from` on: fetching no more than exists
    // means the fetch never sits waiting for messages that will not come.
    const wanted = Math.min(limit, to - from + 1, info.num_pending);
    if (wanted <= 0) return [];
    const messages = await link.js.consumers
      .getConsumerFromInfo(info)
      .fetch({ max_messages: wanted, expires: FETCH_EXPIRES_MS });
    const events: HeraldEvent[] = [];
    try {
      for await (const message of messages) {
        // Past `to` only when messages in the range were deleted: the range is exhausted.
        if (message.seq > to) break;
        const event = decode(message);
        if (event !== undefined) events.push(event);
        if (events.length >= limit || message.seq === to || message.info.pending === 0) break;
      }
    } finally {
      messages.stop();
    }
    return events;
  } finally {
    link.jsm.consumers.delete(stream, info.name).catch(() => {});
  }
}

/**
 * Up to `limit` events at or before `until` (before it when `exclusive`), newest first. Sequences
 * of the log are contiguous, so the page is the `limit` sequences below `until`; a start below
 * the oldest retained one starts at the oldest.
 */
export async function readBackPage(
  link: Link,
  stream: string,
  range: { readonly until: number; readonly limit: number; readonly exclusive: boolean },
  decode: (message: JsMsg) => HeraldEvent | undefined,
): Promise<HeraldEvent[]> {
  const to = range.until - (range.exclusive ? 1 : 0);
  if (range.limit <= 0 || to < 1) return [];
  const from = Math.max(1, to - range.limit + 1);
  return (await readPage(link, stream, { from, to, limit: range.limit }, decode)).reverse();
}
