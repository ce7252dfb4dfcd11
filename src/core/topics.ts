import { badRequest } from './errors.ts';
import { checkTopic } from './event.ts';
import { compileUriTemplate, type UriTemplate } from './uri-template.ts';

/**
 * What a subscriber (or a grant) asks for: an exact topic, `*` for everything in the tenant, or
 * an RFC 6570 URI template such as `dealers/{dealerId}/scores`.
 */
export type Selector =
  | { readonly kind: 'exact'; readonly source: string }
  | { readonly kind: 'all'; readonly source: '*' }
  | { readonly kind: 'template'; readonly source: string; readonly matcher: CachedTemplate };

/**
 * What template matching has cost in this process since it started: how many topics went through
 * a template's matcher, and its work (`UriTemplate.weight` × topic length, about a pass over one
 * character each). Callers that must bound what they make the event loop do compare it before and
 * after; tests read it to assert the amount of work rather than a time.
 */
export const templateMatching = { runs: 0, work: 0 };

/** A compiled template with a bounded memo of the topics it was asked about. */
export class CachedTemplate {
  readonly template: UriTemplate;
  private readonly memo = new Map<string, boolean>();

  constructor(template: UriTemplate) {
    this.template = template;
  }

  test(topic: string): boolean {
    let hit = this.memo.get(topic);
    if (hit === undefined) {
      const { prefix, suffix, minLength } = this.template;
      // The literal ends and length rule out most topics with a few compares, before the matcher runs.
      hit =
        topic.length >= minLength && topic.startsWith(prefix) && topic.endsWith(suffix) && this.run(topic);
      if (this.memo.size >= MEMO_LIMIT) this.memo.clear();
      this.memo.set(topic, hit);
    }
    return hit;
  }

  private run(topic: string): boolean {
    templateMatching.runs++;
    templateMatching.work += this.template.weight * (topic.length + 1);
    return this.template.test(topic);
  }
}

/**
 * How long a caller lets template matching run before it must give the event loop back. A lookup
 * that runs out stops where it is and goes on from there when asked again, so no call runs more
 * than one template's match past its time. The clock is read once per CHECK_WORK units of work
 * (`templateMatching.work`), not per template: a short topic's candidates cost less than a clock read.
 */
export class MatchBudget {
  private readonly deadline: number;
  private readonly clock: () => number;
  private unchecked = 0;
  private over = false;

  constructor(ms: number, clock: () => number = () => performance.now()) {
    this.clock = clock;
    this.deadline = clock() + ms;
  }

  /** Counts `work` done against the budget. */
  charge(work: number): void {
    this.unchecked += work;
    if (this.unchecked < CHECK_WORK) return;
    this.unchecked = 0;
    if (this.clock() >= this.deadline) this.over = true;
  }

  /** True once the time is up. */
  get spent(): boolean {
    return this.over;
  }
}

/** 5 µs of matching on average on a 2-core machine of 2024, 100 µs at worst (a unit costs 0.2 to 5 ns). */
const CHECK_WORK = 20_000;

/**
 * What the hub may spend matching templates in one turn of its event loop before it lets other
 * work in (sockets, timers, `/healthz`): well under the 50 ms a turn may take, as fan-out and
 * writes come on top.
 */
export const MATCH_MS_PER_TURN = 10;

const later: (fn: () => void) => void =
  typeof setImmediate === 'function' ? (fn) => setImmediate(fn) : (fn) => setTimeout(fn, 0);
let turn: MatchBudget | undefined;

/**
 * This turn's matching time, MATCH_MS_PER_TURN, shared by everything that matches templates (the
 * fan-out of live events, every replay and every poll): separate budgets would add up within one
 * turn. It is renewed once the event loop has gone round (a callback queued when it was made runs
 * first among those queued after it), so whoever finds it spent waits for `nextTurn()`.
 */
export function turnBudget(): MatchBudget {
  if (turn === undefined) {
    turn = new MatchBudget(MATCH_MS_PER_TURN);
    later(() => {
      turn = undefined;
    });
  }
  return turn;
}

/** Resolves in a later turn of the event loop, after sockets and timers had theirs, with `turnBudget()` renewed. */
export const nextTurn = (): Promise<void> => new Promise((resolve) => later(resolve));

/**
 * URI templates in one subscription. Each is tested against every new topic its index cannot rule
 * out, so it is templates, not exact topics, that make a stream cost something at publish time
 * (and on every event of a replay): a dashboard's few templates are far below, while a stream can
 * no longer ask the hub to run thousands of matchers per topic. Exact topics are map lookups and
 * only `maxTopicsPerSubscription` bounds them.
 */
export const MAX_TEMPLATES_PER_STREAM = 32;

const MEMO_LIMIT = 4096;
const COMPILED_LIMIT = 10_000;
// Compiled templates are shared by every subscriber that asks for the same one.
const compiled = new Map<string, Selector>();

export const ALL: Selector = { kind: 'all', source: '*' };

/**
 * Parses a selector. A selector without `{` is never parsed as a template: exact topics may
 * contain any other character.
 */
export function parseSelector(source: string): Selector {
  if (source === '*') return ALL;
  checkTopic(source);
  if (!source.includes('{')) return { kind: 'exact', source };
  let selector = compiled.get(source);
  if (selector === undefined) {
    selector = { kind: 'template', source, matcher: new CachedTemplate(compileUriTemplate(source)) };
    if (compiled.size >= COMPILED_LIMIT) compiled.clear();
    compiled.set(source, selector);
  }
  return selector;
}

export function parseSelectors(sources: readonly string[], limit: number, what = 'topic'): Selector[] {
  if (sources.length > limit) {
    throw badRequest('too-many-topics', `${sources.length} ${what} selectors given; the limit is ${limit}`);
  }
  const selectors = sources.map((source) => parseSelector(source));
  checkTemplateCount(selectors);
  return selectors;
}

/**
 * Refuses (400 `too-many-templates`) a stream's selectors holding more than
 * MAX_TEMPLATES_PER_STREAM URI templates: for a new stream, and for what a stream would hold after
 * `POST /v1/subscriptions` adds to it.
 */
export function checkTemplateCount(selectors: readonly Selector[]): void {
  let templates = 0;
  for (const selector of selectors) if (selector.kind === 'template') templates++;
  if (templates > MAX_TEMPLATES_PER_STREAM) {
    throw badRequest(
      'too-many-templates',
      `${templates} URI templates in one subscription; the limit is ${MAX_TEMPLATES_PER_STREAM} ` +
        '(exact topics and * do not count): select with fewer, broader templates, or with tag filters',
      { limit: MAX_TEMPLATES_PER_STREAM, parameter: 'topic' },
    );
  }
}

export function selectorMatches(selector: Selector, topic: string): boolean {
  switch (selector.kind) {
    case 'exact':
      return selector.source === topic;
    case 'all':
      return true;
    case 'template':
      return selector.matcher.test(topic);
  }
}

/** True when some selector matches some topic. */
export function anyMatch(selectors: readonly Selector[], topics: readonly string[]): boolean {
  for (const selector of selectors) {
    for (const topic of topics) if (selectorMatches(selector, topic)) return true;
  }
  return false;
}

/** What a selector costs to consider beyond its matcher's own work. */
const SELECTOR_WORK = 16;

/**
 * `anyMatch` within `budget`, for reading the log back (replays, polls), where a stream's
 * templates are tested against every event's topics: true or false, or, when the budget ran out
 * first, the number of (selector, topic) pairs already ruled out, to pass back as `from` in a
 * later turn (see `turnBudget`) with the same selectors and topics.
 */
export function anyMatchWithin(
  selectors: readonly Selector[],
  topics: readonly string[],
  budget: MatchBudget,
  from = 0,
): boolean | number {
  const perSelector = topics.length;
  for (let pair = from; pair < selectors.length * perSelector; pair++) {
    if (budget.spent) return pair;
    const selector = selectors[Math.floor(pair / perSelector)] as Selector;
    const topic = topics[pair % perSelector] as string;
    if (selector.kind !== 'template') {
      if (selectorMatches(selector, topic)) return true;
      continue;
    }
    const before = templateMatching.work;
    const hit = selector.matcher.test(topic);
    budget.charge(templateMatching.work - before + SELECTOR_WORK);
    if (hit) return true;
  }
  return false;
}
