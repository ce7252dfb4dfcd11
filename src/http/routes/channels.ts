import { badRequest, HeraldError } from '../../core/errors.ts';
import type { HttpContext } from '../context.ts';
import { channelName, heldMux, muxFigures } from '../mux.ts';
import { json } from '../replies.ts';
import type { HttpReply, HttpRequest } from '../request.ts';
import { jsonBody } from '../request-checks.ts';
import { subscriptionOf } from './events.ts';

/**
 * `POST /v1/channels`: opens or closes a channel of a mux stream (`GET /v1/events?mux=1`), on the
 * credential that opened it. A channel is opened as `GET /v1/events` would open a stream with the
 * same parameters, with the same checks and limits; its frames go to the mux, labelled.
 */
export async function channels(context: HttpContext, request: HttpRequest): Promise<HttpReply> {
  const principal = await context.authenticate(request, 'subscribe');
  if (principal.via === 'cookie') context.cors.checkCookieOrigin(request.header('origin'));
  const body = await jsonBody(request, context.settings.maxBodyBytes);
  const fields = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
  const { connectionId, secret, action } = fields;
  if (typeof connectionId !== 'string' || connectionId === '') {
    throw badRequest(
      'connection-required',
      'connectionId is required: the one herald.connected gave the mux stream',
    );
  }
  if (typeof secret !== 'string' || secret === '') {
    throw badRequest(
      'secret-required',
      'secret is required: the one herald.connected gave the mux stream, which proves the request comes from whoever holds it',
    );
  }
  if (action !== 'open' && action !== 'close') {
    throw badRequest('invalid-action', 'action must be "open" or "close"');
  }
  const channel = channelName(fields.channel);
  if (action === 'close') {
    // A close is no error when there is nothing to close: the mux stream may have ended a moment
    // before (the page's tab left, the hub shut it), and what was asked holds. Nothing is closed
    // without the mux's secret and credential, and the answer is the same either way.
    let mux: ReturnType<typeof heldMux>;
    try {
      mux = heldMux(context.hub, connectionId, secret, principal);
    } catch (error) {
      if (error instanceof HeraldError && error.code === 'connection-not-found') {
        return json(200, { channel, closed: false });
      }
      throw error;
    }
    return json(200, { channel, closed: mux.close(channel) });
  }
  // The mux is checked before the channel's own parameters, and again once they are (the stream
  // may have ended while they were checked).
  heldMux(context.hub, connectionId, secret, principal);
  // The body's fields read as the query of a stream: the same checks, the same refusals. The
  // request's own Last-Event-ID is the page's, not the channel's.
  const subscription = await subscriptionOf(
    context,
    { query: channelQuery(fields), header: () => undefined },
    principal,
  );
  const ip = request.remoteAddress ?? '';
  const open = (slot: () => () => void) =>
    heldMux(context.hub, connectionId, secret, principal).open(
      channel,
      { ...subscription, requestId: request.requestId },
      slot,
    );
  if (context.limits.scope === 'node') {
    const opened = open(() => context.limits.openStream(ip, principal.subject, subscription.tenant));
    return json(200, { channel, connectionId: opened.id });
  }
  // Counted across nodes, the slot is reserved (a broker round trip) before the mux opens the
  // channel; a channel of the same name is closed first, as the mux would, so that its slot is free.
  heldMux(context.hub, connectionId, secret, principal).close(channel);
  const release = await context.limits.reserveStream(ip, principal.subject, subscription.tenant);
  try {
    return json(200, { channel, connectionId: open(() => release).id });
  } catch (error) {
    release();
    throw error;
  }
}

/** `/v1/stats` with the mux streams and channels open on this node: all of them, or the tenant's. */
export function withMuxStats(context: HttpContext): HttpContext {
  return {
    ...context,
    // A tenant's view keeps to its connections (docs/security.md): the mux figures are an admin's.
    stats: async (principal) =>
      principal.admin
        ? { ...((await context.stats(principal)) as object), mux: muxFigures(context.hub) }
        : context.stats(principal),
  };
}

/** A channel's fields as the query parameters a stream would give them with. */
function channelQuery(fields: Record<string, unknown>): URLSearchParams {
  const query = new URLSearchParams();
  if (fields.topics === undefined) {
    throw badRequest(
      'topic-required',
      'topics is required: what the channel receives, e.g. {"topics": ["dealers/{dealerId}/scores"]}',
    );
  }
  for (const topic of strings(fields.topics, 'topics', 'topic-required')) query.append('topic', topic);
  for (const type of strings(fields.types, 'types', 'invalid-type')) query.append('type', type);
  const { tags } = fields;
  if (tags !== undefined) {
    if (typeof tags !== 'object' || tags === null || Array.isArray(tags)) {
      throw badRequest(
        'invalid-tag',
        'tags must be an object of values per tag name, e.g. {"dealerId": ["S1"]}',
      );
    }
    for (const [name, values] of Object.entries(tags)) {
      for (const value of strings(values, `tags.${name}`, 'invalid-tag')) query.append(`tag.${name}`, value);
    }
  }
  const single = [
    ['lastEventId', 'invalid-id'],
    ['rewind', 'invalid-rewind'],
    ['since', 'invalid-since'],
    ['snapshot', 'invalid-snapshot'],
    ['tenant', 'invalid-tenant'],
  ] as const;
  for (const [name, code] of single) {
    const value = fields[name];
    if (value === undefined || value === null) continue;
    if (typeof value !== 'string' && typeof value !== 'number') {
      throw badRequest(code, `${name} must be a string or a number, not ${JSON.stringify(value)}`);
    }
    query.append(name, String(value));
  }
  return query;
}

/** A string or an array of strings, as a list; absent, none. */
function strings(
  value: unknown,
  name: string,
  code: 'topic-required' | 'invalid-type' | 'invalid-tag',
): readonly string[] {
  if (value === undefined) return [];
  const list = typeof value === 'string' ? [value] : value;
  if (!Array.isArray(list) || !list.every((item) => typeof item === 'string')) {
    throw badRequest(code, `${name} must be a string or an array of strings`);
  }
  return list;
}
