import { badRequest } from '../../core/errors.ts';
import type { SubscriptionChange } from '../../core/subscription-change.ts';
import { parseSelectors } from '../../core/topics.ts';
import type { HttpContext } from '../context.ts';
import { bodyTags, bodyTypes } from '../filter-params.ts';
import { json } from '../replies.ts';
import type { HttpReply, HttpRequest } from '../request.ts';
import { checkSelectorLengths, jsonBody } from '../request-checks.ts';

/**
 * `POST /v1/subscriptions`: change the topics, types and tags of an open stream, on the credential
 * that opened it. Seed 004 names the types `eventTypes`; that name is taken as well.
 */
export async function changeSubscriptions(context: HttpContext, request: HttpRequest): Promise<HttpReply> {
  const principal = await context.authenticate(request, 'subscribe');
  if (principal.via === 'cookie')
    context.cors.checkCookieOrigin(request.header('origin'), request.header('host'));
  const { maxBodyBytes, maxSelectorLength, maxTopicsPerSubscription } = context.settings;
  const body = await jsonBody(request, maxBodyBytes);
  const fields = (body ?? {}) as Record<string, unknown>;
  const { connectionId, secret, action, topics, types, eventTypes, tags } = fields;
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
  if (action !== 'subscribe' && action !== 'unsubscribe' && action !== 'set') {
    throw badRequest('invalid-action', 'action must be "subscribe", "unsubscribe" or "set"');
  }
  if (topics === undefined && types === undefined && eventTypes === undefined && tags === undefined) {
    throw badRequest(
      'topic-required',
      'give topics, types or tags: what the stream should receive, e.g. {"types": ["ai-score"]}',
    );
  }
  if (types !== undefined && eventTypes !== undefined) {
    throw badRequest('invalid-type', 'give types or eventTypes (its other name), not both');
  }
  const change: SubscriptionChange = {
    action,
    selectors:
      topics === undefined ? undefined : selectorsOf(topics, maxSelectorLength, maxTopicsPerSubscription),
    types: eventTypes === undefined ? typesOf(types, 'types') : typesOf(eventTypes, 'eventTypes'),
    tags: tags === undefined ? undefined : bodyTags(tags),
  };
  const now = context.hub.changeSubscription(
    connectionId,
    secret,
    principal,
    change,
    maxTopicsPerSubscription,
  );
  return json(200, { connectionId, ...now });
}

function selectorsOf(topics: unknown, maxSelectorLength: number, maxTopics: number) {
  const sources = typeof topics === 'string' ? [topics] : topics;
  if (!Array.isArray(sources) || sources.length === 0 || !sources.every((t) => typeof t === 'string')) {
    throw badRequest('topic-required', 'topics must be a topic selector or a non-empty array of them');
  }
  checkSelectorLengths(sources, maxSelectorLength);
  return parseSelectors(sources, maxTopics);
}

const typesOf = (types: unknown, name: 'types' | 'eventTypes') =>
  types === undefined ? undefined : bodyTypes(types, name);
