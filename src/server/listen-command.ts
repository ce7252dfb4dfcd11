import { createParser } from '../client/sse-parser.ts';
import { GAP_EVENT, SYSTEM_EVENT_PREFIX } from '../core/protocol/system-events.ts';
import { interrupted, refused } from './messages.ts';
import { parseTags } from './publish-command.ts';

export interface ListenOptions {
  readonly url: string;
  readonly topic: readonly string[];
  readonly type?: readonly string[];
  readonly tag?: readonly string[];
  readonly lastEventId?: string;
  /** Stop after this many events. */
  readonly count?: number;
  readonly token?: string;
  readonly signal?: AbortSignal;
  readonly output?: (line: string) => void;
  readonly notice?: (line: string) => void;
}

const MAX_BACKOFF_MS = 30_000;

/**
 * `herald listen`: prints one JSON line per event and keeps going across disconnects, resuming
 * with `Last-Event-ID` so nothing published meanwhile is missed. A 4xx answer is final (the
 * request itself is wrong); anything else is retried with backoff.
 */
export async function listenCommand(options: ListenOptions): Promise<void> {
  const output = options.output ?? ((line) => process.stdout.write(`${line}\n`));
  const notice = options.notice ?? ((line) => process.stderr.write(`${line}\n`));
  const url = new URL('/v1/events', options.url);
  for (const topic of options.topic) url.searchParams.append('topic', topic);
  for (const type of options.type ?? []) url.searchParams.append('type', type);
  for (const [name, value] of Object.entries(parseTags(options.tag ?? [])))
    url.searchParams.append(`tag.${name}`, value);

  let lastEventId = options.lastEventId;
  let retryMs = 1000;
  let failures = 0;
  let received = 0;
  const done = () =>
    options.signal?.aborted === true || (options.count !== undefined && received >= options.count);

  while (!done()) {
    const stop = new AbortController();
    const abort = () => stop.abort();
    options.signal?.addEventListener('abort', abort, { once: true });
    try {
      const headers: Record<string, string> = { accept: 'text/event-stream' };
      if (lastEventId !== undefined) headers['last-event-id'] = lastEventId;
      if (options.token) headers.authorization = `Bearer ${options.token}`;
      const response = await fetch(url, { headers, signal: stop.signal });
      if (response.status >= 400 && response.status < 500) {
        const problem = (await response.json().catch(() => ({}))) as { detail?: string };
        throw new FatalError(
          refused(url, response.status, problem.detail ?? response.statusText, problem.detail !== undefined)
            .message,
        );
      }
      if (!response.ok || response.body === null)
        throw new Error(`${response.status} ${response.statusText}`);
      failures = 0;
      // Herald's own parser, the one herald/client uses. `event.id` is the stream's last event
      // id, as EventSource's `lastEventId` (Herald sends an `id:` with every event).
      const parser = createParser(
        (event) => {
          const id = event.id === '' ? undefined : event.id;
          if (id !== undefined) lastEventId = id;
          if (event.type === GAP_EVENT) notice(`herald: gap ${event.data}`);
          if (event.type.startsWith(SYSTEM_EVENT_PREFIX) || done()) return;
          received++;
          output(JSON.stringify({ id, type: event.type, data: parseData(event.data) }));
          if (done()) stop.abort();
        },
        (ms) => {
          retryMs = ms;
        },
      );
      for await (const chunk of response.body) parser.feed(chunk);
    } catch (error) {
      if (error instanceof FatalError) throw error;
      if (done()) break;
      failures++;
      notice(`herald: ${interrupted(url, error)}`);
    } finally {
      options.signal?.removeEventListener('abort', abort);
    }
    if (done()) break;
    const backoff =
      failures === 0 ? retryMs : Math.min(MAX_BACKOFF_MS, retryMs * 2 ** failures) * Math.random();
    await new Promise((resolve) => setTimeout(resolve, backoff));
  }
}

class FatalError extends Error {}

function parseData(data: string): unknown {
  try {
    return JSON.parse(data);
  } catch {
    return data;
  }
}
