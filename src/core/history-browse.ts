import { badRequest, HeraldError } from './errors.ts';
import type { HeraldEvent } from './event.ts';
import { backwardReaderOf, type Log } from './log.ts';
import { ALL_TENANTS } from './principal.ts';
import { DEFAULT_TYPE } from './protocol/fields.ts';
import { visibleData } from './redaction.ts';
import { anyMatchWithin, nextTurn, type Selector, turnBudget } from './topics.ts';

/**
 * An operator browsing a topic's history (`GET /v1/history`, `herald admin history`): a page of
 * the log's events that a tenant and selectors match, newest first, and where the next page goes
 * on from. Admin only, so private events are shown as an admin's stream would get them (an admin
 * holds every grant); redacted fields stay hidden unless the credential holds their permission,
 * as on a stream: being an admin is not a permission to read what a publisher marked as needing one.
 *
 * The log is shared by every tenant and read from its newest end (`BackwardReading`): a rare
 * topic could make a page walk the whole history, so at most `maxScan` entries are examined per
 * request; past it the page is answered as found, `complete: false`, with a `next` to go on from.
 */

/** What a page asks for. */
export interface HistoryQuery {
  /** The tenant whose events are shown; `*` for every tenant. */
  readonly tenant: string;
  readonly selectors: readonly Selector[];
  /** An event's id (chosen in `tenant`, or a position), or a `next`: only what is older. */
  readonly before?: string | undefined;
  readonly limit: number;
  /** Which redacted fields the caller may see. */
  readonly permissions: readonly string[];
}

/** One event as the page shows it. */
export interface HistoryEntry {
  readonly id: string;
  /** `message` for an event published without a type. */
  readonly type: string;
  /** As published, as text, without the fields the caller holds no permission for. */
  readonly data: string;
  readonly topics: readonly string[];
  readonly key?: string;
  readonly tags?: Readonly<Record<string, string>>;
  readonly private?: true;
  /** Only when browsing every tenant (`*`): whose event it is. */
  readonly tenant?: string;
  /** When the hub accepted it, ISO 8601. */
  readonly time: string;
}

export interface HistoryPage {
  /** Newest first. */
  readonly events: readonly HistoryEntry[];
  /** What to pass as `before` for the older events; absent when the log has none left to examine. */
  readonly next?: string;
  /** False when the scan bound stopped the page before `limit` events were found. */
  readonly complete: boolean;
}

/** How the hub reads for a page. */
export interface HistoryBounds {
  /** The newest position this node has from the log: the first page starts there. */
  readonly head: string;
  /** Entries per read of the log. */
  readonly pageSize: number;
  /** Entries examined per request at most. */
  readonly maxScan: number;
}

export const historyUnsupported = (kind: string) =>
  new HeraldError(
    501,
    'history-unsupported',
    `the ${kind} log cannot be read from its newest end, which browsing its history needs`,
  );

export async function browseHistory(
  log: Log,
  query: HistoryQuery,
  bounds: HistoryBounds,
  signal?: AbortSignal,
): Promise<HistoryPage> {
  const reader = backwardReaderOf(log);
  if (reader === undefined) throw historyUnsupported(log.kind);
  let until = bounds.head;
  let exclusive = false;
  if (query.before !== undefined) {
    const location = await log.locate(query.before, query.tenant);
    if (location.kind === 'unknown') {
      throw badRequest(
        'invalid-before',
        query.tenant === ALL_TENANTS
          ? `before ${JSON.stringify(query.before)} is no position in the log; with tenant=*, give an id the hub assigned, or a next`
          : `before ${JSON.stringify(query.before)} is neither an event id of tenant "${query.tenant}" nor a position in the log`,
        { parameter: 'before' },
      );
    }
    // Expired, or from a log since lost: whatever was older is gone too.
    if (location.kind !== 'found') return { events: [], complete: true };
    until = location.pos;
    exclusive = true;
  }
  const permissions = new Set(query.permissions);
  const found: HistoryEntry[] = [];
  let scanned = 0;
  for (;;) {
    const page = await reader.readBack(until, bounds.pageSize, exclusive);
    if (signal?.aborted === true) return { events: found, complete: false };
    const last = page.length < bounds.pageSize ? page.at(-1) : undefined;
    for (const event of page) {
      if (scanned >= bounds.maxScan) return { events: found, next: until, complete: false };
      scanned++;
      until = event.pos;
      const wants = wanted(event, query);
      if (wants === false || (wants !== true && !(await wants))) continue;
      found.push(entryOf(event, query.tenant, permissions));
      if (found.length >= query.limit) {
        // Full on the oldest retained entry: there is nothing older to go on to.
        if (event === last) return { events: found, complete: true };
        return { events: found, next: until, complete: true };
      }
    }
    // A short page: nothing older is retained.
    if (page.length < bounds.pageSize) return { events: found, complete: true };
    exclusive = true;
  }
}

/**
 * The tenant and selectors, templates matched within the turn's budget as every log reader does
 * (a promise only when the budget ran out: most entries are answered without one).
 */
function wanted(event: HeraldEvent, query: HistoryQuery): boolean | Promise<boolean> {
  if (event.tenant !== query.tenant && query.tenant !== ALL_TENANTS) return false;
  const matched = anyMatchWithin(query.selectors, event.topics, turnBudget());
  return typeof matched === 'number' ? matchLater(event, query, matched) : matched;
}

async function matchLater(event: HeraldEvent, query: HistoryQuery, from: number): Promise<boolean> {
  let matched: boolean | number = from;
  do {
    await nextTurn();
    matched = anyMatchWithin(query.selectors, event.topics, turnBudget(), matched);
  } while (typeof matched === 'number');
  return matched;
}

function entryOf(event: HeraldEvent, tenant: string, permissions: ReadonlySet<string>): HistoryEntry {
  return {
    id: event.id,
    type: event.type ?? DEFAULT_TYPE,
    data: visibleData(event, permissions),
    topics: event.topics,
    ...(event.key === undefined ? {} : { key: event.key }),
    ...(event.tags === undefined ? {} : { tags: event.tags }),
    ...(event.private === true ? { private: true as const } : {}),
    ...(tenant === ALL_TENANTS ? { tenant: event.tenant } : {}),
    time: new Date(event.time).toISOString(),
  };
}
