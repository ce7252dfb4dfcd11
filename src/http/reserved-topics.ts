import { HeraldError } from '../core/errors.ts';

/**
 * Topics with this in them are the hub's own: Mercure's subscription events, which every node
 * folds into the list of active subscriptions. A publisher that could write one would forge that
 * list, so neither the native nor the Mercure publish route takes them, whether Mercure is on or
 * not (a hub may turn it on later over the same history).
 */
export const RESERVED_TOPIC_PART = '/.well-known/mercure';

/** Refuses (403) a topic in the reserved namespace, naming it. */
export function refuseReservedTopic(topic: unknown): void {
  if (typeof topic === 'string' && topic.includes(RESERVED_TOPIC_PART)) {
    throw new HeraldError(
      403,
      'reserved-topic',
      `topic ${JSON.stringify(topic)} is in the hub's reserved ${RESERVED_TOPIC_PART} namespace; publish to another topic`,
    );
  }
}

/** The same for every topic of every event of a publish body (one event or an array). */
export function refuseReservedTopics(body: unknown): void {
  for (const event of Array.isArray(body) ? body : [body]) {
    const topic = (event as { topic?: unknown } | null)?.topic;
    if (Array.isArray(topic)) for (const one of topic) refuseReservedTopic(one);
    else refuseReservedTopic(topic);
  }
}
