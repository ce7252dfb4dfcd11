import { HeraldError } from '../../core/errors.ts';
import { JetStreamApiError } from './library.ts';

/* How the NATS broker tells what went wrong, and turns it into the answers callers expect. */

/** Nothing listens on the log's subject: the stream is gone. */
export function isNoLog(error: unknown): boolean {
  return error instanceof Error && error.name === 'JetStreamNotEnabled';
}

/** An append that stored nothing because the log is gone. */
export class LogMissing extends Error {
  constructor(cause: unknown) {
    super('the log is gone', { cause });
  }
}

export function duplicate(id: string): HeraldError {
  return new HeraldError(409, 'duplicate-id', `id "${id}" is already in the history; ids must be unique`);
}

/** Whatever went wrong talking to NATS, as the 503 callers expect; HeraldErrors pass through. */
export function unavailable(error: unknown, suffix = ''): HeraldError {
  if (error instanceof HeraldError) return error;
  return new HeraldError(
    503,
    'broker-unavailable',
    `nats unreachable: ${message(error)}${suffix}; retry shortly`,
  );
}

export function message(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause instanceof Error ? `: ${error.cause.message}` : '';
  return `${error.message}${cause}`;
}

export function isApiError(error: unknown, code: number): boolean {
  return error instanceof JetStreamApiError && error.code === code;
}

/** A conditional write lost: the key exists (create) or moved on (update). */
export function isWrongLastSequence(error: unknown): boolean {
  return isApiError(error, 10071) || isApiError(error, 10164);
}
