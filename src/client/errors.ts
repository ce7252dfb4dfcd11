import { retryAfterMs } from './backoff.ts';

/**
 * A refusal from the hub: the HTTP status and the RFC 9457 problem it answered with. `message`
 * is the problem's `detail` (what a person can act on).
 */
export class HeraldClientError extends Error {
  /** The HTTP status, or 0 when the request did not get an answer. */
  readonly status: number;
  /** The problem's stable `code` (e.g. `token-expired`), when the hub sent one. */
  readonly code: string | undefined;
  /** `Retry-After` in ms (0 when absent): the earliest the client may try again. */
  readonly retryAfterMs: number;

  constructor(status: number, detail: string, code?: string, retryAfter = 0) {
    super(detail);
    this.name = 'HeraldClientError';
    this.status = status;
    this.code = code;
    this.retryAfterMs = retryAfter;
  }
}

/**
 * What a failed response means for the next attempt:
 * - `auth` (401): fetch a fresh token and retry at once; a second 401 in a row is fatal.
 * - `fatal` (any other 4xx but 408 and 429: 400 bad request, 403 forbidden, 404 no such route):
 *   retrying cannot help, the client closes with the server's detail.
 * - `transient` (408, 429, 5xx, no answer at all): back off and retry.
 */
export type ErrorClass = 'auth' | 'fatal' | 'transient';

export function classify(status: number): ErrorClass {
  if (status === 401) return 'auth';
  return status >= 400 && status < 500 && status !== 408 && status !== 429 ? 'fatal' : 'transient';
}

/** Reads a refused response: its problem+json `detail` and `code`, or its status line when it has none. */
export async function problemOf(response: Response): Promise<HeraldClientError> {
  let detail = `HTTP ${response.status} ${response.statusText}`.trim();
  let code: string | undefined;
  try {
    const body = JSON.parse(await response.text());
    if (typeof body.detail === 'string') detail = body.detail;
    if (typeof body.code === 'string') code = body.code;
  } catch {
    // Not problem+json (a proxy's page): the status line says what there is to say.
  }
  return new HeraldClientError(
    response.status,
    detail,
    code,
    retryAfterMs(response.headers.get('retry-after')),
  );
}
