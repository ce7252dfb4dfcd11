import {
  CONNECTED_EVENT,
  DISCONNECT_EVENT,
  GAP_EVENT,
  HISTORY_EVENT,
  REAUTH_EVENT,
} from '../core/protocol/system-events.ts';
import { HeraldClientError, problemOf } from './errors.ts';
import { onEvent } from './events.ts';
import { type Connection, endpoint, headers, type Session, tokenFor } from './session.ts';
import { createParser } from './sse-parser.ts';

/**
 * The two ways to hold a stream open: a streaming fetch (the token in a header), or the native
 * `EventSource` (the token in the URL). Each resolves when its stream ends or is aborted, and
 * rejects with why it failed.
 */

export const stream = async (session: Session, connection: Connection): Promise<void> => {
  const bearer = await tokenFor(session, connection);
  for (const other of session.connections) {
    // Renewing with the token that is about to expire would be refused again at once.
    if (bearer && other.renewing && other.token === bearer) throw new Error('the token was not renewed');
  }
  const sent = session.lastEventId;
  connection.sent = sent;
  const response = await session.fetch(
    endpoint(session, 'events', connection.query, sent ? '' : session.start),
    {
      headers: headers(
        bearer,
        sent ? { accept: 'text/event-stream', 'last-event-id': sent } : { accept: 'text/event-stream' },
      ),
      signal: connection.abort.signal,
      cache: 'no-store',
      credentials: session.credentials,
    },
  );
  if (!response.ok) throw await problemOf(response);
  const body = response.body;
  if (!body || !/^text\/event-stream/i.test(response.headers.get('content-type') ?? '')) {
    // A 200 that is not an event stream: something between here and the hub (a proxy, a
    // captive portal) answers instead of it. Long polling may get through.
    await body?.cancel();
    throw new HeraldClientError(
      200,
      `not an event stream (${response.headers.get('content-type')})`,
      'not-a-stream',
    );
  }
  const parser = createParser(
    (event) => onEvent(session, connection, event),
    (ms) => {
      session.retryHint = ms;
    },
  );
  const reader = body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return;
    connection.bytes = true;
    session.watchdog.touch(connection);
    parser.feed(value);
  }
};

export const nativeEventSource = async (session: Session, connection: Connection): Promise<void> => {
  const { options } = session;
  const bearer = await tokenFor(session, connection);
  const sent = session.lastEventId;
  connection.sent = sent;
  const extra = new URLSearchParams();
  if (sent) extra.set('lastEventId', sent);
  if (bearer) extra.set('access_token', bearer);
  if (connection.abort.signal.aborted) return;
  const Source = options.EventSource ?? EventSource;
  const source = new Source(
    endpoint(session, 'events', connection.query, `&${extra}${sent ? '' : session.start}`),
    {
      withCredentials: !!options.withCredentials,
    },
  );
  const listening = new Set<string>();
  // A native EventSource only dispatches the named types it is listening to.
  connection.listen = (type) => {
    if (type === '*' || listening.has(type)) return;
    listening.add(type);
    source.addEventListener(type, (event: MessageEvent) =>
      onEvent(session, connection, { id: event.lastEventId, type, data: event.data }),
    );
  };
  for (const type of [
    'message',
    CONNECTED_EVENT,
    GAP_EVENT,
    HISTORY_EVENT,
    REAUTH_EVENT,
    DISCONNECT_EVENT,
    ...session.types,
    ...session.handlers.keys(),
  ]) {
    connection.listen(type);
  }
  await new Promise<void>((resolve, reject) => {
    connection.abort.signal.addEventListener('abort', () => resolve());
    // It cannot say why (no status, no body); its own reconnection would skip the fresh token
    // and the backoff, so it is closed and this client reconnects.
    source.onerror = () => reject(new Error('the EventSource failed'));
  }).finally(() => source.close());
};
