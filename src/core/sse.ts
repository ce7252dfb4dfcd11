/**
 * Server-Sent Events framing (WHATWG HTML §9.2 "Server-sent events").
 *
 * Frames are built as text once and encoded to UTF-8 once; the same bytes then go to every
 * recipient. Field values here are already validated: ids and types carry no CR, LF or NUL.
 * Which fields of an event go on the frame is in `protocol/fields.ts` (its `sse` column).
 */

const encoder = new TextEncoder();

// §9.2.6: a line ends at CRLF, a lone LF or a lone CR. Data must be split on all three, or a CR
// in the payload would end the line early in the browser and the rest would be parsed as a field.
const LINE_BREAK = /\r\n|\r|\n/;

export interface FrameFields {
  readonly id?: string;
  readonly type?: string;
  readonly data: string;
  readonly retry?: number;
}

/**
 * `id:` (when given), `event:` when typed, `retry:` when set, one `data:` line per line of data:
 * `data`, which is the fields' own unless part of it is hidden from the recipient.
 */
export function frameText(fields: FrameFields, data: string = fields.data): string {
  let text = '';
  if (fields.id !== undefined) text += `id: ${fields.id}\n`;
  if (fields.type !== undefined) text += `event: ${fields.type}\n`;
  if (fields.retry !== undefined) text += `retry: ${fields.retry}\n`;
  // Most payloads are a single line of JSON: skip the split.
  if (data.indexOf('\n') === -1 && data.indexOf('\r') === -1) return `${text}data: ${data}\n\n`;
  for (const line of data.split(LINE_BREAK)) text += `data: ${line}\n`;
  return `${text}\n`;
}

export const encodeFrame = (fields: FrameFields, data: string = fields.data): Uint8Array =>
  encoder.encode(frameText(fields, data));

/** A `retry:` field on its own: sets the client's reconnection delay without dispatching anything. */
export const encodeRetry = (ms: number): Uint8Array =>
  encoder.encode(`retry: ${Math.max(0, Math.round(ms))}\n\n`);

/** The shared heartbeat: a comment line, ignored by every client but enough to keep proxies open. */
export const HEARTBEAT: Uint8Array = encoder.encode(': hb\n\n');

/** A stream's first bytes when it has no `herald.connected` to send: an empty comment line. */
export const OPENING_COMMENT: Uint8Array = encoder.encode(':\n');

/**
 * A system event (`herald.*`). Its `id:` is set only when it marks a position the client should
 * resume from; an empty `id:` would reset the browser's last event id, so none is sent otherwise.
 */
export function encodeSystemEvent(type: string, payload: unknown, id?: string): Uint8Array {
  const fields: { id?: string; type: string; data: string } = { type, data: JSON.stringify(payload) };
  if (id !== undefined) fields.id = id;
  return encodeFrame(fields);
}

/**
 * Frames as one buffer. For a replay page, which is one subscriber's anyway: a single write of a
 * few hundred frames costs the transport one piece instead of a few hundred.
 */
export function joinFrames(frames: readonly Uint8Array[]): Uint8Array {
  if (frames.length === 1) return frames[0] as Uint8Array;
  let size = 0;
  for (const frame of frames) size += frame.byteLength;
  const joined = new Uint8Array(size);
  let offset = 0;
  for (const frame of frames) {
    joined.set(frame, offset);
    offset += frame.byteLength;
  }
  return joined;
}
