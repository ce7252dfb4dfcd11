/**
 * A minimal, fast reader of one SSE response read off a raw socket: the HTTP/1.1 head, then the
 * body (chunked, as node:http sends it, or plain until close), split into event blocks.
 *
 * It works on latin1 strings, where one character is one byte, so chunk sizes can be counted in
 * characters; benchmark payloads are ASCII. Of each block it extracts only the first `data:`
 * line, enough for single-line payloads; `id:`, `event:` and comment lines are skipped.
 */

export interface SseHandler {
  /** The response head arrived; `head` is its text without the final blank line. */
  onHead(status: number, head: string): void;
  /** One block (up to a blank line) ended. `data` is its first data line, undefined if it has none. */
  onBlock(data: string | undefined, arrivedAt: number): void;
}

const HEAD = 0;
const CHUNKED = 1;
const PLAIN = 2;
const ENDED = 3;
const MAX_HEAD = 64 * 1024;

export class SseReader {
  private readonly handler: SseHandler;
  private phase = HEAD;
  private head = '';
  /** Chunked: a size line split across reads. */
  private carry = '';
  /** Chunked: bytes of the current chunk still to come. */
  private remaining = 0;
  /** Chunked: bytes of the CRLF after a chunk's data still to skip. */
  private skip = 0;
  /** Body text not yet ended by a blank line. */
  private text = '';

  constructor(handler: SseHandler) {
    this.handler = handler;
  }

  /** True once a chunked body has sent its last (empty) chunk. */
  get ended(): boolean {
    return this.phase === ENDED;
  }

  /** Feeds what one socket read returned (latin1), and the time it arrived. */
  feed(input: string, arrivedAt: number): void {
    if (this.phase === HEAD) {
      const head = this.head + input;
      const end = head.indexOf('\r\n\r\n');
      if (end === -1) {
        if (head.length > MAX_HEAD) throw new Error('response head over 64 KiB');
        this.head = head;
        return;
      }
      this.head = '';
      const text = head.substring(0, end);
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(text)?.[1] ?? Number.NaN);
      this.phase = /\r\ntransfer-encoding:[^\r]*chunked/i.test(text) ? CHUNKED : PLAIN;
      this.handler.onHead(status, text);
      input = head.substring(end + 4);
      if (input.length === 0) return;
    }
    if (this.phase === CHUNKED) this.dechunk(input);
    else if (this.phase === PLAIN) this.text += input;
    else return;
    this.blocks(arrivedAt);
  }

  private dechunk(input: string): void {
    const s = this.carry === '' ? input : this.carry + input;
    this.carry = '';
    const n = s.length;
    let i = 0;
    while (i < n) {
      if (this.remaining > 0) {
        const end = Math.min(n, i + this.remaining);
        this.text += i === 0 && end === n ? s : s.substring(i, end);
        this.remaining -= end - i;
        i = end;
        if (this.remaining === 0) this.skip = 2;
      } else if (this.skip > 0) {
        const k = Math.min(this.skip, n - i);
        i += k;
        this.skip -= k;
      } else {
        const eol = s.indexOf('\n', i);
        if (eol === -1) {
          this.carry = s.substring(i);
          return;
        }
        // parseInt stops at `;` (chunk extensions) and at the CR.
        const size = Number.parseInt(s.substring(i, eol), 16);
        if (Number.isNaN(size)) throw new Error(`bad chunk size line ${JSON.stringify(s.substring(i, eol))}`);
        i = eol + 1;
        if (size === 0) {
          this.phase = ENDED;
          return;
        }
        this.remaining = size;
      }
    }
  }

  private blocks(arrivedAt: number): void {
    const text = this.text;
    let start = 0;
    for (;;) {
      const end = text.indexOf('\n\n', start);
      if (end === -1) break;
      this.handler.onBlock(dataLine(text, start, end), arrivedAt);
      start = end + 2;
    }
    if (start > 0) this.text = start === text.length ? '' : text.substring(start);
  }
}

/** The value of the first `data:` line of the block text[start, end), without its optional space. */
function dataLine(text: string, start: number, end: number): string | undefined {
  let at: number;
  if (text.startsWith('data:', start)) at = start;
  else {
    const found = text.indexOf('\ndata:', start);
    if (found === -1 || found >= end) return undefined;
    at = found + 1;
  }
  let from = at + 5;
  if (text.charCodeAt(from) === 32) from++;
  const eol = text.indexOf('\n', from);
  return text.substring(from, eol === -1 || eol > end ? end : eol);
}
