import type { PresenceInfo } from './api.ts';
import { problemOf } from './errors.ts';
import { endpoint, headers, type Session } from './session.ts';

/**
 * `GET /v1/presence?topic=…` with the client's credential: who is on a topic across the hub's
 * cluster. A refusal rejects with the hub's problem (`HeraldClientError`), as a stream's would.
 */
export async function presenceOf(session: Session, topic: string): Promise<PresenceInfo> {
  const value = session.options.token;
  const bearer = typeof value === 'function' ? await value() : value;
  const response = await session.fetch(endpoint(session, 'presence', `${new URLSearchParams({ topic })}`), {
    headers: headers(bearer),
    credentials: session.credentials,
  });
  if (!response.ok) throw await problemOf(response);
  return (await response.json()) as PresenceInfo;
}
