import { badRequest } from '../core/errors.ts';
import type { PublishInput } from '../core/event.ts';
import type { HttpContext } from '../http/context.ts';
import type { HttpReply, HttpRequest } from '../http/request.ts';
import { nonEmpty, requireMediaType } from '../http/request-checks.ts';
import { refuseReservedTopic } from '../http/reserved-topics.ts';
import type { MercureAuth } from './auth.ts';

/** CR and LF in an SSE field would let a publisher inject fields; browsers drop an id with NUL. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const FIELD_BREAKERS = /[\r\n\u0000]/;

/**
 * `POST /.well-known/mercure`, `application/x-www-form-urlencoded`: one update. The first `topic`
 * is canonical, the others alternates. Answers `200 text/plain` with the update's id: the
 * publisher's when it chose one, else a `urn:uuid:` (the spec asks for an IRI), kept by the broker
 * like any chosen id so that subscribers resume from it. Mercure publishers may repeat an id (a
 * topic's revision): it then names the newest event that has it. The form fields read here are
 * the `mercure` column of `EVENT_FIELDS` (core/protocol/fields.ts); a test holds the two together.
 */
export async function publish(
  auth: MercureAuth,
  context: HttpContext,
  request: HttpRequest,
): Promise<HttpReply> {
  const { principal } = await auth.authenticate(request, 'publish');
  const form = await formBody(request, context.settings.maxBodyBytes);
  const topics = form.getAll('topic');
  if (topics.length === 0) {
    throw badRequest('topic-required', 'topic is required: add topic=<IRI> to the form (repeatable)');
  }
  for (const topic of topics) refuseReservedTopic(topic);
  const id = nonEmpty(form.get('id'));
  const type = nonEmpty(form.get('type'));
  const retry = nonEmpty(form.get('retry'));
  if (id !== undefined && (FIELD_BREAKERS.test(id) || id.startsWith('#'))) {
    throw badRequest('invalid-id', 'id must not contain CR, LF or NUL, nor start with #');
  }
  if (type !== undefined && FIELD_BREAKERS.test(type)) {
    throw badRequest('invalid-type', 'type must not contain CR, LF or NUL');
  }
  if (retry !== undefined && !/^\d{1,15}$/.test(retry)) {
    throw badRequest(
      'invalid-retry',
      `retry must be a whole number of milliseconds; got ${JSON.stringify(retry)}`,
    );
  }
  const input: PublishInput = {
    topic: topics,
    data: form.get('data') ?? '',
    id: id ?? `urn:uuid:${globalThis.crypto.randomUUID()}`,
  };
  if (type !== undefined) input.type = type;
  if (retry !== undefined) input.retry = Number(retry);
  // Any value counts, even empty: the spec recommends `on`, as a checkbox sends it.
  if (form.has('private')) input.private = true;
  const admitting = context.limits.reservePublish(principal, 1);
  if (admitting !== undefined) await admitting;
  const [event] = await context.hub.publish([input], principal, { reuseIds: true });
  return {
    kind: 'response',
    status: 200,
    headers: { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' },
    body: (event as { id: string }).id,
  };
}

async function formBody(request: HttpRequest, maxBodyBytes: number): Promise<URLSearchParams> {
  requireMediaType(request, 'application/x-www-form-urlencoded');
  const bytes = await request.body(maxBodyBytes);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw badRequest('malformed-form', 'the body is not valid UTF-8');
  }
  return new URLSearchParams(text);
}
