import {
  type ClientHttp2Session,
  type ClientHttp2Stream,
  connect,
  type IncomingHttpHeaders,
  type IncomingHttpStatusHeader,
} from 'node:http2';
import { ReceivedStream } from './sse-client.ts';

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

/** An SSE stream over one HTTP/2 stream, parsed as the HTTP/1.1 test client does. */
export class H2SseStream extends ReceivedStream {
  headers: ResponseHeaders = {};
  readonly stream: ClientHttp2Stream;
  readonly opened: Promise<void>;

  constructor(session: ClientHttp2Session, path: string, headers: Record<string, string> = {}) {
    super();
    this.stream = session.request({ ':path': path, accept: 'text/event-stream', ...headers });
    this.stream.setEncoding('utf8');
    this.opened = new Promise((resolve, reject) => {
      this.stream.once('response', (received) => {
        this.headers = received;
        resolve();
      });
      this.stream.once('error', reject);
    });
    this.stream.on('data', (text: string) => this.feed(text));
    this.stream.on('close', () => this.end());
    // A reset from either side is an end here, not a failure of the test process.
    this.stream.on('error', () => {});
  }

  /** Resets this stream (RST_STREAM CANCEL), leaving the session and its other streams open. */
  close(): void {
    this.stream.close();
  }
}
