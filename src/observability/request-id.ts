/**
 * Which request a log line is about: the caller's `x-request-id` when it sent a sane one (a
 * proxy or the app in front of the hub already named the request), else a fresh one. Anything
 * else is replaced, not echoed: the id goes into logs and a response header verbatim.
 */
export function requestIdOf(header: string | undefined): string {
  if (header !== undefined && SANE_REQUEST_ID.test(header)) return header;
  return globalThis.crypto.randomUUID();
}

export const REQUEST_ID_HEADER = 'x-request-id';

const SANE_REQUEST_ID = /^[\w.:/+=@-]{1,128}$/;
