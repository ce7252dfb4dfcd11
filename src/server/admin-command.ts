import { maskUrl } from './masking.ts';
import { refused, unreachable } from './messages.ts';

/**
 * `herald admin …`: what an operator does to a running hub with admin credentials. `history`
 * prints a topic's events, newest first, one JSON line each, following the hub's pages until it
 * has printed `--limit` of them, and says on stderr where to go on from when older ones remain.
 */

export interface AdminHistoryOptions {
  readonly url: string;
  readonly topic: readonly string[];
  readonly before?: string;
  /** How many events to print at most. */
  readonly limit: number;
  readonly tenant?: string;
  readonly token?: string;
  readonly output?: (line: string) => void;
  readonly notice?: (line: string) => void;
}

export const DEFAULT_ADMIN_HISTORY_LIMIT = 100;
/** The most one request may ask the hub for (`GET /v1/history`'s `limit`). */
const MAX_PAGE = 1000;

interface Page {
  readonly events: readonly Record<string, unknown>[];
  readonly next?: string;
  readonly complete?: boolean;
}

export async function adminHistory(options: AdminHistoryOptions): Promise<void> {
  const output = options.output ?? ((line) => process.stdout.write(`${line}\n`));
  const notice = options.notice ?? ((line) => process.stderr.write(`${line}\n`));
  let before = options.before;
  let printed = 0;
  while (printed < options.limit) {
    const page = await historyPage(options, before, Math.min(MAX_PAGE, options.limit - printed));
    for (const event of page.events) {
      output(JSON.stringify({ ...event, data: parseData(event.data) }));
      printed++;
    }
    before = page.next;
    if (before === undefined) return;
  }
  if (before !== undefined) notice(`herald: older events remain; go on with --before ${before}`);
}

async function historyPage(
  options: AdminHistoryOptions,
  before: string | undefined,
  limit: number,
): Promise<Page> {
  const url = new URL('/v1/history', options.url);
  for (const topic of options.topic) url.searchParams.append('topic', topic);
  if (before !== undefined) url.searchParams.set('before', before);
  url.searchParams.set('limit', String(limit));
  if (options.tenant !== undefined) url.searchParams.set('tenant', options.tenant);
  let response: Response;
  let text: string;
  try {
    response = await fetch(url, {
      headers: options.token ? { authorization: `Bearer ${options.token}` } : {},
    });
    text = await response.text();
  } catch (error) {
    throw unreachable(url, error);
  }
  const body = parseJson(text);
  if (!response.ok) {
    const isProblem = typeof body?.detail === 'string';
    throw refused(
      url,
      response.status,
      isProblem ? String(body?.detail) : response.statusText || 'no detail',
      isProblem,
    );
  }
  if (!Array.isArray(body?.events)) {
    throw new Error(
      `${maskUrl(String(url))} answered ${response.status} without events: is --url (HERALD_URL) a Herald hub's address?`,
    );
  }
  return body as unknown as Page;
}

function parseData(data: unknown): unknown {
  if (typeof data !== 'string') return data;
  try {
    return JSON.parse(data);
  } catch {
    return data;
  }
}

function parseJson(text: string): Record<string, unknown> | undefined {
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}
