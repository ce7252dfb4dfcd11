/**
 * A streaming parser for `text/event-stream`, exactly as WHATWG HTML §9.2.6 ("Interpreting an
 * event stream") reads it, and nothing more: no dependency, a few hundred bytes minified.
 *
 * Bytes go through one streaming UTF-8 decoder, so a character split across chunks is decoded
 * once both halves are there; one leading BOM is stripped (§9.2.5: "UTF-8 decode"), no more.
 * Lines end at CRLF, LF or CR, also when a CRLF is split across chunks.
 *
 * One field beyond the spec: `channel:`, with which a shared stream (`GET /v1/events?mux=1`)
 * labels the events of each subscription it carries. EventSource ignores it, as it ignores every
 * unknown field; here it is kept, and each channel has its own last event ID buffer, as it would
 * have on a stream of its own.
 */

/** One dispatched event (§9.2.6 "dispatch the event"). */
export interface SseEvent {
  /** The last event ID buffer at dispatch: the stream's last `id:`, which persists across events. */
  readonly id: string;
  /** `event:`, or `message` when the event named none. */
  readonly type: string;
  /** The `data:` lines joined by LF. */
  readonly data: string;
  /** `channel:`: the subscription of a shared stream the event belongs to; absent on any other. */
  readonly channel?: string;
}

export interface SseParser {
  /** Feeds the next chunk of the response body. */
  feed(chunk: Uint8Array): void;
}

/**
 * @param onEvent called for every dispatched event, in order.
 * @param onRetry called with a `retry:` value (ASCII digits only, as the spec requires).
 */
export function createParser(onEvent: (event: SseEvent) => void, onRetry?: (ms: number) => void): SseParser {
  // The BOM is stripped here rather than by the decoder: some decoders (Node's, for one) strip a
  // second BOM too when the first arrives split across chunks.
  const decoder = new TextDecoder('utf-8', { ignoreBOM: true });
  let start = true; // nothing decoded yet: a leading U+FEFF is the BOM
  let pending = ''; // the start of a line whose end has not arrived yet
  let skipLF = false; // the previous chunk ended with CR: an LF opening this one is the same line break
  let id = '';
  let type = '';
  let data = '';
  let hasData = false;
  let channel: string | undefined;
  let ownId: string | undefined; // this event's `id:`
  let channelIds: Map<string, string> | undefined;

  const line = (text: string): void => {
    if (text === '') {
      // A blank line dispatches. §9.2.6: without data, only the buffers are reset.
      // `id:` sets its buffer as it comes (§9.2.6); applied here, as nothing reads it before, once
      // `channel:` (which may come after it) has said whose buffer it is.
      if (channel === undefined) {
        if (ownId !== undefined) id = ownId;
        if (hasData) onEvent({ id, type: type || 'message', data });
      } else {
        channelIds ??= new Map();
        if (ownId !== undefined) channelIds.set(channel, ownId);
        if (hasData) onEvent({ id: channelIds.get(channel) ?? '', type: type || 'message', data, channel });
      }
      type = data = '';
      hasData = false;
      channel = ownId = undefined;
      return;
    }
    const colon = text.indexOf(':');
    if (colon === 0) return; // a comment (a heartbeat)
    const field = colon < 0 ? text : text.slice(0, colon);
    let value = colon < 0 ? '' : text.slice(colon + 1);
    if (value[0] === ' ') value = value.slice(1);
    if (field === 'data') {
      data = hasData ? `${data}\n${value}` : value;
      hasData = true;
    } else if (field === 'event') type = value;
    else if (field === 'id') {
      // An id with NULL is ignored, so it cannot set a Last-Event-ID header no server could read.
      if (!value.includes('\0')) ownId = value;
    } else if (field === 'channel') {
      channel = value;
    } else if (field === 'retry') {
      if (/^\d+$/.test(value)) onRetry?.(+value);
    }
    // Any other field is ignored.
  };

  return {
    feed(chunk) {
      let decoded = decoder.decode(chunk, { stream: true });
      if (decoded === '') return; // e.g. only the first bytes of a character: wait for the rest
      if (start && decoded[0] === '\uFEFF') decoded = decoded.slice(1);
      start = false;
      if (decoded.indexOf('\n') < 0 && decoded.indexOf('\r') < 0) {
        // Still inside a line (a large event in many chunks): append, scan once it ends.
        pending += decoded;
        skipLF = false;
        return;
      }
      const text = pending + decoded;
      let at = skipLF && text[0] === '\n' ? 1 : 0;
      skipLF = false;
      // Each search resumes where the last match was, so a chunk of many lines is scanned once.
      let cr = text.indexOf('\r', at);
      let lf = text.indexOf('\n', at);
      for (;;) {
        const end = cr < 0 ? lf : lf < 0 ? cr : Math.min(cr, lf);
        if (end < 0) break;
        line(text.slice(at, end));
        at = end + 1;
        if (end === cr) {
          if (at === text.length) skipLF = true;
          else if (text[at] === '\n') at++;
        }
        if (cr >= 0 && cr < at) cr = text.indexOf('\r', at);
        if (lf >= 0 && lf < at) lf = text.indexOf('\n', at);
      }
      pending = text.slice(at);
    },
  };
}
