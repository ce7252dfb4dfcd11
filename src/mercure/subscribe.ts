import { badRequest } from '../core/errors.ts';
import { parseSelectors } from '../core/topics.ts';
import type { HttpContext } from '../http/context.ts';
import { headerBytes, headerText } from '../http/header-text.ts';
import type { HttpReply, HttpRequest } from '../http/request.ts';
import { checkSelectorLengths, nonEmpty, streamable } from '../http/request-checks.ts';
import type { MercureAuth } from './auth.ts';
import { EARLIEST } from './protocol.ts';
import type { ActiveSubscriptions, Presence } from './subscriptions.ts';

/** The reference hub's response headers, byte for byte (its `sendHeaders`). */
const STREAM_HEADERS: Readonly<Record<string, string>> = {
  'content-type': 'text/event-stream',
  'cache-control': 'private, no-cache, no-store, must-revalidate, max-age=0',
  pragma: 'no-cache',
  expire: '0',
  'x-accel-buffering': 'no',
};

/**
 * `GET /.well-known/mercure?topic=…`: a plain SSE stream of the updates matching the selectors.
 * The resume point is looked up before the headers go out, because the `Last-Event-ID` response
 * header must say where the stream starts: the requested id when it is in the log, `earliest` when
 * what is sent has no predecessor (`earliest` asked, or an id the log does not hold).
 */
export async function subscribe(
  auth: MercureAuth,
  subscriptions: ActiveSubscriptions | undefined,
  context: HttpContext,
  request: HttpRequest,
): Promise<HttpReply> {
  const { principal, payload } = await auth.authenticate(request, 'subscribe');
  const topics = [...new Set(request.query.getAll('topic'))];
  if (topics.length === 0) {
    throw badRequest(
      'topic-required',
      'topic is required: add ?topic=<topic, * or URI template> (repeatable), e.g. ?topic=https://example.com/books/{id}',
    );
  }
  checkSelectorLengths(topics, context.settings.maxSelectorLength);
  const selectors = parseSelectors(topics, context.settings.maxTopicsPerSubscription);
  const requested =
    nonEmpty(headerText(request.header('last-event-id'))) ?? nonEmpty(request.query.get('lastEventID'));
  await streamable(context.hub, context.log);

  // undefined: live only; null: from the oldest event retained.
  let replayAfter: string | null | undefined;
  let headers = STREAM_HEADERS;
  if (requested !== undefined) {
    const location =
      requested === EARLIEST ? undefined : await context.log.locate(requested, principal.tenant);
    // An id the log no longer (or never) held gets what is retained: after a restart of a memory
    // hub, that is everything published since, which a live-only answer would lose.
    replayAfter = location?.kind === 'found' ? location.pos : null;
    headers = {
      ...STREAM_HEADERS,
      'last-event-id': location?.kind === 'found' ? headerBytes(requested) : EARLIEST,
    };
  }

  const release = await context.limits.reserveStream(
    request.remoteAddress ?? '',
    principal.subject,
    principal.tenant,
  );
  let presence: Presence | undefined;
  const onClose = () => {
    release();
    presence?.leave();
  };
  const subscription = {
    tenant: principal.tenant,
    selectors,
    grants: principal.subscribe,
    permissions: principal.permissions,
    subject: principal.subject,
    expiresAt: principal.expiresAt,
    replayAfter,
    systemEvents: false,
    onClose,
    requestId: request.requestId,
  };
  return {
    kind: 'stream',
    headers,
    open(sink) {
      presence = subscriptions?.join(principal.tenant, topics, payload);
      try {
        return context.hub.subscribe(subscription, sink);
      } catch (error) {
        onClose();
        throw error;
      }
    },
    discard: onClose,
  };
}
