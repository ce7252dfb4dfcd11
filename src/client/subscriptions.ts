import type { FilterChange } from './api.ts';
import { HeraldClientError, problemOf } from './errors.ts';
import { type Connection, headers, type Session, tokenFor } from './session.ts';

/**
 * `subscribe()`, `unsubscribe()` and `setFilter()`: the open stream's topics, types and tags are
 * changed in place (`POST /v1/subscriptions`) when they can be, else a connection asking for the
 * new ones replaces it; later connections ask for the new ones either way.
 */

type Action = 'subscribe' | 'unsubscribe' | 'set';

export const listOf = (given: string | readonly string[]): string[] =>
  typeof given === 'string' ? [given] : [...given];

/**
 * A list of types or of one tag's values after `action`; undefined takes every value. The hub
 * refuses what would turn a narrowing into "every value" (emptying a list, or narrowing one that
 * takes every value), and so does this, for the connection that asks next when none is open.
 */
const changed = (
  now: string[] | undefined,
  action: Action,
  given: string[],
  code: string,
): string[] | undefined => {
  if (action === 'set') return [...new Set(given)];
  if (action === 'subscribe') return now && [...new Set([...now, ...given])];
  const kept = now?.filter((value) => !given.includes(value));
  if (!kept?.length) {
    throw new HeraldClientError(
      400,
      `unsubscribe ${given.join(', ')} would leave no filter, or there is none to narrow: use setFilter()`,
      code,
    );
  }
  return kept;
};

export const change = async (session: Session, action: Action, given: FilterChange): Promise<void> => {
  if (session.closed) throw new HeraldClientError(0, 'the client is closed');
  const list = given.topics === undefined ? undefined : listOf(given.topics);
  const types = given.types === undefined ? undefined : listOf(given.types);
  let tags: Record<string, string[]> | undefined;
  // Everything is worked out before anything is assigned: a local refusal changes nothing.
  let nextTypes = session.types;
  if (types)
    nextTypes =
      changed(session.types.length ? session.types : undefined, action, types, 'invalid-type') ?? [];
  let nextTags = session.tags;
  if (given.tags) {
    tags = {};
    for (const [name, values] of Object.entries(given.tags)) tags[name] = listOf(values);
    nextTags = action === 'set' ? {} : { ...nextTags };
    for (const [name, values] of Object.entries(tags)) {
      const next = changed(session.tags[name], action, values, 'invalid-tag');
      if (next) nextTags[name] = next;
    }
  }
  const { topics: before, types: beforeTypes, tags: beforeTags } = session;
  if (list) {
    session.topics =
      action === 'subscribe'
        ? [...new Set([...session.topics, ...list])]
        : session.topics.filter((topic) => !list.includes(topic));
  }
  session.types = nextTypes;
  session.tags = nextTags;
  const { connectionId } = session;
  let connection: Connection | undefined;
  for (const candidate of session.connections) {
    // A native EventSource dispatches only the types it listens to.
    for (const type of nextTypes) candidate.listen?.(type);
    if (candidate.id === connectionId && connectionId) connection = candidate;
  }
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
          types,
          tags,
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
    // Refused: the list is what it was, for what this call changed (topics one by one, as other
    // calls may have changed others since; types and tags unless another call replaced them).
    if (list) {
      session.topics =
        action === 'subscribe'
          ? session.topics.filter((topic) => before.includes(topic) || !list.includes(topic))
          : [...new Set([...session.topics, ...list.filter((topic) => before.includes(topic))])];
    }
    if (session.types === nextTypes) session.types = beforeTypes;
    if (session.tags === nextTags) session.tags = beforeTags;
    throw refusal;
  }
};
