import { HeraldError } from '../core/errors.ts';
import type { HttpResponse } from './request.ts';

/** The answers every route builds the same way: JSON, problem+json, the event-stream headers. */

const JSON_TYPE = 'application/json; charset=utf-8';
const PROBLEM_TYPE = 'application/problem+json; charset=utf-8';

export const SSE_HEADERS: Readonly<Record<string, string>> = {
  'content-type': 'text/event-stream; charset=utf-8',
  // no-transform also keeps compression middleware (Express's compression()) from buffering events.
  'cache-control': 'no-cache, no-transform',
  'x-accel-buffering': 'no',
};

export const json = (status: number, value: unknown): HttpResponse => ({
  kind: 'response',
  status,
  headers: { 'content-type': JSON_TYPE, 'cache-control': 'no-store' },
  body: JSON.stringify(value),
});

/**
 * The problem+json answer for `error`. An error that is not a HeraldError is the hub's own
 * failure: `onError` hears of it and the client gets a 500 that gives nothing away.
 */
export function problemReply(
  error: unknown,
  onError?: (error: unknown, context: string) => void,
): HttpResponse {
  if (!(error instanceof HeraldError)) {
    onError?.(error, 'request failed');
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
