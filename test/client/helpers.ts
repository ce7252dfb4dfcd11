import type { HeraldClient, HeraldMessage, StatusChange } from '../../src/client/index.ts';

/** Waits until `predicate` holds, polling every few ms; fails after `timeoutMs` with `label`. */
export async function until(predicate: () => boolean, timeoutMs = 5000, label = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${label}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Everything a client reports, for assertions. */
export interface Recorder {
  readonly messages: HeraldMessage[];
  readonly statuses: StatusChange[];
  readonly gaps: unknown[];
  /** The data of the messages received, in order. */
  data(): unknown[];
}

export function record<Events extends Record<string, unknown>>(client: HeraldClient<Events>): Recorder {
  const messages: HeraldMessage[] = [];
  const statuses: StatusChange[] = [];
  const gaps: unknown[] = [];
  client.on('*', (message) => messages.push(message));
  client.onStatus((change) => statuses.push(change));
  client.onGap((gap) => gaps.push(gap));
  return { messages, statuses, gaps, data: () => messages.map((message) => message.data) };
}

/** Waits for the client's status. */
export const untilStatus = (client: { readonly status: string }, status: string, timeoutMs = 5000) =>
  until(() => client.status === status, timeoutMs, `status ${status} (is ${client.status})`);

/** A fetch that records every call and can answer some itself (`intercept` returns a Response). */
export interface RecordingFetch {
  readonly fetch: typeof fetch;
  readonly calls: { url: string; method: string; headers: Headers; at: number }[];
  /** Calls to /v1/events (streams). */
  streams(): { url: string; headers: Headers; at: number }[];
}

export function recordingFetch(
  intercept?: (
    url: string,
    init: RequestInit | undefined,
    index: number,
  ) => Response | Promise<Response> | undefined,
): RecordingFetch {
  const calls: RecordingFetch['calls'] = [];
  const recorded: typeof fetch = async (input, init) => {
    const url = String(input);
    calls.push({
      url,
      method: init?.method ?? 'GET',
      headers: new Headers(init?.headers),
      at: performance.now(),
    });
    const answer = await intercept?.(url, init, calls.length - 1);
    return answer ?? fetch(input, init);
  };
  return {
    fetch: recorded,
    calls,
    streams: () => calls.filter((call) => new URL(call.url).pathname === '/v1/events'),
  };
}

/** A problem+json response, as the hub answers. */
export const problem = (status: number, code: string, detail: string, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify({ type: 'about:blank', status, code, detail }), {
    status,
    headers: { 'content-type': 'application/problem+json', ...headers },
  });

/** An SSE response whose body is `text`, then ends. */
export const sseResponse = (text: string) =>
  new Response(text, { status: 200, headers: { 'content-type': 'text/event-stream' } });
