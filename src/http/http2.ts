import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import type { Sink } from '../core/subscriber.ts';

/**
 * What the node adapter needs to treat node:http2's compatibility API (`Http2ServerRequest`,
 * `Http2ServerResponse`) like node:http's, where the two differ.
 */

export type AnyRequest = IncomingMessage | Http2ServerRequest;
export type AnyResponse = ServerResponse | Http2ServerResponse;

/** HTTP/2 frames the connection itself; these headers would be a protocol error (RFC 9113 §8.2.2). */
const CONNECTION_SPECIFIC = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
]);

export function isHttp2(req: AnyRequest): boolean {
  return req.httpVersionMajor >= 2;
}

/** `headers` without what HTTP/2 forbids, which node:http2 would otherwise throw on or warn about. */
export function forHttp2(headers: Readonly<Record<string, string>>): Record<string, string> {
  const kept: Record<string, string> = {};
  for (const name in headers) {
    if (!CONNECTION_SPECIFIC.has(name.toLowerCase())) kept[name] = headers[name] as string;
  }
  return kept;
}

/** The client is gone or the response was torn down. An HTTP/2 response has no `destroyed` of its own. */
export function isGone(res: AnyResponse): boolean {
  const { stream } = res as Partial<Http2ServerResponse>;
  return stream === undefined ? (res as ServerResponse).destroyed : stream.destroyed || stream.closed;
}

/**
 * Writes frames to an HTTP/2 response. A batch is corked on the response's own stream, which
 * turns it into one writev and so as few DATA frames as its size allows (one up to 16 KiB); not on
 * its socket, a proxy of the session's that every stream shares and that the session writes
 * natively, where corking batches nothing.
 */
export class Http2Sink implements Sink {
  private readonly res: Http2ServerResponse;

  constructor(res: AnyResponse) {
    this.res = res as Http2ServerResponse;
  }

  write(chunks: readonly Uint8Array[]): boolean {
    const res = this.res;
    if (isGone(res)) return false;
    if (chunks.length === 1) res.write(chunks[0] as Uint8Array);
    else {
      res.cork();
      for (const chunk of chunks) res.write(chunk);
      res.uncork();
    }
    // As on HTTP/1.1: uncork() may already have emitted 'drain'.
    return !res.writableNeedDrain;
  }

  end(): void {
    this.res.end();
  }

  destroy(): void {
    this.res.destroy();
  }
}
