import { HeraldError } from '../core/errors.ts';

/**
 * CORS (Fetch standard, "CORS protocol") and the origin check that protects cookie-authenticated
 * requests from cross-site request forgery. Header names are lower-case, like the rest of the
 * HTTP layer.
 */
export interface CorsOptions {
  /**
   * Allowed origins, e.g. `['https://app.example.com']`. `'*'` allows any origin, but without
   * credentials (the Fetch standard forbids `*` with credentials); origins listed next to it
   * still get credentialed responses. `'null'` cannot be listed: any sandboxed iframe or local
   * file sends it.
   */
  readonly origins: readonly string[];
  /** How long browsers may cache a preflight answer, in seconds. Default 600. */
  readonly maxAgeSec?: number;
}

export const DEFAULT_CORS_MAX_AGE_SEC = 600;

/**
 * Request headers a cross-origin client may send. `Cache-Control` is there because EventSource
 * polyfills send it along with `Last-Event-ID`.
 */
export const CORS_ALLOWED_HEADERS: readonly string[] = [
  'Authorization',
  'Content-Type',
  'Last-Event-ID',
  'Cache-Control',
];

/**
 * Response headers a cross-origin script may read beyond the CORS-safelisted ones: when to retry
 * after a 429/503, what a 401 wants, and Mercure's hub discovery link.
 */
export const CORS_EXPOSED_HEADERS: readonly string[] = ['Retry-After', 'WWW-Authenticate', 'Link'];

/** `scheme://host[:port]`, nothing else (RFC 6454 §6.1); hosts as browsers serialize them (ASCII). */
const ORIGIN = /^([a-z][a-z0-9+.-]*):\/\/([a-z0-9_.-]+|\[[0-9a-f:.]+\])(?::(\d{1,5}))?$/i;

const DEFAULT_PORTS: Readonly<Record<string, string>> = { http: '80', https: '443', ws: '80', wss: '443' };

/**
 * The canonical form of an Origin value: scheme and host lower-cased, a default port dropped,
 * leading zeros of a port dropped. `undefined` when the value is not a well-formed origin.
 */
export function normalizeOrigin(value: string): string | undefined {
  const match = ORIGIN.exec(value);
  if (match === null) return undefined;
  const scheme = (match[1] as string).toLowerCase();
  const host = (match[2] as string).toLowerCase();
  const rawPort = match[3];
  if (rawPort === undefined) return `${scheme}://${host}`;
  const port = Number(rawPort);
  if (port < 1 || port > 65_535) return undefined;
  return String(port) === DEFAULT_PORTS[scheme] ? `${scheme}://${host}` : `${scheme}://${host}:${port}`;
}

/** An Origin value fit to quote in a detail: attackers choose it, so it is bounded. */
const quote = (origin: string) => JSON.stringify(origin.length > 200 ? `${origin.slice(0, 200)}…` : origin);

export class Cors {
  /** Listed origins in canonical form. */
  private readonly explicit: ReadonlySet<string>;
  private readonly wildcard: boolean;
  private readonly maxAge: string;

  constructor(options: CorsOptions) {
    const explicit = new Set<string>();
    let wildcard = false;
    for (const entry of options.origins) {
      const trimmed = entry.trim();
      if (trimmed === '*') {
        wildcard = true;
        continue;
      }
      if (trimmed.toLowerCase() === 'null') {
        throw new TypeError(
          'the origin "null" cannot be allowed: sandboxed iframes and local files on any site send it; ' +
            'serve the page from an http(s) origin and allow that one',
        );
      }
      // A trailing slash is a common slip when copying a URL; an origin never has a path.
      const normalized = normalizeOrigin(trimmed.endsWith('/') ? trimmed.slice(0, -1) : trimmed);
      if (normalized === undefined) {
        throw new TypeError(
          `${quote(entry)} is not an origin; use scheme://host[:port] with no path, e.g. https://app.example.com, or * for any origin`,
        );
      }
      explicit.add(normalized);
    }
    const maxAge = options.maxAgeSec ?? DEFAULT_CORS_MAX_AGE_SEC;
    if (!Number.isInteger(maxAge) || maxAge < 0) {
      throw new RangeError(`maxAgeSec is ${maxAge}; use a whole number of seconds, 0 or more`);
    }
    this.explicit = explicit;
    this.wildcard = wildcard;
    this.maxAge = String(maxAge);
  }

  isAllowed(origin: string | undefined): boolean {
    return this.match(origin) !== undefined;
  }

  /**
   * Headers for an actual (non-preflight) response: `{}` when there is no Origin or it is not
   * allowed. A listed origin is echoed with credentials allowed; an origin allowed only by `*`
   * gets `*` and no credentials.
   */
  responseHeaders(origin: string | undefined): Record<string, string> {
    const match = this.match(origin);
    if (match === undefined) return {};
    const headers = this.allowOrigin(origin as string, match);
    headers['access-control-expose-headers'] = CORS_EXPOSED_HEADERS.join(', ');
    return headers;
  }

  /**
   * Answers an OPTIONS preflight. `undefined` when the request is not one (no Origin or no
   * Access-Control-Request-Method), so the caller handles it as a plain OPTIONS. A disallowed
   * origin gets a 403 `cors-origin-denied`.
   *
   * Allow-Headers always lists every allowed header, whatever Access-Control-Request-Headers
   * asked for: the browser checks each requested header against that list case-insensitively,
   * and one cached answer then covers every combination. For the same reason the answer does
   * not depend on the requested method: Allow-Methods is `allowedMethods`, and the browser
   * refuses a method that is not in it.
   */
  preflight(
    origin: string | undefined,
    requestMethod: string | undefined,
    allowedMethods: readonly string[],
  ): { status: number; headers: Record<string, string> } | undefined {
    if (origin === undefined || requestMethod === undefined) return undefined;
    const match = this.match(origin);
    if (match === undefined) {
      throw new HeraldError(
        403,
        'cors-origin-denied',
        `the origin ${quote(origin)} is not allowed to call this hub from a browser; ` +
          'to allow it, start the hub with --cors-origin <origin> (repeat it for several origins)',
      );
    }
    const headers = this.allowOrigin(origin, match);
    headers['access-control-allow-methods'] = allowedMethods.join(', ');
    headers['access-control-allow-headers'] = CORS_ALLOWED_HEADERS.join(', ');
    headers['access-control-max-age'] = this.maxAge;
    return { status: 204, headers };
  }

  /**
   * CSRF protection for a state-changing request authenticated by a cookie: browsers attach
   * cookies to cross-site requests, so such a request must carry an Origin from the list. `*`
   * does not count here, since a cookie accepted from any origin defeats the check. A page of the
   * hub's own origin (its Origin names the host the request was sent to, `host`) is not
   * cross-site, so it passes too: a browser sets both headers and no page can forge either.
   * Throws 403 `origin-not-allowed`.
   */
  checkCookieOrigin(origin: string | undefined, host?: string): void {
    if (origin !== undefined && host !== undefined && sameHost(origin, host)) return;
    if (origin === undefined || origin === '') {
      throw new HeraldError(
        403,
        'origin-not-allowed',
        'this request is authenticated by a cookie and changes state, so it must carry an Origin header ' +
          'from an allowed origin; send it from a browser page on an origin allowed with --cors-origin, ' +
          'or send the token in the Authorization header instead of a cookie',
      );
    }
    if (this.match(origin) !== 'explicit') {
      throw new HeraldError(
        403,
        'origin-not-allowed',
        `the origin ${quote(origin)} may not change state with cookie authentication; allow it with ` +
          '--cors-origin <origin> (a * wildcard does not count for cookies), or send the token in the ' +
          'Authorization header instead of a cookie',
      );
    }
  }

  /** `explicit` for a listed origin, `wildcard` for one only `*` allows, `undefined` if not allowed. */
  private match(origin: string | undefined): 'explicit' | 'wildcard' | undefined {
    if (origin === undefined) return undefined;
    // Browsers send origins in canonical form, so the exact lookup almost always decides.
    if (this.explicit.has(origin)) return 'explicit';
    const normalized = normalizeOrigin(origin);
    if (normalized !== undefined && this.explicit.has(normalized)) return 'explicit';
    // `*` also covers the opaque origin "null": a response readable by any origin hides nothing from it.
    if (this.wildcard && (normalized !== undefined || origin === 'null')) return 'wildcard';
    return undefined;
  }

  private allowOrigin(origin: string, match: 'explicit' | 'wildcard'): Record<string, string> {
    if (match === 'wildcard') {
      // With listed origins next to `*` the answer depends on Origin, so caches must key on it.
      return this.explicit.size > 0
        ? { 'access-control-allow-origin': '*', vary: 'Origin' }
        : { 'access-control-allow-origin': '*' };
    }
    // The browser compares this byte for byte with the origin it sent, so echo it as sent.
    return {
      'access-control-allow-origin': origin,
      'access-control-allow-credentials': 'true',
      vary: 'Origin',
    };
  }
}

/** Whether `origin` (`https://hub.example:8443`) names the host a request was sent to (`Host`). */
function sameHost(origin: string, host: string): boolean {
  // A Host is a name or address and a port, nothing more: anything else is not compared.
  if (!/^[A-Za-z0-9.:[\]-]+$/.test(host)) return false;
  try {
    return new URL(origin).host === new URL(`http://${host}`).host;
  } catch {
    return false;
  }
}
