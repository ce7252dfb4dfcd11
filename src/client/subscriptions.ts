import { HeraldClientError, problemOf } from './errors.ts';
import { type Connection, headers, type Session, tokenFor } from './session.ts';

/**
 * `subscribe()` and `unsubscribe()`: the open stream is changed in place (`POST /v1/subscriptions`)
 * when it can be, else a connection with the new list replaces it; later connections ask for the
 * new list either way.
 */
export const change = async (
  session: Session,
  action: 'subscribe' | 'unsubscribe',
  list: string[],
): Promise<void> => {
  if (session.closed) throw new HeraldClientError(0, 'the client is closed');
  const before = session.topics;
  session.topics =
    action === 'subscribe'
      ? [...new Set([...session.topics, ...list])]
      : session.topics.filter((topic) => !list.includes(topic));
  const { connectionId } = session;
  let connection: Connection | undefined;
  for (const candidate of session.connections)
    if (candidate.id === connectionId && connectionId) connection = candidate;
  // No open stream: the next connection asks for the new list. Polling, or idle (there was
  // no topic): that is now.
  if (!connection) {
    if (session.polling || (session.connections.size === 0 && session.retryTimer === undefined))
      session.open();
    return;
  }
  let bearer = connection.token;
  for (let tries = 0; ; tries++) {
    let response: Response;
    try {
      response = await session.fetch(`${session.root}v1/subscriptions`, {
        method: 'POST',
        headers: headers(bearer, { 'content-type': 'application/json' }),
        body: JSON.stringify({
          connectionId: connection.id,
          secret: connection.secret,
          action,
          topics: list,
        }),
        credentials: session.credentials,
      });
    } catch {
      // No answer: whether the change was made is unknown, so a stream with the new list
      // replaces this one (seamlessly, from Last-Event-ID).
      session.resync();
      return;
    }
    if (response.ok) return;
    const refusal = await problemOf(response);
    // The stream is gone, or on another node: open one with the new list; Last-Event-ID makes the
    // switch seamless.
    if (refusal.status === 404) {
      session.resync();
      return;
    }
    if (refusal.status === 401 && tries === 0) {
      bearer = await tokenFor(session, connection);
      continue;
    }
    // Refused: the list is what it was, for what this call changed.
    session.topics =
      action === 'subscribe'
        ? session.topics.filter((topic) => before.includes(topic) || !list.includes(topic))
        : [...new Set([...session.topics, ...list.filter((topic) => before.includes(topic))])];
    throw refusal;
  }
};
