import type { HttpContext } from '../context.ts';
import { json } from '../replies.ts';
import type { HttpReply, HttpRequest } from '../request.ts';
import { jsonBody } from '../request-checks.ts';
import { refuseReservedTopics } from '../reserved-topics.ts';

/** `POST /v1/publish`: one event (answered with its id) or a batch (with the ids, in order). */
export async function publish(context: HttpContext, request: HttpRequest): Promise<HttpReply> {
  const principal = await context.authenticate(request, 'publish');
  // A cookie rides along with any request the browser makes: only pages we trust may publish with it.
  if (principal.via === 'cookie')
    context.cors.checkCookieOrigin(request.header('origin'), request.header('host'));
  const body = await jsonBody(request, context.settings.maxBodyBytes);
  refuseReservedTopics(body);
  // A promise only when this node's lease of the credential's rate must be refilled from the broker.
  const admitting = context.limits.reservePublish(principal, Array.isArray(body) ? body.length : 1);
  if (admitting !== undefined) await admitting;
  if (Array.isArray(body)) {
    const events = await context.hub.publish(body, principal);
    return json(202, { ids: events.map((event) => event.id) });
  }
  const [event] = await context.hub.publish([body], principal);
  return json(202, { id: event?.id });
}
