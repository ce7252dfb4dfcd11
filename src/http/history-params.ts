import { badRequest } from '../core/errors.ts';
import type { RewindLimits } from '../core/hub-state.ts';
import { latestDisabled, snapshotNeedsTenant } from '../core/latest.ts';
import { ALL_TENANTS } from '../core/principal.ts';
import type { HistoryStart } from '../core/subscriber.ts';

/**
 * The history a new stream or first poll asks to start with: `rewind=N` (the last N matching
 * events), `since=<time or duration>`, both (the last N not older than since), or
 * `snapshot=latest` (the latest event of every key). The caller reads them only when there is no
 * resume point: a `Last-Event-ID` wins and they are not even checked.
 */

export interface HistoryBounds {
  readonly rewind: RewindLimits;
  /** Whether the log keeps latest values (`snapshot=latest`). */
  readonly keepsLatest: boolean;
}

const UNITS_MS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const DURATION = /^(\d{1,15})(ms|s|m|h|d)$/;
/** An ISO 8601 date-time, its zone apart. */
const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?/i;
const ZONE = /(Z|[+-]\d{2}:?\d{2})$/i;
const MAX_SINCE_LENGTH = 64;
/** Epoch milliseconds below this (1973) are far likelier a duration without its unit. */
const EPOCH_MS_FLOOR = 1e11;
const SINCE_FORMS =
  'since must be an ISO time with a zone (2025-05-01T10:00:00Z), epoch milliseconds or a duration (5m)';

/** What the query asks to start with, checked against the hub's bounds; undefined for nothing. */
export function historyStartOf(
  query: URLSearchParams,
  tenant: string,
  bounds: HistoryBounds,
  now: number,
): HistoryStart | undefined {
  const rewind = once(query, 'rewind', 'invalid-rewind');
  const since = once(query, 'since', 'invalid-since');
  const snapshot = once(query, 'snapshot', 'invalid-snapshot');
  if (snapshot !== undefined) {
    if (snapshot !== 'latest') {
      throw badRequest('invalid-snapshot', `snapshot must be latest, not ${JSON.stringify(snapshot)}`);
    }
    if (rewind !== undefined || since !== undefined) {
      throw badRequest('invalid-snapshot', 'snapshot=latest cannot be combined with rewind or since');
    }
    if (tenant === ALL_TENANTS) throw snapshotNeedsTenant();
    if (!bounds.keepsLatest) throw latestDisabled();
    return { kind: 'latest' };
  }
  if (rewind === undefined && since === undefined) return undefined;
  const { maxEvents } = bounds.rewind;
  const after = since === undefined ? undefined : sinceOf(since, bounds.rewind.maxAgeMs, now);
  if (rewind === undefined) return { kind: 'rewind', count: maxEvents, since: after, capped: true };
  return { kind: 'rewind', count: rewindOf(rewind, maxEvents), since: after };
}

/** A parameter given at most once: the history a request asks for is never ambiguous. */
function once(
  query: URLSearchParams,
  name: 'rewind' | 'since' | 'snapshot',
  code: 'invalid-rewind' | 'invalid-since' | 'invalid-snapshot',
): string | undefined {
  const values = query.getAll(name);
  if (values.length > 1) throw badRequest(code, `give ${name} once; it was given ${values.length} times`);
  return values[0];
}

function rewindOf(value: string, max: number): number {
  if (!/^\d{1,16}$/.test(value)) {
    throw badRequest(
      'invalid-rewind',
      `rewind must be a whole number from 0 to ${max}, not ${JSON.stringify(value.slice(0, 32))}`,
    );
  }
  const count = Number(value);
  if (count > max) throw badRequest('invalid-rewind', `rewind is ${count}; the limit is ${max}`);
  return count;
}

/** `since` as ms since the epoch. A future time is taken: it gives no history (clocks drift). */
function sinceOf(value: string, maxAgeMs: number, now: number): number {
  if (value.length > MAX_SINCE_LENGTH) {
    throw badRequest('invalid-since', `since is ${value.length} characters; ${SINCE_FORMS}`);
  }
  let since: number;
  const duration = DURATION.exec(value);
  if (duration !== null) {
    since = now - Number(duration[1]) * (UNITS_MS[duration[2] as string] as number);
  } else if (/^\d{1,16}$/.test(value)) {
    since = Number(value);
    if (since < EPOCH_MS_FLOOR) {
      throw badRequest(
        'invalid-since',
        `since=${value} looks like a duration: add a unit (${value}s); a bare number is epoch milliseconds`,
      );
    }
  } else if (ISO_TIME.test(value)) {
    if (!ZONE.test(value)) {
      throw badRequest(
        'invalid-since',
        `since=${value} has no zone: add Z or an offset (${value}Z), as the hub's clock and the client's may be in different zones`,
      );
    }
    since = Date.parse(value);
    if (!Number.isFinite(since)) throw badRequest('invalid-since', `since=${value} is not a valid time`);
  } else {
    throw badRequest('invalid-since', `${SINCE_FORMS}, not ${JSON.stringify(value)}`);
  }
  if (since < now - maxAgeMs) {
    throw badRequest(
      'invalid-since',
      `since reaches back ${spoken(now - since)}; the limit is ${spoken(maxAgeMs)} (the history's max age)`,
    );
  }
  return since;
}

/** A span as a person reads it, in its largest unit (days from two on): `3 d`, `24 h`, `1.5 h`. */
function spoken(ms: number): string {
  for (const [unit, size] of [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['min', 60_000],
    ['s', 1000],
  ] as const) {
    if (ms >= (unit === 'd' ? 2 * size : size)) return `${Math.round((ms / size) * 10) / 10} ${unit}`;
  }
  return `${ms} ms`;
}
