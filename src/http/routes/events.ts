import { badRequest, HeraldError } from '../../core/errors.ts';
import type { Principal } from '../../core/principal.ts';
import { parseSelectors } from '../../core/topics.ts';
import type { HttpContext } from '../context.ts';
import { queryFilter } from '../filter-params.ts';
import { headerText } from '../header-text.ts';
import { historyStartOf } from '../history-params.ts';
import { openMux } from '../mux.ts';
import { json, SSE_HEADERS } from '../replies.ts';
import type { HttpReply, HttpRequest } from '../request.ts';
import { checkSelectorLengths, nonEmpty, streamable } from '../request-checks.ts';

/**
 * `GET /v1/events`: an event stream; `GET /v1/events/poll`: the same subscription as JSON batches.
 * Either may start from history (`rewind`, `since`, `snapshot`) when it has nothing to resume from.
 */

export async function subscribe(context: HttpContext, request: HttpRequest): Promise<HttpReply> {
  const principal = await context.authenticate(request, 'subscribe');
  if (request.query.has('mux')) return muxStream(context, request, principal);
  const subscription = await subscriptionOf(context, request, principal);
  // Counted across nodes (cluster scope): a client that leaves meanwhile gets `discard`.
  const release = await context.limits.reserveStream(
    request.remoteAddress ?? '',
    principal.subject,
    subscription.tenant,
  );
  const withRelease = { ...subscription, onClose: release, requestId: request.requestId };
  return {
    kind: 'stream',
    headers: SSE_HEADERS,
    open(sink) {
      try {
        return context.hub.subscribe(withRelease, sink);
      } catch (error) {
        release();
        throw error;
      }
    },
    discard: release,
  };
}

/** What a channel asks for (`POST /v1/channels`), never the mux stream that carries it. */
const CHANNEL_PARAMETERS = ['topic', 'type', 'rewind', 'since', 'snapshot'];

/**
 * `GET /v1/events?mux=1`: one stream that carries channels, each a subscription of its own opened
 * with `POST /v1/channels` (see ../mux.ts). It counts as a stream for the limits, as each of its
 * channels does; `Last-Event-ID` is not its to use: each channel resumes from its own.
 */
async function muxStream(
  context: HttpContext,
  request: HttpRequest,
  principal: Principal,
): Promise<HttpReply> {
  const { query } = request;
  const mux = query.getAll('mux');
  if (mux.length !== 1 || mux[0] !== '1') {
    throw badRequest('invalid-channel', `mux must be 1, given once, not ${JSON.stringify(mux.join(','))}`);
  }
  const selecting =
    CHANNEL_PARAMETERS.find((name) => query.has(name)) ??
    [...query.keys()].find((name) => name.startsWith('tag.'));
  if (selecting !== undefined) {
    throw badRequest(
      'invalid-channel',
      `a mux stream selects nothing itself: give ${selecting} to a channel it carries (POST /v1/channels)`,
    );
  }
  const tenant = watchedTenant(principal, query.get('tenant'));
  await streamable(context.hub, context.log);
  const release = await context.limits.reserveStream(request.remoteAddress ?? '', principal.subject, tenant);
  const subscription = {
    tenant,
    selectors: [],
    grants: principal.subscribe,
    permissions: principal.permissions,
    subject: principal.subject,
    expiresAt: principal.expiresAt,
    onClose: release,
    requestId: request.requestId,
  };
  return {
    kind: 'stream',
    headers: SSE_HEADERS,
    open(sink) {
      try {
        return openMux(context.hub, subscription, sink);
      } catch (error) {
        release();
        throw error;
      }
    },
    discard: release,
  };
}

/** `GET /v1/events/poll`: the same subscription as a stream, answered as a JSON batch. */
export async function poll(context: HttpContext, request: HttpRequest): Promise<HttpReply> {
  const principal = await context.authenticate(request, 'subscribe');
  const subscription = await subscriptionOf(context, request, principal, {
    after: request.query.get('after'),
  });
  const wait = numberParameter(
    request.query.get('wait'),
    'wait',
    0,
    MAX_POLL_WAIT_SEC,
    DEFAULT_POLL_WAIT_SEC,
  );
  const limit = numberParameter(request.query.get('limit'), 'limit', 1, MAX_POLL_LIMIT, DEFAULT_POLL_LIMIT);
  return json(200, await context.hub.poll(subscription, wait * 1000, limit, request.signal));
}

const DEFAULT_POLL_WAIT_SEC = 25;
const MAX_POLL_WAIT_SEC = 60;
const DEFAULT_POLL_LIMIT = 100;
const MAX_POLL_LIMIT = 1000;

export function numberParameter(
  value: string | null,
  name: 'wait' | 'limit',
  min: number,
  max: number,
  fallback: number,
): number {
  if (value === null || value === '') return fallback;
  const number = Number(value);
  if (!Number.isInteger(number) || number < min || number > max) {
    throw badRequest(`invalid-${name}`, `${name} must be a whole number from ${min} to ${max}`);
  }
  return number;
}

/**
 * What a stream (or a poll) asks for: topics, filters, where to resume or else what history to
 * start with. The header wins over the query for the resume point: EventSource sets it on
 * reconnect, while the query holds what the page had at load. `resume: false` (`/v1/latest`)
 * reads neither.
 */
export async function subscriptionOf(
  context: HttpContext,
  request: Pick<HttpRequest, 'query' | 'header'>,
  principal: Principal,
  { after, resume = true }: { readonly after?: string | null; readonly resume?: boolean } = {},
) {
  const { query } = request;
  const { maxSelectorLength, maxTopicsPerSubscription } = context.settings;
  const topics = [...new Set(query.getAll('topic'))];
  if (topics.length === 0) {
    throw badRequest(
      'topic-required',
      'topic is required: add ?topic=<topic or URI template> (repeatable), e.g. ?topic=dealers/{dealerId}/scores',
    );
  }
  checkSelectorLengths(topics, maxSelectorLength);
  const selectors = parseSelectors(topics, maxTopicsPerSubscription);
  const filter = queryFilter(query);
  const lastEventId = resume
    ? (nonEmpty(after) ??
      nonEmpty(headerText(request.header('last-event-id'))) ??
      nonEmpty(query.get('lastEventId')) ??
      nonEmpty(query.get('lastEventID')))
    : undefined;
  const tenant = watchedTenant(principal, query.get('tenant'));
  await streamable(context.hub, context.log);
  const { hub } = context;
  // A resume point wins: the history asked for at load is not asked for again on reconnect.
  const start =
    resume && lastEventId === undefined
      ? historyStartOf(
          query,
          tenant,
          { rewind: hub.options.rewind, keepsLatest: hub.keepsLatest },
          Date.now(),
        )
      : undefined;
  return {
    tenant,
    selectors,
    filter,
    grants: principal.subscribe,
    permissions: principal.permissions,
    subject: principal.subject,
    expiresAt: principal.expiresAt,
    lastEventId,
    start,
    presence: presenceParameter(query.get('presence')),
  };
}

/** `presence=1`: `herald.presence` notices on the stream's exact topics (src/cluster/presence-feed.ts). */
function presenceParameter(value: string | null): boolean {
  if (value === null || value === '0' || value === 'false') return false;
  if (value === '1' || value === 'true') return true;
  throw badRequest(
    'invalid-presence',
    `presence must be 1 (send herald.presence notices of who joins and leaves this stream's exact topics) or 0; got ${JSON.stringify(value.slice(0, 32))}`,
    { parameter: 'presence' },
  );
}

/** A stream watches its credential's tenant; only an admin may name another, or `*` for all. */
function watchedTenant(principal: Principal, requested: string | null): string {
  if (requested === null || requested === principal.tenant) return principal.tenant;
  if (!principal.admin) {
    throw new HeraldError(
      403,
      'tenant-forbidden',
      `this credential belongs to tenant "${principal.tenant}"; only admin credentials may watch tenant "${requested}"`,
    );
  }
  return requested;
}
