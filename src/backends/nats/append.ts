import { HeraldError } from '../../core/errors.ts';
import type { EventDraft, HeraldEvent } from '../../core/event.ts';
import { toEvent } from '../codec.ts';
import { isNoLog, LogMissing, unavailable } from './failures.ts';
import { type Claim, claim, keyOf, release } from './ids.ts';
import type { LatestBucket, Stored } from './latest.ts';
import type { Link } from './stream.ts';

/** How long an append waits for JetStream's acknowledgement before answering 503. */
const PUBLISH_TIMEOUT_MS = 2000;

/** The log an append goes to. */
export interface AppendTarget {
  /** The stream that is the log, and the subject it takes events on. */
  readonly stream: string;
  readonly subject: string;
  readonly onError: (error: unknown, context: string) => void;
  /** Told the last sequence stored: a log made anew starts past it. */
  readonly saw: (seq: number) => void;
  /** Where keyed events' latest values go; undefined when none are kept. */
  readonly latest: LatestBucket | undefined;
}

/**
 * Appends drafts to the log, once: claims their chosen ids, publishes them pipelined, and points
 * each id at its sequence. Throws `LogMissing` when nothing was stored because the log is gone
 * (the broker makes it anew and tries once more).
 */
export async function appendOnce(
  link: Link,
  log: AppendTarget,
  drafts: readonly EventDraft[],
  bodies: readonly string[],
): Promise<HeraldEvent[]> {
  const maxPayload = link.nc.info?.max_payload;
  if (maxPayload !== undefined) {
    for (const body of bodies) {
      const bytes = Buffer.byteLength(body);
      if (bytes > maxPayload) {
        throw new HeraldError(
          413,
          'data-too-large',
          `the event takes ${bytes} bytes stored; the NATS server accepts at most ${maxPayload} (max_payload)`,
        );
      }
    }
  }

  // The oldest sequence the log still holds: a chosen id whose event is older is free again.
  const firstSeq = async () => (await link.jsm.streams.info(log.stream)).state.first_seq;

  // 1. Claim the chosen ids, so that a duplicate is refused before anything is in the log.
  const claims = new Map<number, Claim>();
  const claimed = await Promise.allSettled(
    drafts.map(async (draft, i) => {
      if (draft.id === undefined || draft.reuseId === true) return;
      claims.set(i, await claim(link.ids, firstSeq, draft.tenant, draft.id));
    }),
  );
  const refused = claimed.find((result) => result.status === 'rejected');
  if (refused !== undefined) {
    await release(link.ids, [...claims.values()], log.onError);
    throw unavailable(refused.reason);
  }

  // 2. Publish, pipelined: one connection delivers them in order, so the sequences follow the drafts.
  const acks = await Promise.allSettled(
    bodies.map((body) => link.js.publish(log.subject, body, { timeout: PUBLISH_TIMEOUT_MS })),
  );

  // 3. Point each claimed id at its sequence; give back the claims of what was not stored.
  const recorded: Promise<unknown>[] = [];
  const released: Claim[] = [];
  for (const [i, taken] of claims) {
    const ack = acks[i] as PromiseSettledResult<{ seq: number }>;
    if (ack.status === 'fulfilled') {
      recorded.push(
        link.ids.update(taken.key, String(ack.value.seq), taken.revision).catch((error: unknown) => {
          // The event is in the log and will be delivered; only resuming after its id will fail.
          log.onError(error, `recording the sequence of id "${taken.id}"`);
        }),
      );
    } else released.push(taken);
  }
  // A reusable id is pointed at its newest event, in log order (a batch may repeat it).
  let reused = Promise.resolve();
  drafts.forEach((draft, i) => {
    const ack = acks[i] as PromiseSettledResult<{ seq: number }>;
    if (draft.id === undefined || draft.reuseId !== true || ack.status !== 'fulfilled') return;
    const id = draft.id;
    const key = keyOf(draft.tenant, id);
    reused = reused.then(() =>
      link.ids.put(key, String(ack.value.seq)).then(
        () => {},
        (error: unknown) => log.onError(error, `recording the sequence of id "${id}"`),
      ),
    );
  });
  // Each stored keyed event becomes its slot's latest value, after its ack (not atomic: latest.ts).
  let kept: Promise<void> | undefined;
  if (log.latest !== undefined) {
    const stored: Stored[] = [];
    drafts.forEach((draft, i) => {
      const ack = acks[i] as PromiseSettledResult<{ seq: number }>;
      if (draft.key === undefined || ack.status !== 'fulfilled') return;
      stored.push({ draft, body: bodies[i] as string, seq: ack.value.seq });
    });
    if (stored.length > 0) kept = log.latest.keep(link, stored);
  }
  await Promise.all([...recorded, reused, release(link.ids, released, log.onError), kept]);

  const failed = acks.findIndex((ack) => ack.status === 'rejected');
  if (failed !== -1 && acks.every((ack) => ack.status === 'rejected' && isNoLog(ack.reason))) {
    throw new LogMissing((acks[failed] as PromiseRejectedResult).reason);
  }
  if (failed !== -1) {
    const stored = acks.filter((ack) => ack.status === 'fulfilled').length;
    const reason = (acks[failed] as PromiseRejectedResult).reason;
    // Without atomic batches (nats-server 2.12), what was acknowledged stays in the log.
    const partial = stored > 0 ? ` (${stored} of the ${drafts.length} events were stored)` : '';
    throw unavailable(reason, partial);
  }
  const events = drafts.map((draft, i) =>
    toEvent(draft, String((acks[i] as PromiseFulfilledResult<{ seq: number }>).value.seq)),
  );
  log.saw(Number(events[events.length - 1]?.pos));
  return events;
}
