/**
 * The benchmark's event payload: `<seq> <sentAt> <padding>`, plain ASCII, a fixed size.
 *
 * It is published as a JSON string, which Herald sends verbatim as the SSE `data:` line, so a
 * subscriber reads it without JSON.parse. Peers that take a raw body (Nchan) get the same text.
 */

/** Bytes of data per event, padding included: small, like a typical UI update. */
export const PAYLOAD_BYTES = 100;

/**
 * A clock every process on this machine shares, in milliseconds with sub-microsecond resolution:
 * CLOCK_MONOTONIC (time since boot), which is what `process.hrtime` reads on Linux.
 *
 * Not `performance.timeOrigin + performance.now()`: `timeOrigin` is read from the wall clock once
 * per process, and two processes disagree by 0.2–0.8 ms that way (measured here), as much as the
 * latency being measured. Monotonic time has no such offset and never steps.
 */
export const nowMs = (): number => Number(process.hrtime.bigint()) / 1e6;

/** `42 1723456789012.345 xxxx…`, padded to `bytes`. */
export function encodePayload(seq: number, sentAt: number, bytes = PAYLOAD_BYTES): string {
  const head = `${seq} ${sentAt.toFixed(3)} `;
  return head.length >= bytes ? head : head + 'x'.repeat(bytes - head.length);
}

/**
 * The sequence number, or NaN when `data` is not a benchmark payload (a system event's JSON). A
 * payload a peer sent JSON-encoded (better-sse's default serializer) is a quoted string of the
 * same ASCII text, so it is read past the quote.
 */
export function payloadSeq(data: string): number {
  const from = data.charCodeAt(0) === 34 ? 1 : 0;
  const code = data.charCodeAt(from);
  if (code < 48 || code > 57) return Number.NaN;
  return +data.substring(from, data.indexOf(' '));
}

/** The publisher's send time in ms; call only when `payloadSeq` was a number. */
export function payloadSentAt(data: string): number {
  const from = data.indexOf(' ') + 1;
  return +data.substring(from, data.indexOf(' ', from));
}
