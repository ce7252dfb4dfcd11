import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

/**
 * What node:http keeps on an HTTP/1.x connection to parse its next request. Undocumented, so
 * every member is checked before anything is done with it; where one is missing the connection
 * keeps its parser, as before.
 */
interface RequestParser {
  incoming: unknown;
  socket: unknown;
  onIncoming: unknown;
  [callback: number]: unknown;
  unconsume(): void;
  remove(): void;
  close(): void;
}

type ParsedSocket = Socket & { parser?: RequestParser | null; server?: object };

interface ClosableServer {
  closeAllConnections?: () => void;
}

/**
 * An open event stream is the last response its HTTP/1.x connection will carry, yet node:http
 * keeps the connection's request parser for a next request: llhttp's state and the native copies
 * of the last request's header fields, about 6 KiB a connection, a third of what an idle stream
 * costs. Once the stream's headers are out it is freed, as node:http does itself when a
 * connection is upgraded. The connection then cannot carry another request: `NodeSink.end()`
 * closes it after the stream (`hasParser`).
 *
 * Also flattens the response's header text, which node:http keeps as a tree of the pieces it
 * concatenated (a few hundred bytes more than the text itself).
 */
export function settleStream(req: IncomingMessage, res: ServerResponse): void {
  const header = (res as { _header?: unknown })._header;
  // A regular expression run flattens its subject in place.
  if (typeof header === 'string') NOTHING.test(header);
  if (req.httpVersionMajor !== 1 || !req.complete) return;
  const socket = req.socket as ParsedSocket;
  const parser = socket.parser;
  if (!isParser(parser)) return;
  // Not now: this may run in a microtask under the parser's own callback, and its native side
  // must not be freed while it is still on the stack.
  setImmediate(release, socket, parser, req, res);
}

/** False once the stream's connection no longer has a parser: nothing would read a next request. */
export function hasParser(socket: Socket | null | undefined): boolean {
  return (socket as ParsedSocket | null | undefined)?.parser != null;
}

function release(
  socket: ParsedSocket,
  parser: RequestParser,
  req: IncomingMessage,
  res: ServerResponse,
): void {
  // Closed or ended meanwhile (node:http has freed or pooled the parser, or will read a next
  // request with it), or a pipelined request is being parsed: node:http answers that one once
  // the stream ends.
  if (socket.destroyed || res.writableEnded || socket.parser !== parser || parser.incoming !== req) return;
  parser.unconsume();
  // Out of the server's connection list (header and request timeouts), before the native side goes.
  parser.remove();
  // node:http's own handlers still hold this parser; without its native side they get nothing
  // back from it. It is not returned to node:http's pool, where another connection would get it.
  parser.close();
  socket.parser = null;
  // What it holds for this connection: nothing will call its callbacks again.
  parser.incoming = null;
  parser.socket = null;
  parser.onIncoming = null;
  const constants = parser.constructor as unknown as Record<string, unknown>;
  for (const name of CONNECTION_CALLBACKS) {
    const index = constants[name];
    if (typeof index === 'number') parser[index] = null;
  }
  trackForCloseAll(socket);
}

const NOTHING = /\0/;
/** The parser's callbacks that node:http binds to one connection (the others are shared). */
const CONNECTION_CALLBACKS = ['kOnExecute', 'kOnTimeout'];

function isParser(value: unknown): value is RequestParser {
  const parser = value as Partial<RequestParser> | null | undefined;
  return (
    typeof parser?.unconsume === 'function' &&
    typeof parser.remove === 'function' &&
    typeof parser.close === 'function'
  );
}

/**
 * `server.closeAllConnections()` finds connections through their parsers, so it would no longer
 * see a released one: the server's method is wrapped once to close those too.
 */
const released = new WeakMap<object, Set<Socket>>();

function trackForCloseAll(socket: ParsedSocket): void {
  const server = socket.server as ClosableServer | undefined;
  if (server === undefined) return;
  let sockets = released.get(server);
  if (sockets === undefined) {
    const closeAll = server.closeAllConnections;
    if (typeof closeAll !== 'function') return;
    const set = new Set<Socket>();
    sockets = set;
    released.set(server, set);
    server.closeAllConnections = function (this: ClosableServer): void {
      closeAll.call(this);
      for (const open of [...set]) open.destroy();
    };
  }
  sockets.add(socket);
  socket.on('close', forget);
}

function forget(this: ParsedSocket): void {
  if (this.server !== undefined) released.get(this.server)?.delete(this);
}
