import assert from 'node:assert/strict';
import { type ClientRequest, type IncomingHttpHeaders, request } from 'node:http';
import type { Transform } from 'node:stream';
import zlib from 'node:zlib';

/**
 * An event stream read the way a browser reads a compressed one: raw bytes off the socket, through
 * node:zlib's streaming decompressor for its `Content-Encoding`, into SSE frames as they arrive.
 * Frames are the decompressed text split at blank lines, comments (heartbeats) included, so a test
 * can compare them byte for byte with an uncompressed stream's.
 */
export interface CompressedStream {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  /** Every complete frame so far, without its closing blank line. */
  readonly frames: string[];
  /** Bytes of the response body as they came over the wire (compressed). */
  readonly wireBytes: () => number;
  /** Resolves when the body ended and the decompressor accepted its end (a valid trailer). */
  readonly ended: Promise<void>;
  /** Waits until `condition` holds for the frames, at most `timeoutMs`. */
  until(condition: (frames: readonly string[]) => boolean, what: string, timeoutMs?: number): Promise<void>;
  close(): void;
}

function decoderFor(coding: string | undefined): Transform | undefined {
  // The flush modes a browser's decoder uses: whatever has arrived is handed out, no trailer awaited.
  if (coding === 'gzip') return zlib.createGunzip({ flush: zlib.constants.Z_SYNC_FLUSH });
  if (coding === 'deflate') return zlib.createInflate({ flush: zlib.constants.Z_SYNC_FLUSH });
  if (coding === 'br') return zlib.createBrotliDecompress({ flush: zlib.constants.BROTLI_OPERATION_FLUSH });
  if (coding === undefined) return undefined;
  throw new Error(`unexpected content-encoding ${coding}`);
}

export function openCompressedStream(
  url: string,
  headers: Record<string, string> = {},
): Promise<CompressedStream> {
  return new Promise((resolve, reject) => {
    const frames: string[] = [];
    const waiters = new Set<() => void>();
    const changed = () => {
      for (const waiter of waiters) waiter();
    };
    let wire = 0;
    let text = '';
    let req: ClientRequest | undefined;
    let endedResolve: () => void = () => {};
    let endedReject: (error: Error) => void = () => {};
    const ended = new Promise<void>((ok, fail) => {
      endedResolve = ok;
      endedReject = fail;
    });
    // Not every test waits for the end.
    ended.catch(() => {});
    req = request(url, { headers: { accept: 'text/event-stream', ...headers } }, (res) => {
      let decoder: Transform | undefined;
      try {
        decoder = decoderFor(res.headers['content-encoding']);
      } catch (error) {
        reject(error);
        return;
      }
      const onText = (chunk: Buffer) => {
        text += chunk.toString('utf8');
        let end = text.indexOf('\n\n');
        while (end !== -1) {
          frames.push(text.slice(0, end));
          text = text.slice(end + 2);
          end = text.indexOf('\n\n');
        }
        changed();
      };
      res.on('data', (chunk: Buffer) => {
        wire += chunk.byteLength;
      });
      if (decoder === undefined) {
        res.on('data', onText);
        res.on('end', () => endedResolve());
      } else {
        res.pipe(decoder);
        decoder.on('data', onText);
        decoder.on('end', () => endedResolve());
        decoder.on('error', (error) => endedReject(error));
      }
      res.on('error', () => {});
      resolve({
        status: res.statusCode ?? 0,
        headers: res.headers,
        frames,
        wireBytes: () => wire,
        ended,
        until(condition, what, timeoutMs = 10_000) {
          if (condition(frames)) return Promise.resolve();
          return new Promise((ok, fail) => {
            const timer = setTimeout(() => {
              waiters.delete(check);
              fail(new Error(`timed out waiting for ${what}; frames so far: ${JSON.stringify(frames)}`));
            }, timeoutMs);
            const check = () => {
              if (!condition(frames)) return;
              clearTimeout(timer);
              waiters.delete(check);
              ok();
            };
            waiters.add(check);
          });
        },
        close() {
          req?.destroy();
        },
      });
    });
    req.on('error', reject);
    req.end();
  });
}

/** The frames of events a test published (not `herald.*` ones, whose ids and secrets differ per stream). */
export function eventFrames(frames: readonly string[], type: string): string[] {
  return frames.filter((frame) => frame.split('\n').includes(`event: ${type}`));
}

export function assertCompressedHeaders(headers: IncomingHttpHeaders, coding: string | undefined): void {
  assert.equal(headers['content-encoding'], coding);
  assert.equal(headers['content-length'], undefined, 'a stream has no Content-Length');
  assert.match(String(headers.vary), /accept-encoding/i);
}
