import { badRequest } from '../../core/errors.ts';
import { parseSelectors } from '../../core/topics.ts';
import type { HttpContext } from '../context.ts';
import { json } from '../replies.ts';
import type { HttpReply, HttpRequest } from '../request.ts';
import { checkSelectorLengths, jsonBody } from '../request-checks.ts';

/** `POST /v1/subscriptions`: add or remove topics of an open stream, on the credential that opened it. */
export async function changeSubscriptions(context: HttpContext, request: HttpRequest): Promise<HttpReply> {
  const principal = await context.authenticate(request, 'subscribe');
  if (principal.via === 'cookie') context.cors.checkCookieOrigin(request.header('origin'));
  const { maxBodyBytes, maxSelectorLength, maxTopicsPerSubscription } = context.settings;
  const body = await jsonBody(request, maxBodyBytes);
  const { connectionId, secret, action, topics } = (body ?? {}) as Record<string, unknown>;
  if (typeof connectionId !== 'string' || connectionId === '') {
    throw badRequest(
      'connection-required',
      'connectionId is required: the one herald.connected gave the stream',
    );
  }
  if (typeof secret !== 'string' || secret === '') {
    throw badRequest(
      'secret-required',
      'secret is required: the one herald.connected gave the stream, which proves the request comes from whoever holds it',
    );
  }
  if (action !== 'subscribe' && action !== 'unsubscribe') {
    throw badRequest('invalid-action', 'action must be "subscribe" or "unsubscribe"');
  }
  const sources = typeof topics === 'string' ? [topics] : topics;
  if (!Array.isArray(sources) || sources.length === 0 || !sources.every((t) => typeof t === 'string')) {
    throw badRequest('topic-required', 'topics must be a topic selector or a non-empty array of them');
  }
  checkSelectorLengths(sources, maxSelectorLength);
  const selectors = parseSelectors(sources, maxTopicsPerSubscription);
  const now = context.hub.changeSubscription(
    connectionId,
    secret,
    principal,
    action,
    selectors,
    maxTopicsPerSubscription,
  );
  return json(200, { connectionId, topics: now });
}
