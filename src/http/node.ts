import { type IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { formatBytes, HeraldError } from '../core/errors.ts';
import type { Sink, Subscriber } from '../core/subscriber.ts';
import type { Herald } from '../herald.ts';
import { REQUEST_ID_HEADER } from '../observability/request-id.ts';
import {
  CompressingSink,
  type CompressionOption,
  compressionOf,
  type StreamCompression,
} from './compression.ts';
import { withCoding } from './content-coding.ts';
import { type AnyRequest, type AnyResponse, forHttp2, Http2Sink, isGone, isHttp2 } from './http2.ts';
import { hasParser, settleStream } from './release.ts';
import type { HttpReply, HttpRequest } from './request.ts';

export interface NodeHandlerOptions {
  /** The path Herald is mounted under on a plain node:http server, e.g. `/realtime`. Express and
   * Fastify strip their mount path themselves. */
  readonly basePath?: string;
  /**
   * Compress streams for clients that accept it (see `compression` of `createHerald`, which
   * applies when this is not given).
   */
  readonly compression?: CompressionOption;
}

/**
 * A `(req, res, next?)` handler for node:http, node:http2's compatibility API (HTTP/2 and its
 * HTTP/1.1 fallback), Express and Connect-style stacks.
 */
export interface NodeHandler {
  (req: AnyRequest, res: AnyResponse, next?: (error?: unknown) => void): void;
  /**
   * Ends every stream this handler has open, each with a jittered `retry:` hint (as
   * `herald.close()` does), and leaves the hub running. A server's `close()` waits for open
   * responses, and an event stream never ends by itself: call this first to shut a server down
   * while the hub lives on (the Fastify plugin does it in `preClose`).
   */
  closeStreams(): void;
}

/**
 * Mounts Herald on node:http or Express:
 * `http.createServer(nodeHandler(herald))`, `app.use('/realtime', nodeHandler(herald))`.
 * Paths that are not Herald's go to `next` when there is one, else get a 404 problem.
 */
export function nodeHandler(herald: Herald, options: NodeHandlerOptions = {}): NodeHandler {
  const basePath = (options.basePath ?? '').replace(/\/+$/, '');
  const streams = new Set<Subscriber>();
  const compression =
    options.compression === undefined ? herald.compression : compressionOf(options.compression);
  const handler = (anyReq: AnyRequest, anyRes: AnyResponse, next?: (error?: unknown) => void): void => {
    // node:http2's compatibility API has what is used here under node:http's names; http2.ts
    // covers where the two differ.
    const req = anyReq as IncomingMessage;
    const res = anyRes as ServerResponse;
    const url = req.url ?? '/';
    const queryStart = url.indexOf('?');
    let path = queryStart === -1 ? url : url.slice(0, queryStart);
    const outside = basePath !== '' && path !== basePath && !path.startsWith(`${basePath}/`);
    if (!outside) path = path.slice(basePath.length) || '/';
    const request = new NodeRequest(
      req,
      res,
      path,
      queryStart === -1 ? '' : url.slice(queryStart + 1),
      herald,
    );
    // Whatever fails while answering is this request's problem, never an unhandled rejection.
    const failed = (error: unknown) => {
      herald.onError(error, 'request failed');
      res.destroy();
    };
    const answer = outside ? Promise.resolve(undefined) : herald.http.handle(request);
    // One reaction per request, not a chain of them: this runs for every publish.
    answer.then(
      (reply) => {
        try {
          if (reply === undefined && next !== undefined) next();
          else
            send(
              req,
              res,
              reply ?? herald.http.notFound(path, request.header(REQUEST_ID_HEADER)),
              streams,
              compression,
            );
        } catch (error) {
          failed(error);
        }
      },
      (error: unknown) => {
        try {
          send(req, res, herald.http.problemReply(error), streams, compression);
        } catch (failure) {
          failed(failure);
        }
      },
    );
  };
  return Object.assign(handler, {
    closeStreams(): void {
      for (const subscriber of [...streams]) herald.hub.end(subscriber, 'shutdown');
    },
  });
}

class NodeRequest implements HttpRequest {
  readonly method: string;
  readonly path: string;
  readonly remoteAddress: string | undefined;
  private readonly req: IncomingMessage;
  private readonly res: ServerResponse;
  private aborted: AbortController | undefined;
  private readonly queryText: string;
  private parsedQuery: URLSearchParams | undefined;

  constructor(req: IncomingMessage, res: ServerResponse, path: string, queryText: string, herald: Herald) {
    this.req = req;
    this.res = res;
    // The socket's peer, or the client a trusted proxy forwarded for (`trustProxy`).
    this.remoteAddress = herald.clientAddress(req.socket.remoteAddress, (name) => this.header(name));
    this.method = req.method ?? 'GET';
    this.path = path;
    this.queryText = queryText;
  }

  /** Parsed on first use: a publish has no query to read. */
  get query(): URLSearchParams {
    this.parsedQuery ??= new URLSearchParams(this.queryText);
    return this.parsedQuery;
  }

  /** Made on first use: only a long poll needs to know that its client left. */
  get signal(): AbortSignal {
    if (this.aborted === undefined) {
      const controller = new AbortController();
      this.aborted = controller;
      // Asked for after the client left (while authenticating): 'close' will not come again.
      if (isGone(this.res)) controller.abort();
      else {
        // Not writableFinished: an HTTP/2 stream reset by its client counts as finished.
        this.res.once('close', () => {
          if (!this.res.writableEnded) controller.abort();
        });
      }
    }
    return this.aborted.signal;
  }

  header(name: string): string | undefined {
    const value = this.req.headers[name];
    return Array.isArray(value) ? value.join(', ') : value;
  }

  async body(limit: number): Promise<Uint8Array> {
    const req = this.req as IncomingMessage & { body?: unknown };
    // A body parser mounted before Herald (express.json()) has already read the stream.
    const parsed = req.readableEnded && req.body !== undefined;
    if (parsed) {
      const bytes =
        typeof req.body === 'string' || req.body instanceof Uint8Array
          ? Buffer.from(req.body)
          : Buffer.from(JSON.stringify(req.body));
      // The parser's own limit (express.json(): 100 KiB) is not Herald's: apply maxBodyBytes too.
      if (bytes.length > limit) throw tooLarge(bytes.length, limit);
      return bytes;
    }
    const declared = Number(req.headers['content-length']);
    if (declared > limit) throw tooLarge(declared, limit);
    const whole = isHttp2(req) ? undefined : bufferedBody(req);
    if (whole !== undefined) {
      if (whole.length > limit) throw tooLarge(whole.length, limit, 'over');
      return whole;
    }
    return readBody(req, limit);
  }
}

/**
 * The body of an HTTP/1.x request that node:http has already parsed to its end, taken at once; or
 * undefined when part of it is still to come (or it was read already). A small publish arrives
 * with its headers, so by the time a route asks for it the body waits in the request's buffer:
 * one synchronous read, where reading it as a stream takes an iterator, a promise per chunk and
 * a turn of the event loop.
 */
function bufferedBody(req: IncomingMessage): Uint8Array | undefined {
  if (!req.complete || req.readableFlowing === true || req.readableEnded || req.destroyed) return undefined;
  if (req.readableLength === 0) return EMPTY_BODY;
  // Without a size, read() hands over everything buffered at once (null once nothing is left).
  const first = req.read() as Buffer | null;
  if (first === null) return EMPTY_BODY;
  if (req.readableLength === 0) return first;
  const chunks = [first];
  for (let chunk = req.read() as Buffer | null; chunk !== null; chunk = req.read() as Buffer | null) {
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** The body as it arrives: at most `limit` bytes, else 413; cut short, 400 `body-incomplete`. */
function readBody(req: IncomingMessage, limit: number): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const settle = (error: HeraldError | undefined) => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onIncomplete);
      req.off('close', onIncomplete);
      if (error === undefined) resolve(Buffer.concat(chunks, size));
      else reject(error);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        // The rest flows on to no one (the request stays flowing), and the connection closes
        // after the answer (`connection: close`).
        settle(tooLarge(size, limit, 'over'));
        return;
      }
      chunks.push(chunk);
    };
    // An HTTP/2 request whose stream was reset ends as if complete: it must not pass for the body.
    const onEnd = () => settle((req as { aborted?: boolean }).aborted === true ? incomplete() : undefined);
    // The client went away mid-upload ('aborted'): its request, not a failure of the hub to log.
    const onIncomplete = () => settle(incomplete());
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onIncomplete);
    req.on('close', onIncomplete);
    // Read to its end already (by middleware that kept nothing): an empty body, as an empty stream gives.
    if (req.readableEnded) settle(undefined);
    else if (req.destroyed) onIncomplete();
  });
}

function incomplete(): HeraldError {
  return new HeraldError(400, 'body-incomplete', 'the connection closed before the whole body arrived', {
    headers: { connection: 'close' },
  });
}

function tooLarge(size: number, limit: number, qualifier = ''): HeraldError {
  return new HeraldError(
    413,
    'body-too-large',
    `the body is ${qualifier ? `${qualifier} ` : ''}${formatBytes(size)}; the limit is ${formatBytes(limit)}`,
    // The rest of the body is never read, so this connection cannot carry another request.
    { headers: { connection: 'close' } },
  );
}

const EMPTY_BODY = new Uint8Array(0);

function send(
  req: IncomingMessage,
  res: ServerResponse,
  reply: HttpReply,
  streams: Set<Subscriber>,
  compression: StreamCompression | undefined,
): void {
  if (res.headersSent || isGone(res)) {
    if (reply.kind === 'stream') reply.discard();
    return;
  }
  if (reply.kind === 'response') {
    if (isHttp2(req)) res.writeHead(reply.status, forHttp2(reply.headers));
    else {
      // With its length known up front, node:http sends the head and the body in one write, not
      // chunked pieces gathered into a writev.
      res.writeHead(
        reply.status,
        reply.status === 204 || reply.status === 304 || reply.headers['content-length'] !== undefined
          ? reply.headers
          : { ...reply.headers, 'content-length': String(Buffer.byteLength(reply.body)) },
      );
    }
    res.end(reply.body);
    return;
  }
  // Decided once per stream, here: without compression nothing below changes.
  const coding = compression?.negotiate(req.headers['accept-encoding']);
  const headers = compression === undefined ? reply.headers : withCoding(reply.headers, coding);
  try {
    // Connection headers are forbidden on HTTP/2.
    res.writeHead(
      200,
      req.httpVersionMajor === 1 ? { ...headers, connection: 'keep-alive' } : forHttp2(headers),
    );
  } catch (error) {
    // A header Node will not send: the stream never opens, so its admission slots go back.
    reply.discard();
    throw error;
  }
  req.socket.setTimeout(0);
  req.socket.setNoDelay(true);
  // On the socket now, ahead of any frame NodeSink may write to it directly. Not flushHeaders():
  // it writes the header block as UTF-8, which mangles a header that carries bytes (an id's UTF-8
  // in Mercure's Last-Event-ID); an empty write sends it as the bytes it is, and no chunk.
  res.write(EMPTY_BODY);
  const transport = isHttp2(req) ? new Http2Sink(res) : new NodeSink(res);
  const compressing = coding === undefined ? undefined : new CompressingSink(coding, transport);
  const subscriber = reply.open(compressing ?? transport);
  settleStream(req, res);
  streams.add(subscriber);
  const drained = () => subscriber.drained();
  res.on('drain', drained);
  // Frames written straight to the socket (NodeSink) make node:http's response none the wiser.
  if (!isHttp2(req)) req.socket.on('drain', drained);
  res.on('close', () => {
    streams.delete(subscriber);
    subscriber.closed();
    compressing?.release();
  });
}

const PLAIN_WRITE = ServerResponse.prototype.write;
const CRLF = Buffer.from('\r\n');
const LAST_CHUNK = Buffer.from('0\r\n\r\n');
// Fan-out hands the same frames to every recipient in turn (the same events, the same
// visibility): remembering the last ones framed frames them once per flush, not per recipient.
// Frames are never changed once made, so the same objects are the same bytes.
let framedFrom: readonly Uint8Array[] = [];
let framed: Uint8Array = CRLF;

/** `frames`, `size` bytes in all, as one HTTP/1.1 chunk in one buffer. */
function chunkOf(frames: readonly Uint8Array[], size: number): Uint8Array {
  if (!sameFrames(frames, framedFrom)) {
    const hex = size.toString(16);
    const chunk = Buffer.allocUnsafe(hex.length + size + 4);
    let at = chunk.write(hex, 0, 'latin1');
    chunk[at++] = 0x0d;
    chunk[at++] = 0x0a;
    for (const frame of frames) {
      chunk.set(frame, at);
      at += frame.byteLength;
    }
    chunk[at++] = 0x0d;
    chunk[at] = 0x0a;
    framed = chunk;
    // A copy: the flusher reuses its array of one.
    framedFrom = frames.slice();
  }
  return framed;
}

function sameFrames(a: readonly Uint8Array[], b: readonly Uint8Array[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Frames as one HTTP/1.1 chunk on the socket: one write, one system call. */
function writeChunks(socket: Socket, frames: readonly Uint8Array[]): boolean {
  let size = 0;
  for (const frame of frames) size += frame.byteLength;
  // An empty chunk would be the one that ends the body.
  if (size === 0) return !socket.writableNeedDrain;
  socket.write(chunkOf(frames, size));
  return !socket.writableNeedDrain;
}

/** Writes frames to a ServerResponse; several frames go out as one write. */
class NodeSink implements Sink {
  private readonly res: ServerResponse & { flush?: () => void };

  constructor(res: ServerResponse) {
    this.res = res;
  }

  write(chunks: readonly Uint8Array[]): boolean {
    const res = this.res;
    if (res.destroyed) return false;
    const socket = res.socket;
    if (socket !== null && this.writesDirectly(socket)) return writeChunks(socket, chunks);
    if (chunks.length === 1) res.write(chunks[0] as Uint8Array);
    else {
      // Corking the socket, not the response: a corked chunked response still makes one system
      // call (and, with no-delay, one packet) per piece; a corked socket makes one writev.
      socket?.cork();
      for (const chunk of chunks) res.write(chunk);
      socket?.uncork();
    }
    // Compression middleware that ignored `no-transform` still gets each batch out now.
    res.flush?.();
    // Not write()'s return value: uncork() may already have emitted 'drain', and waiting for
    // another one would stall this stream for good.
    return !res.writableNeedDrain;
  }

  /**
   * Once node:http has sent the headers and let go of the connection (release.ts), nothing else
   * will use it: frames go straight to the socket with their chunk framing, built once for every
   * recipient of a frame, instead of through the response's per-write framing and cork tick. Not
   * when middleware wraps `res.write` (compression): its output is what must be sent.
   */
  private writesDirectly(socket: Socket): boolean {
    const res = this.res;
    return res.headersSent && res.chunkedEncoding && res.write === PLAIN_WRITE && !hasParser(socket);
  }

  end(): void {
    const res = this.res;
    const socket = res.socket;
    if (socket !== null && this.writesDirectly(socket)) {
      // The response never saw those frames; it must not end them with its own framing.
      socket.end(LAST_CHUNK);
      return;
    }
    res.end();
    // Without its parser (settleStream) the connection would wait for a request nobody reads.
    if (socket !== null && !hasParser(socket)) socket.end();
  }

  destroy(): void {
    this.res.destroy();
  }
}
