import { badRequest, HeraldError } from '../core/errors.ts';
import { hasControlCharacter } from '../core/event.ts';
import { EventFilter } from '../core/filters.ts';
import { shuttingDown } from '../core/hub.ts';
import { healthOf } from '../core/log.ts';
import type { Principal } from '../core/principal.ts';
import { parseSelectors } from '../core/topics.ts';
import { DASHBOARD_ROUTES } from '../dashboard/routes.ts';
import type { Herald } from '../herald.ts';
import { METRICS_CONTENT_TYPE, metricsOf } from '../observability/metrics.ts';
import { REQUEST_ID_HEADER, requestIdOf } from '../observability/request-id.ts';
import { headerText } from './header-text.ts';
import { parseJsonBody } from './json-body.ts';
import type { HttpReply, HttpRequest, HttpResponse } from './request.ts';
import { refuseReservedTopics } from './reserved-topics.ts';

/**
 * The HTTP API v1, independent of any server: adapters turn their request into an `HttpRequest`
 * and write back the `HttpReply`.
 */

type Handler = (herald: Herald, request: HttpRequest) => Promise<HttpReply>;
/** A path's handlers by method. */
export type Route = Readonly<Record<string, Handler>>;

const ROUTES: Readonly<Record<string, Route>> = {
  '/v1/events': { GET: subscribe },
  '/v1/events/poll': { GET: poll },
  '/v1/subscriptions': { POST: changeSubscriptions },
  '/v1/publish': { POST: publish },
  '/v1/stats': { GET: stats },
  '/healthz': { GET: health },
  '/readyz': { GET: readiness },
  '/metrics': { GET: metrics },
  ...DASHBOARD_ROUTES,
};

const JSON_TYPE = 'application/json; charset=utf-8';
const PROBLEM_TYPE = 'application/problem+json; charset=utf-8';

export const SSE_HEADERS: Readonly<Record<string, string>> = {
  'content-type': 'text/event-stream; charset=utf-8',
  // no-transform also keeps compression middleware (Express's compression()) from buffering events.
  'cache-control': 'no-cache, no-transform',
  'x-accel-buffering': 'no',
};

/**
 * Answers a request, or `undefined` when no Herald route has that path (the adapter then passes
 * it on to the host app, or answers 404). Never throws: every failure becomes problem+json.
 */
export async function handle(herald: Herald, request: HttpRequest): Promise<HttpReply | undefined> {
  const route = routeOf(herald, request.path);
  if (route === undefined) return undefined;
  const requestId = requestIdOf(request.header(REQUEST_ID_HEADER));
  request.requestId = requestId;
  let reply: HttpReply;
  try {
    // Per IP; a publish is counted against its credential instead, once it verifies (limits.ts).
    herald.limits.admit(request);
    reply =
      request.method === 'OPTIONS' ? options(herald, request, route) : await dispatch(herald, request, route);
  } catch (error) {
    noteFailure(herald, request, error);
    reply = problemReply(error, herald.logger === undefined ? herald : undefined);
  }
  // Errors carry the CORS headers too, or a page could not read why it was refused.
  const cors = herald.cors.responseHeaders(request.header('origin'));
  return { ...reply, headers: { ...reply.headers, ...cors, [REQUEST_ID_HEADER]: requestId } };
}

/** The route of `path`, unless the app turned that part off (`metrics: false`, `dashboard: false`). */
function routeOf(herald: Herald, path: string): Route | undefined {
  if (path === '/metrics' && !herald.serves.metrics) return undefined;
  if (path in DASHBOARD_ROUTES && !herald.serves.dashboard) return undefined;
  return ROUTES[path] ?? herald.mercure?.routeFor(path);
}

/** Counts refused credentials for `/metrics` and logs the failure with its request id. */
function noteFailure(herald: Herald, request: HttpRequest, error: unknown): void {
  const problem = error instanceof HeraldError ? error : undefined;
  if (problem !== undefined && (problem.status === 401 || problem.status === 403)) {
    herald.authFailures.set(problem.code, (herald.authFailures.get(problem.code) ?? 0) + 1);
  }
  const logger = herald.logger;
  if (logger === undefined) return;
  const fields = { requestId: request.requestId, method: request.method, path: request.path };
  if (problem === undefined) logger.error({ ...fields, err: error }, 'request failed');
  else logger.info({ ...fields, status: problem.status, code: problem.code }, problem.detail);
}

function dispatch(herald: Herald, request: HttpRequest, route: Route): Promise<HttpReply> {
  const method = request.method === 'HEAD' && request.path !== '/v1/events' ? 'GET' : request.method;
  const handler = route[method];
  if (handler === undefined) {
    const allow = Object.keys(route).join(', ');
    throw new HeraldError(
      405,
      'method-not-allowed',
      `${request.method} is not allowed on ${request.path}; use ${allow}`,
      {
        headers: { allow },
      },
    );
  }
  return handler(herald, request);
}

/** A CORS preflight, or a plain OPTIONS that asks what the route allows. */
function options(herald: Herald, request: HttpRequest, route: Route): HttpResponse {
  const methods = Object.keys(route);
  const preflight = herald.cors.preflight(
    request.header('origin'),
    request.header('access-control-request-method'),
    methods,
  );
  const answer = preflight ?? { status: 204, headers: { allow: [...methods, 'OPTIONS'].join(', ') } };
  return { kind: 'response', status: answer.status, headers: answer.headers, body: '' };
}

/** 404 for a path Herald does not serve, with the request's id like every other answer. */
export function notFound(path: string, requestIdHeader?: string): HttpResponse {
  const reply = problemReply(
    new HeraldError(404, 'not-found', `no route ${path}; Herald serves ${Object.keys(ROUTES).join(', ')}`),
  );
  return { ...reply, headers: { ...reply.headers, [REQUEST_ID_HEADER]: requestIdOf(requestIdHeader) } };
}

export function problemReply(error: unknown, herald?: Herald): HttpResponse {
  if (!(error instanceof HeraldError)) {
    herald?.onError(error, 'request failed');
    error = new HeraldError(
      500,
      'internal',
      'the hub failed to handle this request; the error is in its log',
    );
  }
  const problem = error as HeraldError;
  return {
    kind: 'response',
    status: problem.status,
    headers: { 'content-type': PROBLEM_TYPE, ...problem.headers },
    body: JSON.stringify(problem.toProblem()),
  };
}

const json = (status: number, value: unknown): HttpResponse => ({
  kind: 'response',
  status,
  headers: { 'content-type': JSON_TYPE, 'cache-control': 'no-store' },
  body: JSON.stringify(value),
});

async function subscribe(herald: Herald, request: HttpRequest): Promise<HttpReply> {
  const principal = await herald.authenticate(request, 'subscribe');
  const subscription = await subscriptionOf(herald, request, principal);
  const release = herald.limits.openStream(
    request.remoteAddress ?? '',
    principal.subject,
    subscription.tenant,
  );
  const withRelease = { ...subscription, onClose: release, requestId: request.requestId };
  return {
    kind: 'stream',
    headers: SSE_HEADERS,
    open(sink) {
      try {
        return herald.hub.subscribe(withRelease, sink);
      } catch (error) {
        release();
        throw error;
      }
    },
    discard: release,
  };
}

/** `GET /v1/events/poll`: the same subscription as a stream, answered as a JSON batch. */
async function poll(herald: Herald, request: HttpRequest): Promise<HttpReply> {
  const principal = await herald.authenticate(request, 'subscribe');
  const subscription = await subscriptionOf(herald, request, principal, request.query.get('after'));
  const wait = numberParameter(
    request.query.get('wait'),
    'wait',
    0,
    MAX_POLL_WAIT_SEC,
    DEFAULT_POLL_WAIT_SEC,
  );
  const limit = numberParameter(request.query.get('limit'), 'limit', 1, MAX_POLL_LIMIT, DEFAULT_POLL_LIMIT);
  return json(200, await herald.hub.poll(subscription, wait * 1000, limit, request.signal));
}

const DEFAULT_POLL_WAIT_SEC = 25;
const MAX_POLL_WAIT_SEC = 60;
const DEFAULT_POLL_LIMIT = 100;
const MAX_POLL_LIMIT = 1000;

function numberParameter(
  value: string | null,
  name: string,
  min: number,
  max: number,
  fallback: number,
): number {
  if (value === null || value === '') return fallback;
  const number = Number(value);
  if (!Number.isInteger(number) || number < min || number > max) {
    throw badRequest(`invalid-${name}`, `${name} must be a whole number from ${min} to ${max}`);
  }
  return number;
}

/** `POST /v1/subscriptions`: add or remove topics of an open stream, on the credential that opened it. */
async function changeSubscriptions(herald: Herald, request: HttpRequest): Promise<HttpReply> {
  const principal = await herald.authenticate(request, 'subscribe');
  if (principal.via === 'cookie') herald.cors.checkCookieOrigin(request.header('origin'));
  const body = await jsonBody(herald, request);
  const { connectionId, secret, action, topics } = (body ?? {}) as Record<string, unknown>;
  if (typeof connectionId !== 'string' || connectionId === '') {
    throw badRequest(
      'connection-required',
      'connectionId is required: the one herald.connected gave the stream',
    );
  }
  if (typeof secret !== 'string' || secret === '') {
    throw badRequest(
      'secret-required',
      'secret is required: the one herald.connected gave the stream, which proves the request comes from whoever holds it',
    );
  }
  if (action !== 'subscribe' && action !== 'unsubscribe') {
    throw badRequest('invalid-action', 'action must be "subscribe" or "unsubscribe"');
  }
  const sources = typeof topics === 'string' ? [topics] : topics;
  if (!Array.isArray(sources) || sources.length === 0 || !sources.every((t) => typeof t === 'string')) {
    throw badRequest('topic-required', 'topics must be a topic selector or a non-empty array of them');
  }
  checkSelectorLengths(herald, sources);
  const selectors = parseSelectors(sources, herald.maxTopicsPerSubscription);
  const now = herald.hub.changeSubscription(
    connectionId,
    secret,
    principal,
    action,
    selectors,
    herald.maxTopicsPerSubscription,
  );
  return json(200, { connectionId, topics: now });
}

/**
 * What a stream (or a poll) asks for: topics, filters, where to resume. The header wins over the
 * query for the resume point: EventSource sets it on reconnect, while the query holds what the
 * page had at load.
 */
async function subscriptionOf(
  herald: Herald,
  request: HttpRequest,
  principal: Principal,
  after?: string | null,
) {
  const { query } = request;
  const topics = [...new Set(query.getAll('topic'))];
  if (topics.length === 0) {
    throw badRequest(
      'topic-required',
      'topic is required: add ?topic=<topic or URI template> (repeatable), e.g. ?topic=dealers/{dealerId}/scores',
    );
  }
  checkSelectorLengths(herald, topics);
  const selectors = parseSelectors(topics, herald.maxTopicsPerSubscription);
  const types = query.getAll('type');
  for (const type of types) {
    if (type.length === 0 || type.length > 128 || hasControlCharacter(type)) {
      throw badRequest(
        'invalid-type',
        `type filter ${JSON.stringify(type)} must be 1–128 characters, no control characters`,
      );
    }
  }
  const tags = new Map<string, string[]>();
  for (const [name, value] of query) {
    if (!name.startsWith('tag.')) continue;
    const tag = name.slice(4);
    if (tag.length === 0) throw badRequest('invalid-tag', 'a tag filter needs a name: tag.<name>=<value>');
    tags.set(tag, [...(tags.get(tag) ?? []), value]);
  }
  const lastEventId =
    nonEmpty(after) ??
    nonEmpty(headerText(request.header('last-event-id'))) ??
    nonEmpty(query.get('lastEventId')) ??
    nonEmpty(query.get('lastEventID'));
  const tenant = watchedTenant(principal, query.get('tenant'));
  await streamable(herald);
  return {
    tenant,
    selectors,
    filter: EventFilter.of(types, tags),
    grants: principal.subscribe,
    permissions: principal.permissions,
    subject: principal.subject,
    expiresAt: principal.expiresAt,
    lastEventId,
  };
}

/** A stream is only worth opening on a hub that runs, with a broker that runs: else 503. */
export async function streamable(herald: Herald): Promise<void> {
  if (herald.hub.isClosing) throw shuttingDown();
  await herald.hub.whenReady().catch(() => {
    throw new HeraldError(
      503,
      'broker-unavailable',
      `the ${herald.broker.kind} broker is not available; retry shortly`,
    );
  });
}

export function checkSelectorLengths(herald: Herald, topics: readonly string[]): void {
  for (const topic of topics) {
    if (topic.length > herald.maxSelectorLength) {
      throw badRequest(
        'selector-too-long',
        `a topic selector is ${topic.length} characters long; the limit is ${herald.maxSelectorLength}`,
      );
    }
  }
}

/** A stream watches its credential's tenant; only an admin may name another, or `*` for all. */
function watchedTenant(principal: Principal, requested: string | null): string {
  if (requested === null || requested === principal.tenant) return principal.tenant;
  if (!principal.admin) {
    throw new HeraldError(
      403,
      'tenant-forbidden',
      `this credential belongs to tenant "${principal.tenant}"; only admin credentials may watch tenant "${requested}"`,
    );
  }
  return requested;
}

/** A parameter or header that is absent or empty is not there. */
export const nonEmpty = (value: string | null | undefined) => (value ? value : undefined);

async function publish(herald: Herald, request: HttpRequest): Promise<HttpReply> {
  const principal = await herald.authenticate(request, 'publish');
  // A cookie rides along with any request the browser makes: only pages we trust may publish with it.
  if (principal.via === 'cookie') herald.cors.checkCookieOrigin(request.header('origin'));
  const body = await jsonBody(herald, request);
  refuseReservedTopics(body);
  herald.limits.admitPublish(principal, Array.isArray(body) ? body.length : 1);
  if (Array.isArray(body)) {
    const events = await herald.hub.publish(body, principal);
    return json(202, { ids: events.map((event) => event.id) });
  }
  const [event] = await herald.hub.publish([body], principal);
  return json(202, { id: event?.id });
}

/** Refuses (415) a body whose Content-Type, parameters aside, is not `expected`. */
export function requireMediaType(request: HttpRequest, expected: string): void {
  const contentType = request.header('content-type');
  const mediaType = contentType?.split(';', 1)[0]?.trim().toLowerCase();
  if (mediaType !== expected) {
    throw new HeraldError(
      415,
      'unsupported-media-type',
      `Content-Type must be ${expected}; got ${contentType ? JSON.stringify(contentType) : 'none'}`,
    );
  }
}

/** The request's JSON body, or the problem that says why there is none. */
async function jsonBody(herald: Herald, request: HttpRequest): Promise<unknown> {
  requireMediaType(request, 'application/json');
  return parseJsonBody(await request.body(herald.maxBodyBytes));
}

async function stats(herald: Herald, request: HttpRequest): Promise<HttpReply> {
  return json(200, await herald.stats(await herald.authenticate(request, 'stats')));
}

/** `GET /metrics`: Prometheus text format; admin credentials unless `metrics.public`. */
async function metrics(herald: Herald, request: HttpRequest): Promise<HttpReply> {
  if (herald.metricsOptions.public !== true) {
    const principal = await herald.authenticate(request, 'stats');
    if (!principal.admin) {
      throw new HeraldError(
        403,
        'admin-required',
        '/metrics needs admin credentials (a token with "admin": true), or a hub started with --metrics-public',
      );
    }
  }
  const body = await metricsOf(herald, herald.metricsOptions).render();
  return {
    kind: 'response',
    status: 200,
    headers: { 'content-type': METRICS_CONTENT_TYPE, 'cache-control': 'no-store' },
    body,
  };
}

async function health(): Promise<HttpReply> {
  return json(200, { status: 'ok' });
}

async function readiness(herald: Herald): Promise<HttpReply> {
  const broker = herald.broker.kind;
  const started = await herald.hub.whenReady().then(
    () => undefined,
    (error: unknown) => (error instanceof Error ? error.message : String(error)),
  );
  const health = started === undefined ? await healthOf(herald.broker) : { ok: false, detail: started };
  if (!health.ok) return json(503, { status: 'degraded', broker, detail: health.detail });
  // Serving, but not as configured: ready for traffic, and saying so.
  if (herald.degraded !== undefined)
    return json(200, { status: 'degraded', broker, degraded: herald.degraded });
  return json(200, { status: 'ok', broker });
}
