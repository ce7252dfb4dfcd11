import { badRequest, HeraldError } from './errors.ts';
import type { HubState } from './hub-state.ts';
import type { Principal } from './principal.ts';
import { sameSecret } from './subscriber.ts';
import { checkTemplateCount, type Selector } from './topics.ts';

/**
 * Adds selectors to an open stream, or removes some (seed 004: one connection serves a whole
 * page). Only whoever holds the stream may: the request must carry the stream's secret (sent
 * only on the stream, in `herald.connected`), and come with the same tenant and subject. New
 * selectors take effect for events dispatched from now on; returns the stream's selectors.
 */
export function changeSubscription(
  state: HubState,
  connectionId: string,
  secret: string,
  principal: Principal,
  action: 'subscribe' | 'unsubscribe',
  selectors: readonly Selector[],
  maxSelectors: number,
): string[] {
  const subscriber = state.subscribers.get(connectionId);
  // A wrong secret answers like a stream that does not exist: a guess learns nothing, not even
  // whether the connection id is open here.
  if (subscriber === undefined || subscriber.isClosed || !sameSecret(secret, subscriber.secret)) {
    throw new HeraldError(
      404,
      'connection-not-found',
      `no open stream ${connectionId} on this node; it closed, or it is served by another node`,
    );
  }
  if (
    subscriber.subject !== principal.subject ||
    (subscriber.tenant !== principal.tenant && !principal.admin)
  ) {
    throw new HeraldError(
      403,
      'not-your-stream',
      'only the credential that opened a stream may change its subscriptions',
    );
  }
  const sources = new Set(selectors.map((selector) => selector.source));
  const current = subscriber.selectors;
  const next =
    action === 'subscribe'
      ? [...current, ...selectors.filter((s) => !current.some((t) => t.source === s.source))]
      : current.filter((selector) => !sources.has(selector.source));
  if (next.length > maxSelectors) {
    throw badRequest(
      'too-many-topics',
      `the stream would have ${next.length} topic selectors; the limit is ${maxSelectors}`,
    );
  }
  checkTemplateCount(next);
  // Removed and added again in one synchronous step: no dispatch sees it half changed.
  if (subscriber.indexed) state.index.remove(subscriber);
  subscriber.selectors = next;
  if (subscriber.indexed) state.index.add(subscriber);
  return next.map((selector) => selector.source);
}
