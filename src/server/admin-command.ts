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

/** Where `herald admin nodes|connections|disconnect|presence` go, and how they print. */
export interface AdminClusterOptions {
  readonly url: string;
  readonly token?: string;
  readonly output?: (line: string) => void;
  readonly notice?: (line: string) => void;
}

/** `herald admin nodes`: one JSON line per live node of the cluster, with its figures. */
export async function adminNodes(options: AdminClusterOptions): Promise<void> {
  const body = await adminRequest(options, 'GET', '/v1/nodes', {}, 'nodes');
  const print = printer(options);
  for (const node of body.nodes as unknown[]) print(JSON.stringify(node));
}

/** `herald admin connections`: one JSON line per open stream on any node, oldest first. */
export async function adminConnections(
  options: AdminClusterOptions & {
    readonly tenant?: string;
    readonly subject?: string;
    readonly topic?: string;
    readonly limit?: number;
  },
): Promise<void> {
  const query: Record<string, string> = {};
  for (const name of ['tenant', 'subject', 'topic', 'limit'] as const) {
    if (options[name] !== undefined) query[name] = String(options[name]);
  }
  const body = await adminRequest(options, 'GET', '/v1/connections', query, 'connections');
  const print = printer(options);
  for (const row of body.connections as unknown[]) print(JSON.stringify(row));
  const notice = noticer(options);
  if (body.truncated === true) notice('herald: more connections match; narrow the filter or raise --limit');
  incompleteNotice(notice, body.incomplete);
}

/** `herald admin disconnect`: ends the matching streams on every node; prints the answer. */
export async function adminDisconnect(
  options: AdminClusterOptions & {
    readonly id?: string;
    readonly subject?: string;
    readonly tenant?: string;
    readonly reason?: string;
    readonly reconnect?: boolean;
  },
): Promise<void> {
  const { id, subject, tenant, reason, reconnect } = options;
  const body = await adminRequest(
    options,
    'POST',
    '/v1/connections/disconnect',
    { id, subject, tenant, reason, reconnect },
    'disconnected',
  );
  printer(options)(JSON.stringify(body));
  incompleteNotice(noticer(options), body.incomplete);
}

/** `herald admin presence`: who is on a topic across the cluster, as one JSON object. */
export async function adminPresence(
  options: AdminClusterOptions & { readonly topic: string; readonly tenant?: string },
): Promise<void> {
  const query: Record<string, string> = { topic: options.topic };
  if (options.tenant !== undefined) query.tenant = options.tenant;
  const body = await adminRequest(options, 'GET', '/v1/presence', query, 'connections');
  printer(options)(JSON.stringify(body));
  incompleteNotice(noticer(options), body.incomplete);
}

const printer = (options: AdminClusterOptions) =>
  options.output ?? ((line: string) => process.stdout.write(`${line}\n`));
const noticer = (options: AdminClusterOptions) =>
  options.notice ?? ((line: string) => process.stderr.write(`${line}\n`));

function incompleteNotice(notice: (line: string) => void, incomplete: unknown): void {
  if (Array.isArray(incomplete) && incomplete.length > 0) {
    notice(`herald: ${incomplete.join(', ')} did not answer in time: their streams are not in this answer`);
  }
}

/**
 * One admin request to the hub: the answer's JSON body, or an error that names the URL and the
 * hub's detail. `expected` is a field every good answer has, to tell a Herald hub from another server.
 */
async function adminRequest(
  options: AdminClusterOptions,
  method: 'GET' | 'POST',
  path: string,
  fields: Record<string, unknown>,
  expected: string,
): Promise<Record<string, unknown>> {
  const url = new URL(path, options.url);
  const defined = Object.fromEntries(Object.entries(fields).filter(([, value]) => value !== undefined));
  if (method === 'GET')
    for (const [name, value] of Object.entries(defined)) url.searchParams.set(name, String(value));
  const headers: Record<string, string> = options.token ? { authorization: `Bearer ${options.token}` } : {};
  if (method === 'POST') headers['content-type'] = 'application/json';
  let response: Response;
  let text: string;
  try {
    response = await fetch(url, {
      method,
      headers,
      ...(method === 'POST' ? { body: JSON.stringify(defined) } : {}),
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
  if (body === undefined || !(expected in body)) {
    throw new Error(
      `${maskUrl(String(url))} answered ${response.status} without ${expected}: is --url (HERALD_URL) a Herald hub's address?`,
    );
  }
  return body;
}
