import { type IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { formatBytes, HeraldError } from '../core/errors.ts';
import type { Sink, Subscriber } from '../core/subscriber.ts';
import type { Herald } from '../herald.ts';
import { REQUEST_ID_HEADER } from '../observability/request-id.ts';
import { type AnyRequest, type AnyResponse, forHttp2, Http2Sink, isGone, isHttp2 } from './http2.ts';
import { hasParser, settleStream } from './release.ts';
import type { HttpReply, HttpRequest } from './request.ts';

export interface NodeHandlerOptions {
  /** The path Herald is mounted under on a plain node:http server, e.g. `/realtime`. Express and
   * Fastify strip their mount path themselves. */
  readonly basePath?: string;
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
      new URLSearchParams(queryStart === -1 ? '' : url.slice(queryStart + 1)),
      herald,
    );
    const answer = outside ? Promise.resolve(undefined) : herald.http.handle(request);
    answer
      .then(
        (reply) => {
          if (reply === undefined && next !== undefined) next();
          else
            send(req, res, reply ?? herald.http.notFound(path, request.header(REQUEST_ID_HEADER)), streams);
        },
        (error: unknown) => send(req, res, herald.http.problemReply(error), streams),
      )
      // Whatever fails while answering is this request's problem, never an unhandled rejection.
      .catch((error: unknown) => {
        herald.onError(error, 'request failed');
        res.destroy();
      });
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
  readonly query: URLSearchParams;
  readonly remoteAddress: string | undefined;
  private readonly req: IncomingMessage;
  private readonly res: ServerResponse;
  private aborted: AbortController | undefined;

  constructor(
    req: IncomingMessage,
    res: ServerResponse,
    path: string,
    query: URLSearchParams,
    herald: Herald,
  ) {
    this.req = req;
    this.res = res;
    // The socket's peer, or the client a trusted proxy forwarded for (`trustProxy`).
    this.remoteAddress = herald.clientAddress(req.socket.remoteAddress, (name) => this.header(name));
    this.method = req.method ?? 'GET';
    this.path = path;
    this.query = query;
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
    const chunks: Buffer[] = [];
    let size = 0;
    try {
      for await (const chunk of req as AsyncIterable<Buffer>) {
        size += chunk.length;
        if (size > limit) throw tooLarge(size, limit, 'over');
        chunks.push(chunk);
      }
      // An HTTP/2 request whose stream was reset ends as if complete: it must not pass for the body.
      if ((req as { aborted?: boolean }).aborted === true) throw new Error('aborted');
    } catch (error) {
      if (error instanceof HeraldError) throw error;
      // The client went away mid-upload ('aborted'): its request, not a failure of the hub to log.
      throw new HeraldError(400, 'body-incomplete', 'the connection closed before the whole body arrived', {
        headers: { connection: 'close' },
      });
    }
    return Buffer.concat(chunks, size);
  }
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

function send(req: IncomingMessage, res: ServerResponse, reply: HttpReply, streams: Set<Subscriber>): void {
  if (res.headersSent || isGone(res)) {
    if (reply.kind === 'stream') reply.discard();
    return;
  }
  if (reply.kind === 'response') {
    res.writeHead(reply.status, isHttp2(req) ? forHttp2(reply.headers) : reply.headers);
    res.end(reply.body);
    return;
  }
  try {
    // Connection headers are forbidden on HTTP/2.
    res.writeHead(
      200,
      req.httpVersionMajor === 1 ? { ...reply.headers, connection: 'keep-alive' } : forHttp2(reply.headers),
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
  const subscriber = reply.open(isHttp2(req) ? new Http2Sink(res) : new NodeSink(res));
  settleStream(req, res);
  streams.add(subscriber);
  const drained = () => subscriber.drained();
  res.on('drain', drained);
  // Frames written straight to the socket (NodeSink) make node:http's response none the wiser.
  if (!isHttp2(req)) req.socket.on('drain', drained);
  res.on('close', () => {
    streams.delete(subscriber);
    subscriber.closed();
  });
}

const PLAIN_WRITE = ServerResponse.prototype.write;
const CRLF = Buffer.from('\r\n');
const LAST_CHUNK = Buffer.from('0\r\n\r\n');
// Fan-out hands the same frame to every recipient in turn: remembering the last one framed
// frames it once.
let framedFrom: Uint8Array | undefined;
let framed: Uint8Array = CRLF;

function chunkOf(frame: Uint8Array): Uint8Array {
  if (frame !== framedFrom) {
    framed = Buffer.concat([Buffer.from(`${frame.byteLength.toString(16)}\r\n`, 'latin1'), frame, CRLF]);
    framedFrom = frame;
  }
  return framed;
}

/** Frames as HTTP/1.1 chunks on the socket: one chunk, one write system call. */
function writeChunks(socket: Socket, frames: readonly Uint8Array[]): boolean {
  let size = 0;
  for (const frame of frames) size += frame.byteLength;
  // An empty chunk would be the one that ends the body.
  if (size === 0) return !socket.writableNeedDrain;
  if (frames.length === 1) socket.write(chunkOf(frames[0] as Uint8Array));
  else {
    socket.cork();
    socket.write(`${size.toString(16)}\r\n`, 'latin1');
    for (const frame of frames) socket.write(frame);
    socket.write(CRLF);
    socket.uncork();
  }
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
