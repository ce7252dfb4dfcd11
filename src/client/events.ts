import {
  CONNECTED_EVENT,
  type ConnectedPayload,
  DISCONNECT_EVENT,
  type DisconnectPayload,
  GAP_EVENT,
  type GapPayload,
  HISTORY_EVENT,
  type HistoryPayload,
  REAUTH_EVENT,
  SYSTEM_EVENT_PREFIX,
} from '../core/protocol/system-events.ts';
import type { HeraldMessage } from './api.ts';
import { type Connection, emit, report, type Session } from './session.ts';
import type { SseEvent } from './sse-parser.ts';

/**
 * What a connection receives: the application's events go to its handlers, once each (streams
 * that overlap deliver some ids twice); Herald's own (`herald.*`) steer the client.
 */

/**
 * Hands an event to its handlers, unless its id was already handled. An event of `history` moves
 * no resume point: a connection dropped before the history's end asks for all of it again.
 */
export const deliver = (session: Session, id: string, type: string, raw: string, history?: boolean): void => {
  if (id) {
    if (!session.recent.add(id)) return;
    if (!history) session.remember(id);
  }
  let data: unknown;
  try {
    data = session.parse(raw, type);
  } catch (error) {
    // The application's parser failed on this event: reported, and the stream goes on.
    report(error);
    return;
  }
  const message: HeraldMessage<never> = { id, type, data: data as never, raw };
  emit(session.handlers.get(type), message);
  emit(session.handlers.get('*'), message);
};

/** An event of a stream (or an EventSource). */
export const onEvent = (session: Session, connection: Connection, { id, type, data }: SseEvent): void => {
  if (connection.abort.signal.aborted) return;
  if (!type.startsWith(SYSTEM_EVENT_PREFIX)) {
    deliver(session, id, type, data, connection.history);
    return;
  }
  let payload: Record<string, unknown>;
  try {
    payload = JSON.parse(data);
  } catch {
    return;
  }
  if (type === CONNECTED_EVENT) {
    const connected = payload as unknown as ConnectedPayload;
    connection.id = connected.connectionId;
    connection.secret = connected.secret;
    // A stream that starts with history has no id yet (its `herald.history` gives it).
    connection.history = !!connected.history;
    session.connectionId = connection.id;
    // Its id is where this stream resumes from. When that is what was sent, the client may
    // already be further on (the stream it replaces kept delivering): keep the later id.
    if (id && id !== connection.sent) session.remember(id);
    for (const other of session.connections) if (other !== connection) other.abort.abort();
    connection.probe = session.polling = false;
    clearTimeout(session.probeTimer);
    session.attempt = session.unauthorized = session.emptyStreams = 0;
    session.setStatus('open');
    // The topics changed while this stream was being opened: open one with the new list.
    if (connection.query !== session.query()) session.resync();
  } else if (type === HISTORY_EVENT) {
    connection.history = false;
    if (id) session.remember(id);
    emit(session.historyHandlers, payload as unknown as HistoryPayload);
  } else if (type === GAP_EVENT) {
    emit(session.gapHandlers, payload as unknown as GapPayload);
  } else if (type === REAUTH_EVENT && !connection.renewing) {
    // The token expires soon: open the next stream with a fresh one now; this one carries on
    // until that one is connected, and the ids both deliver are de-duplicated.
    connection.renewing = true;
    session.open(true);
  } else {
    // An admin ended this stream: when it ends, the client comes back or, told not to, closes
    // (`ended` in client.ts). Its handlers hear it, as those of another notice of the hub
    // (`herald.stats`, on the dashboard's topic) do: only handlers of that very type. A notice has
    // no id of its own (the one it shows is the stream's last): not de-duplicated nor remembered.
    if (type === DISCONNECT_EVENT) connection.disconnect = payload as unknown as DisconnectPayload;
    emit(session.handlers.get(type), { id: '', type, data: payload as never, raw: data });
  }
};
