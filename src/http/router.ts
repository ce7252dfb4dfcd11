import { HeraldError } from '../core/errors.ts';
import { REQUEST_ID_HEADER, requestIdOf } from '../observability/request-id.ts';
import { AuthFailures } from './auth-failures.ts';
import type { HttpContext } from './context.ts';
import { problemReply } from './replies.ts';
import type { HttpReply, HttpRequest, HttpResponse } from './request.ts';
import type { Route, RouteTable } from './route-table.ts';

/**
 * The HTTP API, independent of any server: adapters turn their request into an `HttpRequest`
 * and write back the `HttpReply`. What is served is the route table the hub's parts filled; what
 * the router adds is the same for every route: admission, CORS, request ids, methods, and one
 * problem+json for every failure.
 */
export class Router {
  /** Refused credentials, for `/metrics`. */
  readonly authFailures = new AuthFailures();
  private readonly context: HttpContext;
  private readonly routes: RouteTable;

  constructor(context: HttpContext, routes: RouteTable) {
    this.context = context;
    this.routes = routes;
  }

  /**
   * Answers a request, or `undefined` when no Herald route has that path (the adapter then passes
   * it on to the host app, or answers 404). Never throws: every failure becomes problem+json.
   */
  async handle(request: HttpRequest): Promise<HttpReply | undefined> {
    const route = this.routes.find(request.path);
    if (route === undefined) return undefined;
    const context = this.context;
    const requestId = requestIdOf(request.header(REQUEST_ID_HEADER));
    request.requestId = requestId;
    let reply: HttpReply;
    try {
      // Per IP; a publish is counted against its credential instead, once it verifies (limits.ts).
      context.limits.admit(request);
      reply =
        request.method === 'OPTIONS' ? this.options(request, route) : await this.dispatch(request, route);
    } catch (error) {
      this.noteFailure(request, error);
      // With a logger, noteFailure has logged it already.
      reply = problemReply(error, context.logger === undefined ? context.onError : undefined);
    }
    // Errors carry the CORS headers too, or a page could not read why it was refused.
    const cors = context.cors.responseHeaders(request.header('origin'));
    return { ...reply, headers: { ...reply.headers, ...cors, [REQUEST_ID_HEADER]: requestId } };
  }

  /** 404 for a path Herald does not serve, with the request's id like every other answer. */
  notFound(path: string, requestIdHeader?: string): HttpResponse {
    const reply = problemReply(
      new HeraldError(404, 'not-found', `no route ${path}; Herald serves ${this.routes.paths().join(', ')}`),
    );
    return { ...reply, headers: { ...reply.headers, [REQUEST_ID_HEADER]: requestIdOf(requestIdHeader) } };
  }

  /** The problem+json answer for a failure outside `handle` (an adapter's own). */
  problemReply(error: unknown): HttpResponse {
    return problemReply(error, this.context.onError);
  }

  /** Counts refused credentials for `/metrics` and logs the failure with its request id. */
  private noteFailure(request: HttpRequest, error: unknown): void {
    const problem = error instanceof HeraldError ? error : undefined;
    if (problem !== undefined && (problem.status === 401 || problem.status === 403)) {
      this.authFailures.record(problem.code);
    }
    const logger = this.context.logger;
    if (logger === undefined) return;
    const fields = { requestId: request.requestId, method: request.method, path: request.path };
    if (problem === undefined) logger.error({ ...fields, err: error }, 'request failed');
    else logger.info({ ...fields, status: problem.status, code: problem.code }, problem.detail);
  }

  private dispatch(request: HttpRequest, route: Route): Promise<HttpReply> {
    const method = request.method === 'HEAD' && route.head ? 'GET' : request.method;
    const handler = route.handlers[method];
    if (handler === undefined) {
      const allow = Object.keys(route.handlers).join(', ');
      throw new HeraldError(
        405,
        'method-not-allowed',
        `${request.method} is not allowed on ${request.path}; use ${allow}`,
        { headers: { allow } },
      );
    }
    return handler(this.context, request);
  }

  /** A CORS preflight, or a plain OPTIONS that asks what the route allows. */
  private options(request: HttpRequest, route: Route): HttpResponse {
    const methods = Object.keys(route.handlers);
    const preflight = this.context.cors.preflight(
      request.header('origin'),
      request.header('access-control-request-method'),
      methods,
    );
    const answer = preflight ?? { status: 204, headers: { allow: [...methods, 'OPTIONS'].join(', ') } };
    return { kind: 'response', status: answer.status, headers: answer.headers, body: '' };
  }
}
