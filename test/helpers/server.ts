import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createHerald, type Herald, type HeraldOptions } from '../../src/herald.ts';
import { nodeHandler } from '../../src/http/node.ts';
import { resolveConfig } from '../../src/server/config.ts';
import { serve } from '../../src/server/serve.ts';
import type { HeraldServer } from '../../src/server/tls.ts';
import { openStream, type SseStream, type StreamOptions } from './sse-client.ts';

export interface TestHub {
  readonly url: string;
  readonly herald: Herald;
  readonly server: HeraldServer;
  /** Opens `/v1/events` with the given query (e.g. `topic=a&type=b`) and waits for the response. */
  subscribe(query: string, options?: StreamOptions): Promise<SseStream>;
  /** POSTs JSON to /v1/publish and returns status and parsed body. */
  publish(
    body: unknown,
    headers?: Record<string, string>,
  ): Promise<{ status: number; body: Record<string, unknown>; headers: Headers }>;
  close(): Promise<void>;
}

/** A real Herald on node:http, listening on a free loopback port. */
export async function startHub(options: HeraldOptions = {}): Promise<TestHub> {
  const herald = createHerald(options);
  const server = createServer(nodeHandler(herald));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return testHub(url, herald, server, async () => {
    await herald.close();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
}

/** The standalone server (`herald serve`), configured by setting name as on the command line. */
export async function startServe(settings: Record<string, unknown> = {}): Promise<TestHub> {
  const running = await serve(resolveConfig({ port: 0, ...settings }, {}));
  return testHub(running.url, running.herald, running.server, async () => {
    // An HTTP/2 server has no such thing: its close() already ends every session.
    if ('closeAllConnections' in running.server) running.server.closeAllConnections();
    await running.close();
  });
}

function testHub(url: string, herald: Herald, server: HeraldServer, close: () => Promise<void>): TestHub {
  const streams: SseStream[] = [];
  return {
    url,
    herald,
    server,
    async subscribe(query, streamOptions) {
      const stream = await openStream(`${url}/v1/events?${query}`, streamOptions);
      streams.push(stream);
      return stream;
    },
    async publish(body, headers = {}) {
      const response = await fetch(`${url}/v1/publish`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: JSON.stringify(body),
      });
      const text = await response.text();
      return { status: response.status, body: text ? JSON.parse(text) : {}, headers: response.headers };
    },
    async close() {
      for (const stream of streams) stream.close();
      await close();
    },
  };
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
