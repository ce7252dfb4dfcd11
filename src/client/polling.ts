import type { PollResult } from '../core/protocol/poll.ts';
import { DISCONNECT_EVENT } from '../core/protocol/system-events.ts';
import { problemOf } from './errors.ts';
import { deliver, onEvent } from './events.ts';
import { type Connection, emit, endpoint, headers, type Session, tokenFor } from './session.ts';

/**
 * Long polling, for when streams get through but their bytes do not (a buffering proxy): one
 * connection that is a sequence of polls, each resuming where the last one ended.
 */

const POLL_WAIT_SEC = 25;

export const poll = async (session: Session, connection: Connection): Promise<void> => {
  const { signal } = connection.abort;
  // The first poll answers at once, so the client knows it gets through (and where the log is).
  for (let wait = 0; ; wait = POLL_WAIT_SEC) {
    const bearer = await tokenFor(session, connection);
    const after = session.lastEventId;
    // The watchdog covers the wait the hub may take, plus the usual allowance.
    session.watchdog.watch(connection, wait * 1000 + session.watchLimit, () => session.expire(connection));
    const response = await session.fetch(
      endpoint(
        session,
        'events/poll',
        session.query(),
        `&wait=${wait}&limit=100${after ? `&after=${encodeURIComponent(after)}` : session.start}`,
      ),
      { headers: headers(bearer), signal, cache: 'no-store', credentials: session.credentials },
    );
    if (!response.ok) throw await problemOf(response);
    const batch: PollResult = await response.json();
    if (signal.aborted) return;
    session.attempt = session.unauthorized = 0;
    session.setStatus('open', 'polling');
    if (batch.gap) emit(session.gapHandlers, { lastEventId: after ?? null, reason: batch.gap });
    for (const event of batch.events) {
      if (event.retry !== undefined) session.retryHint = event.retry;
      deliver(session, event.id, event.type, event.data, !!batch.history);
      if (signal.aborted) return;
    }
    if (batch.lastEventId) session.remember(batch.lastEventId);
    if (batch.history) emit(session.historyHandlers, batch.history);
    // An admin ended this client's connections: as `herald.disconnect` on a stream, its handlers
    // hear it and this connection ends; `ended` (client.ts) closes the client or comes back.
    if (batch.disconnect) {
      return onEvent(session, connection, {
        id: '',
        type: DISCONNECT_EVENT,
        data: JSON.stringify(batch.disconnect),
      });
    }
  }
};
