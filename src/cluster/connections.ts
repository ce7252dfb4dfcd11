import { badRequest, HeraldError } from '../core/errors.ts';
import { checkTopic, hasControlCharacter } from '../core/event.ts';
import type { Hub } from '../core/hub.ts';
import { anyMatch } from '../core/topics.ts';
import type { HttpContext } from '../http/context.ts';
import { json } from '../http/replies.ts';
import type { HttpReply, HttpRequest } from '../http/request.ts';
import { jsonBody } from '../http/request-checks.ts';
import type { Gather } from './gather.ts';
import { adminScope, checkedTenant, inScope } from './scope.ts';

/** One open stream, or long poll under way, as `GET /v1/connections` lists it. */
export interface ConnectionRow {
  /**
   * The connection id (as in `herald.connected`; a poll's is new per request): what
   * `POST /v1/connections/disconnect` takes.
   */
  readonly id: string;
  /** The node holding it. */
  readonly node: string;
  readonly tenant: string;
  /** The credential's subject (`sub`), null without one. */
  readonly subject: string | null;
  /** Its selectors: exact topics, URI templates, `*`. */
  readonly topics: readonly string[];
  /** ISO 8601. */
  readonly openedAt: string;
  /** `sse` (Herald's event stream, a mux channel included), `mercure`, or `poll` (a long poll). */
  readonly transport: 'sse' | 'mercure' | 'poll';
  /** Bytes written to it so far (0 for a poll: its answer is written when it ends). */
  readonly bytes: number;
  /** Events waiting in its outbox (0 for a poll). */
  readonly queued: number;
}

/** Which streams a list or a disconnect is about: all the given fields must match. */
export interface ConnectionFilter {
  /** A tenant, or `*` for every tenant (see `adminScope`). */
  readonly tenant: string;
  readonly id?: string | undefined;
  readonly subject?: string | undefined;
  /** Streams whose selectors match this topic. */
  readonly topic?: string | undefined;
}

export const DEFAULT_CONNECTIONS_LIMIT = 100;
/** The most rows one answer holds, every node's together; past it the answer says `truncated`. */
export const MAX_CONNECTIONS_LIMIT = 10_000;
/** The longest reason a disconnect may give. */
const MAX_REASON_LENGTH = 256;

/** The question kinds this file answers on the bus. */
export const LIST_QUESTION = 'connections';
export const DISCONNECT_QUESTION = 'disconnect';

/** This node's streams and long polls under way that `filter` matches, oldest first, at most `limit`. */
export function localConnections(
  hub: Hub,
  node: string,
  filter: ConnectionFilter,
  limit: number,
): { rows: ConnectionRow[]; more: boolean } {
  const rows: ConnectionRow[] = [];
  for (const [connections, polls] of [
    [hub.streams(), false],
    [hub.pollsInFlight(), true],
  ] as const) {
    // Each kind's oldest `limit` and one more, merged below: a poll may be older than the streams
    // opened after it, and `limit` keeps the oldest of both (the cluster's answer is sorted so).
    let taken = 0;
    for (const subscriber of connections) {
      if (!matches(subscriber, filter)) continue;
      if (taken++ > limit) break;
      rows.push({
        id: subscriber.id,
        node,
        tenant: subscriber.tenant,
        subject: subscriber.subject ?? null,
        topics: subscriber.selectors.map((selector) => selector.source),
        openedAt: new Date(subscriber.openedAt).toISOString(),
        transport: polls ? 'poll' : subscriber.systemEvents ? 'sse' : 'mercure',
        // A poll's waiter only wakes it: what it is "written" is never sent as such.
        bytes: polls ? 0 : subscriber.bytesWritten,
        queued: polls ? 0 : subscriber.queuedEvents,
      });
    }
  }
  rows.sort(oldestFirst);
  return rows.length > limit ? { rows: rows.slice(0, limit), more: true } : { rows, more: false };
}

/** By `openedAt`, then `id`: the order of `GET /v1/connections`. */
const oldestFirst = (a: ConnectionRow, b: ConnectionRow): number =>
  a.openedAt < b.openedAt ? -1 : a.openedAt > b.openedAt ? 1 : a.id < b.id ? -1 : 1;

/**
 * Ends this node's streams and long polls under way that `filter` matches, each told why first;
 * returns how many. With `reconnect: false` and no `id`, the polls that start here soon after and
 * match are told too (a tombstone, see `POLL_TOMBSTONE_MS`): a polling client may be between two
 * polls. A poll's id is new per request, so a disconnect by id has no next poll to reach.
 */
export function disconnectLocal(
  hub: Hub,
  filter: ConnectionFilter,
  reason: string,
  reconnect: boolean,
): number {
  const notice = { reason, reconnect };
  const matching = [...hub.streams()].filter((subscriber) => matches(subscriber, filter));
  for (const subscriber of matching) hub.disconnect(subscriber, notice);
  const polls = hub.disconnectPolls(
    (poll) => matches(poll, filter),
    notice,
    // Kept by the tenant it is scoped to: one tenant's many do not push out another's.
    !reconnect && filter.id === undefined ? filter.tenant : undefined,
  );
  return matching.length + polls;
}

function matches(
  subscriber: {
    id: string;
    tenant: string;
    subject: string | undefined;
    selectors: Parameters<typeof anyMatch>[0];
  },
  filter: ConnectionFilter,
): boolean {
  if (!inScope(filter.tenant, subscriber.tenant)) return false;
  if (filter.id !== undefined && subscriber.id !== filter.id) return false;
  if (filter.subject !== undefined && subscriber.subject !== filter.subject) return false;
  return filter.topic === undefined || anyMatch(subscriber.selectors, [filter.topic]);
}

/**
 * A filter as another node sent it over the bus: checked again (anything that can write to the
 * broker can write to the bus), and refused as a whole when malformed.
 */
export function filterFromBus(value: unknown): ConnectionFilter {
  const fields = (typeof value === 'object' && value !== null ? value : {}) as Record<string, unknown>;
  const optional = (name: string) => {
    const field = fields[name];
    if (field === undefined) return undefined;
    if (typeof field !== 'string') throw new Error(`${name} is not a string`);
    return field;
  };
  if (typeof fields.tenant !== 'string') throw new Error('tenant is not a string');
  return {
    tenant: fields.tenant,
    id: optional('id'),
    subject: optional('subject'),
    topic: optional('topic'),
  };
}

const QUERY_PARAMETERS = new Set(['tenant', 'subject', 'topic', 'limit', 'access_token']);

/**
 * `GET /v1/connections?tenant=&subject=&topic=&limit=`: the open streams and long polls under way
 * of every live node that match, oldest first. Admin credentials only (see `adminScope`: a tenant's admin sees its own).
 */
export async function listConnections(
  context: HttpContext,
  request: HttpRequest,
  gather: Gather,
): Promise<HttpReply> {
  const principal = await context.authenticate(request, 'stats');
  const { query } = request;
  const tenant = adminScope(principal, query.get('tenant'), 'listing connections');
  for (const name of query.keys()) {
    if (!QUERY_PARAMETERS.has(name)) {
      throw badRequest(
        'invalid-connection-filter',
        `unknown parameter ${JSON.stringify(name)}: filter connections with tenant, subject, topic and limit`,
        { parameter: name },
      );
    }
  }
  const filter: ConnectionFilter = {
    tenant,
    subject: subjectParameter(query.get('subject')),
    topic: topicParameter(query.get('topic')),
  };
  const limit = limitParameter(query.get('limit'));
  const gathered = await gather.ask<{ rows: ConnectionRow[]; more: boolean }>(LIST_QUESTION, {
    filter,
    limit,
  });
  let rows: ConnectionRow[] = [];
  let truncated = false;
  for (const answer of gathered.answers.values()) {
    rows.push(...answer.rows);
    truncated ||= answer.more;
  }
  rows.sort(oldestFirst);
  if (rows.length > limit) {
    rows = rows.slice(0, limit);
    truncated = true;
  }
  return json(200, {
    connections: rows,
    truncated,
    nodes: [...gathered.answers.keys()],
    incomplete: gathered.incomplete,
  });
}

/**
 * `POST /v1/connections/disconnect` `{id?, subject?, tenant?, reason?, reconnect?}`: every live
 * node ends its streams and long polls that match (all the given fields), each told why first
 * with `herald.disconnect` (a poll: its answer's `disconnect`). An `id` that no node holds is `404 connection-not-found`.
 */
export async function disconnectConnections(
  context: HttpContext,
  request: HttpRequest,
  gather: Gather,
): Promise<HttpReply> {
  const principal = await context.authenticate(request, 'stats');
  // A cookie rides along with any request the browser makes: only pages we trust may act with it.
  if (principal.via === 'cookie')
    context.cors.checkCookieOrigin(request.header('origin'), request.header('host'));
  if (!principal.admin) adminScope(principal, undefined, 'disconnecting');
  const body = await jsonBody(request, context.settings.maxBodyBytes);
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw invalidDisconnect(
      'the body must be a JSON object: {"id"|"subject"|"tenant", "reason"?, "reconnect"?}',
    );
  }
  const fields = body as Record<string, unknown>;
  for (const name of Object.keys(fields)) {
    if (!['id', 'subject', 'tenant', 'reason', 'reconnect'].includes(name)) {
      throw invalidDisconnect(
        `unknown field ${JSON.stringify(name)}: give id, subject or tenant, and reason, reconnect`,
      );
    }
  }
  if (fields.id === undefined && fields.subject === undefined && fields.tenant === undefined) {
    throw invalidDisconnect(
      'say which connections to end: id (one connection), subject, or tenant (all of its)',
    );
  }
  const id = stringField(fields.id, 'id', 128);
  const subject = stringField(fields.subject, 'subject', 256);
  const tenant = adminScope(
    principal,
    fields.tenant === undefined ? undefined : checkedTenant(fields.tenant),
    'disconnecting',
  );
  const reason = stringField(fields.reason, 'reason', MAX_REASON_LENGTH) ?? '';
  if (fields.reconnect !== undefined && typeof fields.reconnect !== 'boolean') {
    throw invalidDisconnect('reconnect must be true (the client may come back, the default) or false');
  }
  const reconnect = fields.reconnect !== false;
  const filter: ConnectionFilter = { tenant, id, subject };
  const gathered = await gather.ask<number>(DISCONNECT_QUESTION, { filter, reason, reconnect });
  let disconnected = 0;
  for (const count of gathered.answers.values()) disconnected += typeof count === 'number' ? count : 0;
  if (id !== undefined && disconnected === 0) {
    throw new HeraldError(
      404,
      'connection-not-found',
      gathered.incomplete.length === 0
        ? `no node holds an open connection ${JSON.stringify(id)} that these credentials may end`
        : `no node that answered holds connection ${JSON.stringify(id)}; ${gathered.incomplete.join(', ')} did not answer in time: retry`,
    );
  }
  return json(200, { disconnected, nodes: [...gathered.answers.keys()], incomplete: gathered.incomplete });
}

const invalidDisconnect = (detail: string) => badRequest('invalid-disconnect', detail);

function stringField(value: unknown, name: string, maxLength: number): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value.length > maxLength || hasControlCharacter(value)) {
    throw invalidDisconnect(
      `${name} must be a string of at most ${maxLength} characters without control characters`,
    );
  }
  return value;
}

function subjectParameter(value: string | null): string | undefined {
  if (value === null) return undefined;
  if (value.length === 0 || value.length > 256 || hasControlCharacter(value)) {
    throw badRequest(
      'invalid-connection-filter',
      'subject must be a credential subject (1 to 256 characters, no control character)',
      { parameter: 'subject' },
    );
  }
  return value;
}

function topicParameter(value: string | null): string | undefined {
  if (value === null) return undefined;
  try {
    checkTopic(value);
  } catch (error) {
    throw badRequest(
      'invalid-connection-filter',
      `topic must be one topic (the streams whose selectors match it are listed): ${error instanceof HeraldError ? error.detail : String(error)}`,
      { parameter: 'topic' },
    );
  }
  return value;
}

function limitParameter(value: string | null): number {
  if (value === null || value === '') return DEFAULT_CONNECTIONS_LIMIT;
  const number = Number(value);
  if (!Number.isInteger(number) || number < 1 || number > MAX_CONNECTIONS_LIMIT) {
    throw badRequest('invalid-limit', `limit must be a whole number from 1 to ${MAX_CONNECTIONS_LIMIT}`, {
      parameter: 'limit',
    });
  }
  return number;
}
