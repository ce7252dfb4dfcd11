import assert from 'node:assert/strict';
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { WebhookNotice } from '../../src/observability/webhooks.ts';
import { sleep } from './server.ts';

export interface Delivery {
  /** performance.now() when the body had arrived. */
  readonly at: number;
  readonly signature: string;
  readonly body: string;
  readonly events: WebhookNotice[];
  /** The signature checked out under the receiver's secret, as an app would check it. */
  readonly verified: boolean;
}

export type Behaviour = (delivery: Delivery, response: ServerResponse) => void;

/**
 * The app's webhook endpoint (`--webhook-url`), a real node:http server: records each delivery,
 * checks its `Herald-Signature` (HMAC-SHA256 of `<t>.<body>`, written here from docs/hooks.md,
 * not taken from Herald's code) and answers as told.
 */
export class WebhookReceiver {
  readonly deliveries: Delivery[] = [];
  behave: Behaviour = (_delivery, response) => response.writeHead(204).end();
  url = '';
  private readonly secret: string;
  private readonly server: Server;
  private readonly held = new Set<ServerResponse>();

  constructor(secret: string) {
    this.secret = secret;
    this.server = createServer((request: IncomingMessage, response) => {
      let body = '';
      request.setEncoding('utf8');
      request.on('data', (chunk: string) => {
        body += chunk;
      });
      request.on('end', () => {
        const signature = String(request.headers['herald-signature']);
        const delivery = {
          at: performance.now(),
          signature,
          body,
          events: (JSON.parse(body) as { events: WebhookNotice[] }).events,
          verified: this.verifies(body, signature),
        };
        this.deliveries.push(delivery);
        this.behave(delivery, response);
      });
    });
  }

  get notices(): WebhookNotice[] {
    return this.deliveries.flatMap((delivery) => delivery.events);
  }

  /** Keeps the request open: an endpoint that hangs. */
  hold(response: ServerResponse): void {
    this.held.add(response);
  }

  get holding(): number {
    return [...this.held].filter((response) => !response.destroyed && !response.writableEnded).length;
  }

  /** Listens on 127.0.0.1, on `port` (to come back where it was) or a free one. */
  async start(port = 0): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, '127.0.0.1', () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/hooks`;
  }

  async until(condition: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!condition()) {
      if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
      await sleep(10);
    }
  }

  async stop(): Promise<void> {
    for (const response of this.held) response.destroy();
    this.held.clear();
    if (!this.server.listening) return;
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private verifies(body: string, header: string): boolean {
    const match = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(header);
    if (match === null || Math.abs(Date.now() / 1000 - Number(match[1])) > 300) return false;
    const expected = createHmac('sha256', this.secret).update(`${match[1]}.${body}`).digest();
    return timingSafeEqual(Buffer.from(match[2] as string, 'hex'), expected);
  }
}
