import type { HeraldEvent } from './event.ts';
import type { Log } from './log.ts';
import { ALL_TENANTS } from './principal.ts';
import type { Subscriber } from './subscriber.ts';
import { anyMatchWithin, nextTurn, turnBudget } from './topics.ts';

/**
 * The log in (after, until], a page of at most `pageSize` events at a time, for replays and polls.
 * `until` is asked again before every page, so a replay whose bound moves on (its live events
 * overflowed) reads on to the new one. Done when a page came short and `until` did not move while
 * the caller handled it.
 */
export async function* logPages(
  log: Log,
  after: string | null,
  until: () => string,
  pageSize: number,
): AsyncGenerator<readonly HeraldEvent[], void, undefined> {
  for (;;) {
    const bound = until();
    const page = await log.read(after, bound, pageSize);
    yield page;
    const last = page[page.length - 1];
    if (last !== undefined) after = last.pos;
    if (page.length < pageSize && bound === until()) return;
  }
}

/**
 * Whether `subscriber` wants an event read back from the log (replays, polls): its tenant, its
 * selectors, its filter and visibility. Its templates are tested against the event's topics
 * within this turn's matching time (`turnBudget`), and the next turns' if it needs more (then the
 * answer is a promise), as fan-out does.
 */
export function wantsFromLog(subscriber: Subscriber, event: HeraldEvent): boolean | Promise<boolean> {
  if (event.tenant !== subscriber.tenant && subscriber.tenant !== ALL_TENANTS) return false;
  const matched = anyMatchWithin(subscriber.selectors, event.topics, turnBudget());
  if (typeof matched === 'number') return wantsLater(subscriber, event, matched);
  return matched && subscriber.accepts(event);
}

async function wantsLater(subscriber: Subscriber, event: HeraldEvent, from: number): Promise<boolean> {
  let selectors = subscriber.selectors;
  let matched: boolean | number = from;
  do {
    await nextTurn();
    if (subscriber.isClosed) return false;
    // Changed meanwhile (`POST /v1/subscriptions`): from the start, with what it holds now.
    if (subscriber.selectors !== selectors) [selectors, matched] = [subscriber.selectors, 0];
    matched = anyMatchWithin(selectors, event.topics, turnBudget(), matched as number);
  } while (typeof matched === 'number');
  return matched && subscriber.accepts(event);
}
