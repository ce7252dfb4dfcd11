import { formatBytes, HeraldError } from '../core/errors.ts';
import type { Sink, Subscriber } from '../core/subscriber.ts';
import type { Herald } from '../herald.ts';
import { REQUEST_ID_HEADER } from '../observability/request-id.ts';
import {
  CompressingSink,
  type CompressionOption,
  type ContentCoding,
  compressionOf,
  type StreamCompression,
} from './compression.ts';
import { withCoding } from './content-coding.ts';
import type { HttpReply, HttpRequest, HttpStream } from './request.ts';

export interface WebHandlerOptions {
  /** The path Herald is mounted under, e.g. `/api/herald` for `app/api/herald/[...path]/route.ts`. */
  readonly basePath?: string;
  /**
   * The address of the connection's peer, for per-IP limits. A Request does not carry it: pass
   * what your server knows (Hono on Node: `c.env.incoming.socket.remoteAddress`; Bun:
   * `server.requestIP(request)?.address`). When that peer is a proxy named in `trustProxy` of
   * `createHerald`, Herald reads the client's address from its `Forwarded` / `X-Forwarded-For`
   * header itself. Without it, per-IP limits do not apply.
   */
  readonly clientAddress?: (request: Request) => string | undefined;
  /**
   * Compress streams for clients that accept it (see `compression` of `createHerald`, which
   * applies when this is not given).
   */
  readonly compression?: CompressionOption;
}

/** Bytes a stream may hold before the hub waits for the reader. */
const STREAM_HIGH_WATER_MARK = 64 * 1024;

/**
 * A web-standard `(Request) => Promise<Response>` handler, for Next.js App Router route
 * handlers, Hono, Bun, Deno and anything else built on the Fetch API.
 */
export function webHandler(
  herald: Herald,
  options: WebHandlerOptions = {},
): (request: Request) => Promise<Response> {
  const basePath = (options.basePath ?? '').replace(/\/+$/, '');
  const compression = compressionFor(herald, options);
  return async (request) => {
    const url = new URL(request.url);
    const path = url.pathname;
    // Outside the base path nothing is Herald's: `/v1/events` at the root must not open a stream
    // when Herald lives under `/api/herald`.
    const outside = basePath !== '' && path !== basePath && !path.startsWith(`${basePath}/`);
    return respond(
      herald,
      request,
      url,
      outside ? undefined : path.slice(basePath.length) || '/',
      options,
      compression,
    );
  };
}

/**
 * Only the event stream, `GET /v1/events` with its query (`topic`, `type`, `tag.*`,
 * `lastEventId`), at whatever path the handler is mounted: for a route of its own, e.g. Next.js's
 * `app/api/events/route.ts` with `export const GET = eventsHandler(herald)`, opened by
 * `new EventSource('/api/events?topic=…')`. Everything else (publishing, `herald/client`'s
 * polling fallback and subscription changes) needs `webHandler`.
 */
export function eventsHandler(
  herald: Herald,
  options: Pick<WebHandlerOptions, 'clientAddress' | 'compression'> = {},
): (request: Request) => Promise<Response> {
  const compression = compressionFor(herald, options);
  return async (request) =>
    respond(herald, request, new URL(request.url), '/v1/events', options, compression);
}

/** The adapter's own `compression` option, else the hub's. */
function compressionFor(
  herald: Herald,
  options: Pick<WebHandlerOptions, 'compression'>,
): StreamCompression | undefined {
  return options.compression === undefined ? herald.compression : compressionOf(options.compression);
}

/** Answers `request` as Herald's route `path`; undefined: the path is not Herald's (404). */
async function respond(
  herald: Herald,
  request: Request,
  url: URL,
  path: string | undefined,
  options: WebHandlerOptions,
  compression: StreamCompression | undefined,
): Promise<Response> {
  let reply: HttpReply;
  try {
    reply =
      (path === undefined
        ? undefined
        : await herald.http.handle(
            new WebRequest(request, path, url.searchParams, clientAddress(herald, request, options)),
          )) ??
      herald.http.notFound(path ?? url.pathname, request.headers.get(REQUEST_ID_HEADER) ?? undefined);
  } catch (error) {
    reply = herald.http.problemReply(error);
  }
  if (reply.kind === 'response') {
    const body = request.method === 'HEAD' ? null : reply.body;
    return new Response(body, { status: reply.status, headers: reply.headers });
  }
  // Decided once per stream, here: without compression nothing below changes.
  if (compression === undefined) {
    return new Response(openStream(reply, request.signal, undefined), {
      status: 200,
      headers: reply.headers,
    });
  }
  const coding = compression.negotiate(request.headers.get('accept-encoding') ?? undefined);
  return new Response(openStream(reply, request.signal, coding), {
    status: 200,
    headers: withCoding(reply.headers, coding),
  });
}

/** The peer the server reports, or the client a trusted proxy forwarded for (`trustProxy`). */
function clientAddress(herald: Herald, request: Request, options: WebHandlerOptions): string | undefined {
  return herald.clientAddress(
    options.clientAddress?.(request),
    (name) => request.headers.get(name) ?? undefined,
  );
}

class WebRequest implements HttpRequest {
  readonly method: string;
  readonly path: string;
  readonly query: URLSearchParams;
  readonly remoteAddress: string | undefined;
  readonly signal: AbortSignal;
  private readonly request: Request;

  constructor(request: Request, path: string, query: URLSearchParams, remoteAddress: string | undefined) {
    this.request = request;
    this.remoteAddress = remoteAddress;
    this.signal = request.signal;
    this.method = request.method;
    this.path = path;
    this.query = query;
  }

  header(name: string): string | undefined {
    return this.request.headers.get(name) ?? undefined;
  }

  async body(limit: number): Promise<Uint8Array> {
    const declared = Number(this.request.headers.get('content-length'));
    if (declared > limit) throw tooLarge(declared, limit);
    if (this.request.body === null) return new Uint8Array();
    const chunks: Uint8Array[] = [];
    let size = 0;
    const reader = this.request.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > limit) {
        await reader.cancel();
        throw tooLarge(size, limit, 'over ');
      }
      chunks.push(value);
    }
    const body = new Uint8Array(size);
    let offset = 0;
    for (const chunk of chunks) {
      body.set(chunk, offset);
      offset += chunk.byteLength;
    }
    return body;
  }
}

const tooLarge = (size: number, limit: number, qualifier = '') =>
  new HeraldError(
    413,
    'body-too-large',
    `the body is ${qualifier}${formatBytes(size)}; the limit is ${formatBytes(limit)}`,
  );

/**
 * The stream's queue is the socket buffer of the web world: `desiredSize` says when it is full
 * and `pull` when the reader has taken enough to want more.
 */
function openStream(
  reply: HttpStream,
  signal: AbortSignal,
  coding: ContentCoding | undefined,
): ReadableStream<Uint8Array> {
  let subscriber: Subscriber | undefined;
  let sink: StreamSink | undefined;
  let compressing: CompressingSink | undefined;
  // The client left (request.signal): forget the subscriber and end the body, so a server that
  // does not cancel it by itself does not keep a dead stream.
  const abort = () => {
    subscriber?.closed();
    sink?.end();
    compressing?.release();
  };
  return new ReadableStream<Uint8Array>(
    {
      start(controller) {
        // Aborted while the request was authenticated: nobody will ever read or cancel this body.
        if (signal.aborted) {
          reply.discard();
          controller.close();
          return;
        }
        sink = new StreamSink(controller, () => signal.removeEventListener('abort', abort));
        signal.addEventListener('abort', abort, { once: true });
        compressing = coding === undefined ? undefined : new CompressingSink(coding, sink);
        subscriber = reply.open(compressing ?? sink);
      },
      pull() {
        subscriber?.drained();
      },
      cancel() {
        signal.removeEventListener('abort', abort);
        subscriber?.closed();
        compressing?.release();
      },
    },
    { highWaterMark: STREAM_HIGH_WATER_MARK, size: (chunk) => chunk.byteLength },
  );
}

class StreamSink implements Sink {
  private readonly controller: ReadableStreamDefaultController<Uint8Array>;
  /** Called once the stream is over, whoever ended it. */
  private readonly onEnd: () => void;
  private open = true;

  constructor(controller: ReadableStreamDefaultController<Uint8Array>, onEnd: () => void) {
    this.controller = controller;
    this.onEnd = onEnd;
  }

  write(chunks: readonly Uint8Array[]): boolean {
    if (!this.open) return false;
    try {
      for (const chunk of chunks) this.controller.enqueue(chunk);
    } catch {
      // The reader went away between our last check and now.
      this.open = false;
      this.onEnd();
      return false;
    }
    return (this.controller.desiredSize ?? 0) > 0;
  }

  end(): void {
    if (!this.open) return;
    this.open = false;
    this.onEnd();
    try {
      this.controller.close();
    } catch {
      // Already cancelled by the reader.
    }
  }

  destroy(): void {
    if (!this.open) return;
    this.open = false;
    this.onEnd();
    this.controller.error(new Error('herald: stream closed, the client could not keep up'));
  }
}
