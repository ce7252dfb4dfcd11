import { createHash } from 'node:crypto';
import { redactUrl } from '../backends/redact-url.ts';
import { HeraldError } from '../core/errors.ts';
import type { Principal } from '../core/principal.ts';
import type { HttpRequest } from '../http/request.ts';
import type { HeraldLogger } from '../observability/logger.ts';
import { type Allowed, denied, readAnswer, unavailable } from './auth-url-answer.ts';
import { type Authenticator, readCookie } from './token-authenticator.ts';

/**
 * App hooks, the asking half (`--auth-url`, `createHerald({ authUrl })`): a stream or publish
 * that carries no Herald token is put to the app, which knows its own sessions. Herald POSTs the
 * request's description with its cookies (and the other headers configured) to the app's
 * endpoint and takes the answer as it would a token's claims: 2xx with `{"allow": true, …}` lets
 * the caller in with the tenant and grants given, `{"allow": false}`, 401 or 403 refuse it.
 *
 * As nginx's auth_request (which Nchan's authorize request follows) and Centrifugo's connect
 * proxy do, any other status is the endpoint's failure, not the caller's: the request gets a 503
 * with `Retry-After`, within the timeout, never a hang. Unlike them, Herald reuses an answer
 * until the expiry it states, per (forwarded headers, action): a page's reconnects and its tabs
 * cost the app one call, and the same callers asking at once share one call.
 */

export interface AuthUrlOptions {
  /** The app's endpoint, http:// or https://. */
  readonly url: string;
  /**
   * Request headers sent on to the endpoint, and that an answer is cached under. Default
   * `cookie` and `authorization` (the app's own session, in a cookie or a header of its own).
   */
  readonly forwardHeaders?: readonly string[];
  /** How long the endpoint has to answer, ms. Default 2 000. */
  readonly timeoutMs?: number;
  /** Answers kept for reuse (least recently used go first); 0: none, the endpoint is asked every time. Default 10 000. */
  readonly cacheSize?: number;
  /**
   * Let an answer make the caller an admin of every tenant (`"admin": true`). Default false: such
   * an answer is refused as invalid, so a bug in the app's endpoint cannot hand out the whole hub.
   */
  readonly allowAdmin?: boolean;
  /** The `Retry-After` of a 503 when the endpoint fails, seconds. Default 2. */
  readonly retryAfterSec?: number;
}

export const DEFAULT_AUTH_URL = {
  forwardHeaders: ['cookie', 'authorization'],
  timeoutMs: 2_000,
  cacheSize: 10_000,
  retryAfterSec: 2,
} as const;

export interface AuthUrlStats {
  /** Calls made to the endpoint. */
  calls: number;
  /** Requests answered from the cache. */
  cached: number;
  /** Requests that waited on the call of an identical one. */
  shared: number;
  allowed: number;
  denied: number;
  /** Calls that failed: timeouts, network errors, other statuses, invalid answers. */
  failed: number;
  /** Answers in the cache now. */
  size: number;
}

export interface AuthUrlWiring {
  /** The token path, when the hub has JWT keys: a request with a token is its, not the app's. */
  readonly tokens: Authenticator | undefined;
  /** The cookie a token may come in (`auth.cookieName`). */
  readonly cookieName: string;
  /** Where a failing endpoint is reported, for the operator (the client gets a 503 only). */
  readonly logger?: HeraldLogger | undefined;
}

/** The largest answer read from the endpoint; more is an invalid answer, not a memory spike. */
const MAX_ANSWER_BYTES = 64 * 1024;

/** Headers that frame the call itself: forwarding the client's would corrupt it. */
const NOT_FORWARDED = new Set([
  'host',
  'content-length',
  'content-type',
  'transfer-encoding',
  'connection',
  'keep-alive',
  'upgrade',
  'te',
  'trailer',
  'expect',
  'accept',
]);
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9a-z]+$/;

/** Why `name` cannot be forwarded, or undefined when it can. */
export function forwardHeaderProblem(name: string): string | undefined {
  if (!HEADER_NAME.test(name)) return `"${name}" is not a lower-case header name`;
  if (NOT_FORWARDED.has(name))
    return `"${name}" frames Herald's own call to the endpoint; it cannot be forwarded`;
  return undefined;
}

export class AuthUrl {
  /** Who a request comes from: its token when it has one, else the app's answer. */
  readonly authenticate: Authenticator;
  /** Tokens only, for routes the hook does not serve (Mercure's, whose form publishes a cookie could forge). */
  readonly tokensOnly: Authenticator;
  private readonly url: URL;
  /** Basic credentials from the URL, sent instead of a forwarded Authorization header. */
  private readonly ownHeaders: Record<string, string>;
  private readonly forwardHeaders: readonly string[];
  private readonly timeoutMs: number;
  private readonly cacheSize: number;
  private readonly allowAdmin: boolean;
  private readonly retryAfterSec: number;
  private readonly wiring: AuthUrlWiring;
  /** The URL as logs show it: its credentials masked. */
  private readonly shownUrl: string;
  /** Insertion order is recency: a hit moves its entry to the end, the first one goes first. */
  private readonly cache = new Map<string, { readonly principal: Principal; readonly until: number }>();
  private readonly inFlight = new Map<string, Promise<Principal>>();
  private readonly counts = { calls: 0, cached: 0, shared: 0, allowed: 0, denied: 0, failed: 0 };

  constructor(options: AuthUrlOptions, wiring: AuthUrlWiring) {
    ({ url: this.url, headers: this.ownHeaders } = endpointOf(options.url, 'authUrl.url'));
    this.forwardHeaders = (options.forwardHeaders ?? DEFAULT_AUTH_URL.forwardHeaders).map((name) => {
      const lower = name.trim().toLowerCase();
      const problem = forwardHeaderProblem(lower);
      if (problem !== undefined) throw new Error(`authUrl.forwardHeaders: ${problem}`);
      return lower;
    });
    this.timeoutMs = positive(options.timeoutMs, DEFAULT_AUTH_URL.timeoutMs, 'timeoutMs');
    this.cacheSize = Math.floor(options.cacheSize ?? DEFAULT_AUTH_URL.cacheSize);
    if (!(this.cacheSize >= 0)) throw new Error('authUrl.cacheSize must be 0 or more');
    this.retryAfterSec = Math.ceil(
      positive(options.retryAfterSec, DEFAULT_AUTH_URL.retryAfterSec, 'retryAfterSec'),
    );
    this.allowAdmin = options.allowAdmin === true;
    this.wiring = wiring;
    this.shownUrl = redactUrl(options.url);
    const tokens = wiring.tokens;
    this.tokensOnly = tokens ?? tokenRequired;
    this.authenticate = (request, action) => {
      if (action === 'stats') return this.tokensOnly(request, action);
      if (tokens !== undefined && hasToken(request, wiring.cookieName)) return tokens(request, action);
      return this.ask(request, action);
    };
  }

  stats(): AuthUrlStats {
    return { ...this.counts, size: this.cache.size };
  }

  private ask(request: HttpRequest, action: 'subscribe' | 'publish'): Promise<Principal> {
    const forwarded: [string, string][] = [];
    for (const name of this.forwardHeaders) {
      const value = request.header(name);
      if (value !== undefined) forwarded.push([name, value]);
    }
    // Hashed: the key must not hold a session cookie in clear for as long as it is cached.
    const key = createHash('sha256')
      .update(JSON.stringify([action, forwarded]))
      .digest('base64url');
    const hit = this.cache.get(key);
    if (hit !== undefined) {
      this.cache.delete(key);
      if (hit.until > Date.now()) {
        this.cache.set(key, hit);
        this.counts.cached++;
        return Promise.resolve(hit.principal);
      }
    }
    const pending = this.inFlight.get(key);
    if (pending !== undefined) {
      this.counts.shared++;
      return pending;
    }
    const call = this.call(request, action, forwarded)
      .then((allowed) => {
        this.remember(key, allowed);
        return allowed.principal;
      })
      .finally(() => this.inFlight.delete(key));
    this.inFlight.set(key, call);
    return call;
  }

  private async call(
    request: HttpRequest,
    action: 'subscribe' | 'publish',
    forwarded: readonly [string, string][],
  ): Promise<Allowed> {
    this.counts.calls++;
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      accept: 'application/json',
    };
    for (const [name, value] of forwarded) headers[name] = value;
    Object.assign(headers, this.ownHeaders);
    if (request.requestId !== undefined) headers['x-request-id'] = request.requestId;
    const body = JSON.stringify({
      action,
      method: request.method,
      path: request.path,
      query: request.query.toString(),
    });
    const started = Date.now();
    try {
      const { status, text } = await this.post(headers, body);
      if (status === 401 || status === 403) throw denied(status);
      if (status < 200 || status > 299)
        throw unavailable(this.retryAfterSec, `${this.where()} answered ${status}`);
      // Only a cookie can come without the page's say-so, so anything but a header alone counts as one.
      const via =
        request.header('cookie') === undefined && request.header('authorization') !== undefined
          ? 'header'
          : 'cookie';
      const allowed = readAnswer(text, {
        allowAdmin: this.allowAdmin,
        retryAfterSec: this.retryAfterSec,
        via,
        now: started,
      });
      this.counts.allowed++;
      return allowed;
    } catch (error) {
      const refusal = error instanceof HeraldError ? error : this.failure(error);
      if (refusal.status === 503) {
        this.counts.failed++;
        this.wiring.logger?.warn(
          { event: 'auth-url.failed', code: refusal.code },
          (refusal.cause as Error | undefined)?.message ?? refusal.detail,
        );
      } else {
        this.counts.denied++;
      }
      throw refusal;
    }
  }

  /** The endpoint's status and body, within the timeout (the body included: a trickle is a hang). */
  private async post(
    headers: Record<string, string>,
    body: string,
  ): Promise<{ status: number; text: string }> {
    const response = await fetch(this.url, {
      method: 'POST',
      headers,
      body,
      redirect: 'manual',
      signal: AbortSignal.timeout(this.timeoutMs),
    });
    const status = response.status;
    if (status < 200 || status > 299) {
      await response.body?.cancel().catch(() => {});
      return { status, text: '' };
    }
    return { status, text: await limitedText(response, () => this.tooLarge()) };
  }

  private remember(key: string, allowed: Allowed): void {
    if (this.cacheSize === 0 || allowed.expiresAt === undefined) return;
    this.cache.delete(key);
    this.cache.set(key, { principal: allowed.principal, until: allowed.expiresAt });
    while (this.cache.size > this.cacheSize) {
      const oldest = this.cache.keys().next().value as string;
      this.cache.delete(oldest);
    }
  }

  private failure(error: unknown): HeraldError {
    const name = (error as { name?: string }).name;
    if (name === 'TimeoutError' || name === 'AbortError') {
      return unavailable(this.retryAfterSec, `${this.where()} did not answer within ${this.timeoutMs} ms`);
    }
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    const why = cause?.code ?? cause?.message ?? (error as Error).message;
    return unavailable(this.retryAfterSec, `${this.where()} could not be reached: ${why}`);
  }

  private tooLarge(): HeraldError {
    return unavailable(
      this.retryAfterSec,
      `${this.where()} answered more than ${MAX_ANSWER_BYTES / 1024} KiB`,
    );
  }

  private where(): string {
    return `the auth endpoint ${this.shownUrl}`;
  }
}

/** Whether the request carries a Herald token: where the token path looks (./token-authenticator.ts). */
function hasToken(request: HttpRequest, cookieName: string): boolean {
  return (
    request.header('authorization') !== undefined ||
    readCookie(request.header('cookie'), cookieName) !== undefined ||
    Boolean(request.query.get('access_token'))
  );
}

/** A hub whose only keys are the app's: what the hook does not serve needs a token it cannot have. */
const tokenRequired: Authenticator = (request) => {
  throw new HeraldError(
    401,
    'token-required',
    `${request.path} needs a token, and this hub has no JWT keys configured: only streams and publishes are put to the app's auth endpoint`,
    { headers: { 'www-authenticate': 'Bearer realm="herald"' } },
  );
};

/** The body as text, refused past `MAX_ANSWER_BYTES` without reading the rest. */
async function limitedText(response: Response, tooLarge: () => HeraldError): Promise<string> {
  const reader = response.body?.getReader();
  if (reader === undefined) return '';
  const chunks: Uint8Array[] = [];
  let bytes = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    bytes += value.byteLength;
    if (bytes > MAX_ANSWER_BYTES) {
      await reader.cancel().catch(() => {});
      throw tooLarge();
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * An app's endpoint (`option` names it in errors): an http(s) URL, whose user and password, if
 * any, are sent as Basic credentials (fetch refuses a URL that holds them, and would quote it).
 */
export function endpointOf(value: string, option: string): { url: URL; headers: Record<string, string> } {
  let url: URL | undefined;
  try {
    url = new URL(value);
  } catch {
    // Refused below.
  }
  if (url === undefined || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
    throw new Error(`${option} must be an http:// or https:// URL`);
  }
  if (url.username === '' && url.password === '') return { url, headers: {} };
  const user = `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`;
  url.username = '';
  url.password = '';
  return { url, headers: { authorization: `Basic ${Buffer.from(user).toString('base64')}` } };
}

function positive(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value <= 0) throw new Error(`authUrl.${name} must be a number more than 0`);
  return value;
}
