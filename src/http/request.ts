import type { Sink, Subscriber } from '../core/subscriber.ts';

/** An HTTP request as the routes see it, whatever server received it. */
export interface HttpRequest {
  readonly method: string;
  /** The path below where Herald is mounted, e.g. `/v1/events`. */
  readonly path: string;
  readonly query: URLSearchParams;
  /** The client's IP address, for per-IP limits; undefined when the server cannot tell. */
  readonly remoteAddress: string | undefined;
  /** A header's value by lower-case name. */
  header(name: string): string | undefined;
  /** Aborted when the client goes away before the answer is sent (a long poll stops waiting). */
  readonly signal?: AbortSignal;
  /** The whole body; rejects with a 413 HeraldError once it passes `limit` bytes. */
  body(limit: number): Promise<Uint8Array>;
  /** Set by the routes: the caller's `x-request-id`, or one made for it; in logs and the reply. */
  requestId?: string;
}

export type HttpReply = HttpResponse | HttpStream;

export interface HttpResponse {
  readonly kind: 'response';
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
}

/** A `200 text/event-stream`: the adapter sends the headers, then hands the hub its sink. */
export interface HttpStream {
  readonly kind: 'stream';
  readonly headers: Readonly<Record<string, string>>;
  open(sink: Sink): Subscriber;
  /** The adapter will not open the stream after all (the client already left): free what it holds. */
  discard(): void;
}
