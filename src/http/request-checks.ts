import { badRequest, HeraldError } from '../core/errors.ts';
import { type Hub, shuttingDown } from '../core/hub.ts';
import type { Log } from '../core/log.ts';
import { parseJsonBody } from './json-body.ts';
import type { HttpRequest } from './request.ts';

/** What the native routes and Mercure's check alike before they act on a request. */

/** A parameter or header that is absent or empty is not there. */
export const nonEmpty = (value: string | null | undefined) => (value ? value : undefined);

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
export async function jsonBody(request: HttpRequest, maxBodyBytes: number): Promise<unknown> {
  requireMediaType(request, 'application/json');
  return parseJsonBody(await request.body(maxBodyBytes));
}

export function checkSelectorLengths(topics: readonly string[], maxSelectorLength: number): void {
  for (const topic of topics) {
    if (topic.length > maxSelectorLength) {
      throw badRequest(
        'selector-too-long',
        `a topic selector is ${topic.length} characters long; the limit is ${maxSelectorLength}`,
      );
    }
  }
}

/** A stream is only worth opening on a hub that runs, with a broker that runs: else 503. */
export async function streamable(hub: Hub, log: Log): Promise<void> {
  if (hub.isClosing) throw shuttingDown();
  await hub.whenReady().catch(() => {
    throw new HeraldError(
      503,
      'broker-unavailable',
      `the ${log.kind} broker is not available; retry shortly`,
    );
  });
}
