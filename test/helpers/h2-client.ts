import {
  type ClientHttp2Session,
  type ClientHttp2Stream,
  connect,
  type IncomingHttpHeaders,
  type IncomingHttpStatusHeader,
} from 'node:http2';
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import type { ReceivedEvent } from './sse-client.ts';

export type ResponseHeaders = IncomingHttpHeaders & IncomingHttpStatusHeader;

/** An HTTP/2 session to `origin` trusting `ca`; every request below is a stream on it. */
export function h2connect(origin: string, ca: string): Promise<ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const session = connect(origin, { ca });
    session.once('connect', () => {
      session.off('error', reject);
      resolve(session);
    });
    session.once('error', reject);
  });
}

export interface H2Response {
  readonly status: number;
  readonly headers: ResponseHeaders;
  readonly text: string;
  json(): Record<string, unknown>;
}

/** One request and its whole answer, on `session`. */
export function h2request(
  session: ClientHttp2Session,
  method: string,
  path: string,
  headers: Record<string, string> = {},
  body?: string,
): Promise<H2Response> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ':method': method, ':path': path, ...headers }, { endStream: !body });
    let responseHeaders: ResponseHeaders = {};
    let text = '';
    stream.setEncoding('utf8');
    stream.on('response', (received) => {
      responseHeaders = received;
    });
    stream.on('data', (chunk: string) => {
      text += chunk;
    });
    stream.on('end', () =>
      resolve({
        status: Number(responseHeaders[':status']),
        headers: responseHeaders,
        text,
        json: () => JSON.parse(text) as Record<string, unknown>,
      }),
    );
    stream.on('error', reject);
    if (body) stream.end(body);
  });
}

/** An SSE stream over one HTTP/2 stream, parsed by eventsource-parser as the HTTP/1.1 test client does. */
export class H2SseStream {
  readonly events: ReceivedEvent[] = [];
  readonly comments: string[] = [];
  headers: ResponseHeaders = {};
  ended = false;
  /** Every `retry:` received: the one each stream starts with, then any hint before an end. */
  readonly retries: number[] = [];
  readonly stream: ClientHttp2Stream;
  readonly opened: Promise<void>;
  private waiters: (() => void)[] = [];

  constructor(session: ClientHttp2Session, path: string, headers: Record<string, string> = {}) {
    const parser = createParser({
      onEvent: (message: EventSourceMessage) => {
        this.events.push({
          id: message.id,
          type: message.event ?? 'message',
          data: message.data,
          at: performance.now(),
        });
        this.wake();
      },
      onComment: (comment) => {
        this.comments.push(comment);
        this.wake();
      },
      onRetry: (ms) => {
        this.retries.push(ms);
      },
    });
    this.stream = session.request({ ':path': path, accept: 'text/event-stream', ...headers });
    this.stream.setEncoding('utf8');
    this.opened = new Promise((resolve, reject) => {
      this.stream.once('response', (received) => {
        this.headers = received;
        resolve();
      });
      this.stream.once('error', reject);
    });
    this.stream.on('data', (text: string) => parser.feed(text));
    this.stream.on('close', () => {
      this.ended = true;
      this.wake();
    });
    // A reset from either side is an end here, not a failure of the test process.
    this.stream.on('error', () => {});
  }

  get data(): ReceivedEvent[] {
    return this.events.filter((event) => !event.type.startsWith('herald.'));
  }

  get connectionId(): string | undefined {
    const connected = this.events.find((event) => event.type === 'herald.connected');
    return connected === undefined
      ? undefined
      : (JSON.parse(connected.data) as { connectionId: string }).connectionId;
  }

  async until(condition: (stream: this) => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!condition(this)) {
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(
          `timed out after ${timeoutMs} ms waiting for ${what}; got ${this.events.length} events (ended: ${this.ended})`,
        );
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 250));
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  untilConnected(timeoutMs = 5000): Promise<void> {
    return this.until((s) => s.connectionId !== undefined, timeoutMs, 'herald.connected');
  }

  untilData(count: number, timeoutMs = 5000): Promise<void> {
    return this.until((s) => s.data.length >= count, timeoutMs, `${count} events`);
  }

  /** Resets this stream (RST_STREAM CANCEL), leaving the session and its other streams open. */
  close(): void {
    this.stream.close();
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }
}
