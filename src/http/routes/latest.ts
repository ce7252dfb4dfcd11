import { latestDisabled, snapshotNeedsTenant } from '../../core/latest.ts';
import { ALL_TENANTS } from '../../core/principal.ts';
import type { HttpContext } from '../context.ts';
import { json } from '../replies.ts';
import type { HttpReply, HttpRequest } from '../request.ts';
import { numberParameter, subscriptionOf } from './events.ts';

/**
 * `GET /v1/latest?topic=…`: the latest event of every key the query matches, as JSON, for a page
 * rendered on the server. The same credential, query and checks as a stream; its `lastEventId`
 * is what that page's stream resumes from, so the two meet with no gap and no duplicate.
 */
export async function latest(context: HttpContext, request: HttpRequest): Promise<HttpReply> {
  const principal = await context.authenticate(request, 'subscribe');
  const subscription = await subscriptionOf(context, request, principal, { resume: false });
  if (subscription.tenant === ALL_TENANTS) throw snapshotNeedsTenant();
  if (!context.hub.keepsLatest) throw latestDisabled();
  const max = context.hub.options.snapshot.maxEvents;
  const limit = numberParameter(request.query.get('limit'), 'limit', 1, max, max);
  return json(200, await context.hub.latest(subscription, limit));
}
