import { badRequest, HeraldError } from './errors.ts';
import { changeFilter, type FilterAction } from './filters.ts';
import type { HubState } from './hub-state.ts';
import type { Principal } from './principal.ts';
import { sameSecret } from './subscriber.ts';
import { checkTemplateCount, type Selector } from './topics.ts';

/** What `POST /v1/subscriptions` asks of an open stream; a part left out stays as it is. */
export interface SubscriptionChange {
  readonly action: FilterAction;
  readonly selectors?: readonly Selector[] | undefined;
  readonly types?: readonly string[] | undefined;
  readonly tags?: ReadonlyMap<string, readonly string[]> | undefined;
}

/** What an open stream receives after a change: `types` empty for every type, `tags` empty for any tag. */
export interface SubscriptionState {
  readonly topics: string[];
  readonly types: string[];
  readonly tags: Record<string, string[]>;
}

/**
 * Changes the topics, types and tags of an open stream (seed 004: one connection serves a whole
 * page, and changes its event types on the fly). Only whoever holds the stream may: the request
 * must carry the stream's secret (sent only on the stream, in `herald.connected`), and come with
 * the same tenant and subject. Everything is checked before anything is assigned, so a refusal
 * leaves the stream as it was; the change applies from the next dispatched event (events already
 * queued for the stream stay).
 */
export function changeSubscription(
  state: HubState,
  connectionId: string,
  secret: string,
  principal: Principal,
  change: SubscriptionChange,
  maxSelectors: number,
): SubscriptionState {
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
  const current = subscriber.selectors;
  const next =
    change.selectors === undefined ? current : changedSelectors(current, change.action, change.selectors);
  if (next !== current) {
    if (next.length > maxSelectors) {
      throw badRequest(
        'too-many-topics',
        `the stream would have ${next.length} topic selectors; the limit is ${maxSelectors}`,
      );
    }
    checkTemplateCount(next);
  }
  const filter = changeFilter(subscriber.filter, change.action, change.types, change.tags);
  // From here on nothing throws. The filter is one assignment, read per event; the selectors are
  // removed and added again in one synchronous step: no dispatch sees either half changed.
  subscriber.filter = filter;
  if (next !== current) {
    if (subscriber.indexed) state.index.remove(subscriber);
    subscriber.selectors = next;
    if (subscriber.indexed) state.index.add(subscriber);
    state.options.lifecycle?.changed?.(subscriber, current);
  }
  return {
    topics: next.map((selector) => selector.source),
    types: [...(filter?.types ?? [])],
    tags: Object.fromEntries([...(filter?.tags ?? [])].map(([name, values]) => [name, [...values]])),
  };
}

function changedSelectors(
  current: readonly Selector[],
  action: FilterAction,
  selectors: readonly Selector[],
): readonly Selector[] {
  const unique = selectors.filter((s, i) => selectors.findIndex((t) => t.source === s.source) === i);
  if (action === 'set') return unique;
  if (action === 'subscribe') {
    return [...current, ...unique.filter((s) => !current.some((t) => t.source === s.source))];
  }
  const sources = new Set(selectors.map((selector) => selector.source));
  return current.filter((selector) => !sources.has(selector.source));
}
