import { type ClientRequest, type IncomingHttpHeaders, request } from 'node:http';
import { createParser, type EventSourceMessage } from 'eventsource-parser';

export interface ReceivedEvent {
  readonly id: string | undefined;
  readonly type: string;
  readonly data: string;
  /** When the event was parsed, ms (performance.now()). */
  readonly at: number;
}

export interface StreamOptions {
  readonly headers?: Record<string, string>;
  readonly lastEventId?: string;
}

/**
 * What a test stream received, parsed by an independent implementation (eventsource-parser), so
 * the tests check Herald's framing against someone else's reading of the spec. Transports feed
 * it text and tell it when they end.
 */
export abstract class ReceivedStream {
  readonly events: ReceivedEvent[] = [];
  readonly comments: string[] = [];
  /** Every `retry:` received: the one each stream starts with, then any hint before an end. */
  readonly retries: number[] = [];
  /** Everything received, as text. */
  raw = '';
  ended = false;
  private waiters: (() => void)[] = [];
  private readonly parser = createParser({
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

  /** The last `retry:` received. */
  get retry(): number | undefined {
    return this.retries.at(-1);
  }

  /** User events, without Herald's own `herald.*` ones. */
  get data(): ReceivedEvent[] {
    return this.events.filter((event) => !event.type.startsWith('herald.'));
  }

  get connectionId(): string | undefined {
    const connected = this.events.find((event) => event.type === 'herald.connected');
    return connected === undefined
      ? undefined
      : (JSON.parse(connected.data) as { connectionId: string }).connectionId;
  }

  /** Resolves once `condition` holds; rejects after `timeoutMs` with what was received. */
  async until(condition: (stream: this) => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!condition(this)) {
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(
          `timed out after ${timeoutMs} ms waiting for ${what}; got ${this.events.length} events (ended: ${this.ended}):\n${this.raw.slice(-2000)}`,
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

  /** Waits for `count` user events in all. */
  untilData(count: number, timeoutMs = 5000): Promise<void> {
    return this.until((s) => s.data.length >= count, timeoutMs, `${count} events`);
  }

  untilEnded(timeoutMs = 5000): Promise<void> {
    return this.until((s) => s.ended, timeoutMs, 'the stream to end');
  }

  protected feed(text: string): void {
    this.raw += text;
    this.parser.feed(text);
    this.wake();
  }

  protected end(): void {
    this.ended = true;
    this.wake();
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }
}

/** A test SSE client over a raw node:http request (no pooling, no reconnection). */
export class SseStream extends ReceivedStream {
  status = 0;
  headers: IncomingHttpHeaders = {};
  private readonly req: ClientRequest;
  readonly opened: Promise<void>;

  constructor(url: string, options: StreamOptions = {}) {
    super();
    const headers: Record<string, string> = { accept: 'text/event-stream', ...options.headers };
    if (options.lastEventId !== undefined) headers['last-event-id'] = options.lastEventId;
    this.req = request(url, { headers, agent: false });
    this.opened = new Promise((resolve, reject) => {
      this.req.on('response', (res) => {
        this.status = res.statusCode ?? 0;
        this.headers = res.headers;
        res.setEncoding('utf8');
        res.on('data', (text: string) => this.feed(text));
        res.on('close', () => this.end());
        resolve();
      });
      this.req.on('error', (error) => {
        this.end();
        reject(error);
      });
    });
    this.req.end();
  }

  close(): void {
    this.req.destroy();
  }
}

export async function openStream(url: string, options?: StreamOptions): Promise<SseStream> {
  const stream = new SseStream(url, options);
  await stream.opened;
  return stream;
}
