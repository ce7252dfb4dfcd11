import { badRequest, HeraldError } from '../../core/errors.ts';
import type { Principal } from '../../core/principal.ts';
import { parseSelectors } from '../../core/topics.ts';
import type { HttpContext } from '../context.ts';
import { json } from '../replies.ts';
import type { HttpReply, HttpRequest } from '../request.ts';
import { checkSelectorLengths, nonEmpty, streamable } from '../request-checks.ts';
import { numberParameter } from './events.ts';

/**
 * `GET /v1/history?topic=…[&before=ID][&limit=N][&tenant=T]`: a topic's history, newest first,
 * for an operator. Admin credentials only: a page shows every event of the topic, private ones
 * included, which no tenant's own grants are meant to reach. An admin browses its own tenant
 * unless it names another with `tenant=` (`*` for every tenant), as on a stream.
 */
export async function history(context: HttpContext, request: HttpRequest): Promise<HttpReply> {
  const principal = await context.authenticate(request, 'stats');
  if (!principal.admin) {
    throw new HeraldError(
      403,
      'admin-required',
      'browsing a topic\'s history needs admin credentials (a token with "admin": true)',
    );
  }
  const { query } = request;
  const { maxSelectorLength, maxTopicsPerSubscription } = context.settings;
  const topics = [...new Set(query.getAll('topic'))];
  if (topics.length === 0) {
    throw badRequest(
      'topic-required',
      'topic is required: add ?topic=<topic, URI template or *> (repeatable), e.g. ?topic=orders/{id}',
    );
  }
  checkSelectorLengths(topics, maxSelectorLength);
  const selectors = parseSelectors(topics, maxTopicsPerSubscription);
  const limit = numberParameter(query.get('limit'), 'limit', 1, MAX_LIMIT, DEFAULT_LIMIT);
  const before = nonEmpty(query.get('before'));
  if (before !== undefined && before.length > MAX_BEFORE_LENGTH) {
    throw badRequest(
      'invalid-before',
      `before is ${before.length} characters long; an event id or position is at most ${MAX_BEFORE_LENGTH}`,
      { parameter: 'before' },
    );
  }
  await streamable(context.hub, context.log);
  const page = await context.hub.history(
    {
      tenant: browsedTenant(principal, query.get('tenant')),
      selectors,
      before,
      limit,
      permissions: principal.permissions,
    },
    request.signal,
  );
  return json(200, page);
}

const DEFAULT_LIMIT = 100;
const MAX_LIMIT = 1000;
/** Longer than any id a publisher may choose (256) or a broker assigns. */
const MAX_BEFORE_LENGTH = 1024;

/** An admin's own tenant, or the one it names (`*`: every tenant). */
const browsedTenant = (principal: Principal, requested: string | null) => requested ?? principal.tenant;
