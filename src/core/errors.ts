/**
 * Every failure Herald reports to a caller is a `HeraldError`: an HTTP status, a stable machine
 * code and a `detail` written for the person who has to fix the request. The HTTP layer renders
 * it as RFC 9457 problem+json; in-process callers get it thrown.
 *
 * The hub's codes and the statuses they go with are listed once, in `protocol/problems.ts`: a
 * code written here that is not listed there, or given with a status the list does not pair it
 * with, does not compile. Apps render their own problems with this class too (see examples/), with
 * codes of their own: a code typed `string`, not a literal, is taken as theirs, with any status.
 */

import type { PROBLEMS, ProblemCode, ProblemStatus } from './protocol/problems.ts';

export type { ProblemCode, ProblemStatus } from './protocol/problems.ts';

/** The codes listed with `status`: `badRequest` takes only 400s. */
export type ProblemCodeOf<S extends number> = Extract<
  (typeof PROBLEMS)[number],
  { readonly status: S }
>['code'];

/** The reason phrases RFC 9457 asks to use as `title` when `type` is `about:blank`. */
const TITLES: Readonly<Record<number, string>> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  409: 'Conflict',
  413: 'Content Too Large',
  415: 'Unsupported Media Type',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  501: 'Not Implemented',
  503: 'Service Unavailable',
};

export interface ProblemDetails {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: string;
  [extension: string]: unknown;
}

/**
 * The statuses a code may be given with: those PROBLEMS lists for a hub's code, any for an app's
 * (typed `string`); none (`never`, so the call does not compile) for a literal PROBLEMS lacks.
 */
type StatusOf<C extends string> = string extends C
  ? number
  : [C] extends [ProblemCode]
    ? ProblemStatus<C & ProblemCode>
    : never;

export class HeraldError<C extends string = ProblemCode> extends Error {
  readonly status: number;
  /** Stable, machine-readable reason, e.g. `topic-required`. */
  readonly code: C;
  readonly detail: string;
  /** Response headers that belong to this error, e.g. `Allow` for a 405. */
  readonly headers: Readonly<Record<string, string>>;
  /** Extra members of the problem document (RFC 9457 §3.2). */
  readonly extensions: Readonly<Record<string, unknown>>;

  constructor(
    status: StatusOf<C>,
    code: C,
    detail: string,
    options: { headers?: Record<string, string>; extensions?: Record<string, unknown> } = {},
  ) {
    super(detail);
    this.name = 'HeraldError';
    this.status = status;
    this.code = code;
    this.detail = detail;
    this.headers = options.headers ?? {};
    this.extensions = options.extensions ?? {};
  }

  toProblem(): ProblemDetails {
    return {
      ...this.extensions,
      type: 'about:blank',
      title: TITLES[this.status] ?? 'Error',
      status: this.status,
      detail: this.detail,
      code: this.code,
    };
  }
}

export const badRequest = (code: ProblemCodeOf<400>, detail: string, extensions?: Record<string, unknown>) =>
  new HeraldError(400, code, detail, extensions ? { extensions } : {});

/** Formats a byte count the way the limits are configured: `2.3 MiB`, `512 KiB`, `80 B`. */
export function formatBytes(bytes: number): string {
  if (bytes >= 1024 * 1024) return `${trim(bytes / (1024 * 1024))} MiB`;
  if (bytes >= 1024) return `${trim(bytes / 1024)} KiB`;
  return `${bytes} B`;
}

const trim = (n: number) => (Number.isInteger(n) ? String(n) : n.toFixed(1));
