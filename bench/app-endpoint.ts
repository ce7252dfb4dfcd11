import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * The app a hub's hooks call (S10), in the benchmark's own process on 127.0.0.1: `POST /auth`
 * answers `--auth-url`'s question, `POST /webhook` takes `--webhook-url`'s signed notices (checks
 * the signature, as an app must, counts the notices, answers 204). Its CPU is the app's share of
 * what the hooks cost, measured apart from the server's.
 */

/** The `--webhook-secret` the hub signs with: 32 bytes, the least it accepts. */
export const WEBHOOK_SECRET = 'bench-webhook-secret-0123456789abcdef';
/**
 * How long an auth answer holds: far past any case, so a cached answer is never asked again
 * within one (and past `--reauth-lead`, 30 s, so no stream is told to reauthenticate).
 */
const ANSWER_EXPIRES_S = 3_600;
/** The topic S10's streams are on, and the one the app grants. */
export const HOOKS_TOPIC = 'bench/hooks';
/** A larger body is not Herald's: refused, not buffered. */
const MAX_BODY_BYTES = 1024 * 1024;

/** What the app saw since the last `reset()`. */
export interface AppCounts {
  /** Auth questions answered. */
  authCalls: number;
  /** Webhook deliveries (POSTs) and the notices they carried. */
  webhookPosts: number;
  notices: number;
  opened: number;
  closed: number;
  /** Deliveries whose `Herald-Signature` did not verify, and requests the app could not read. */
  badSignatures: number;
  malformed: number;
}

export interface AppEndpoint {
  readonly authUrl: string;
  readonly webhookUrl: string;
  readonly counts: AppCounts;
  reset(): void;
}

const zero = (): AppCounts => ({
  authCalls: 0,
  webhookPosts: 0,
  notices: 0,
  opened: 0,
  closed: 0,
  badSignatures: 0,
  malformed: 0,
});

function bodyOf(request: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let bytes = 0;
    request.on('data', (chunk: Buffer) => {
      bytes += chunk.byteLength;
      if (bytes > MAX_BODY_BYTES) {
        reject(new Error('body too large'));
        request.destroy();
        return;
      }
      chunks.push(chunk);
    });
    request.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    request.on('error', reject);
  });
}

/** `Herald-Signature: t=<s>,v1=<hex>` over `<t>.<body>` (docs/hooks.md, "Verifying a delivery"). */
function signed(body: string, header: string | undefined): boolean {
  const parts = new Map((header ?? '').split(',').map((part) => part.split('=', 2) as [string, string]));
  const t = parts.get('t');
  const given = Buffer.from(parts.get('v1') ?? '', 'hex');
  const expected = createHmac('sha256', WEBHOOK_SECRET).update(`${t}.${body}`).digest();
  return given.byteLength === expected.byteLength && timingSafeEqual(given, expected);
}

/** The caller's session from its `session=` cookie; the app's answer names it the subject. */
function sessionOf(cookie: string | undefined): string | undefined {
  const match = /(?:^|;\s*)session=([^;]*)/.exec(cookie ?? '');
  return match?.[1];
}

let started: Promise<AppEndpoint> | undefined;

/**
 * The one app endpoint of the run, started on first use. Unreferenced, so it never keeps the
 * benchmark alive; each case resets its counts.
 */
export function appEndpoint(): Promise<AppEndpoint> {
  started ??= start();
  return started;
}

async function start(): Promise<AppEndpoint> {
  let counts = zero();
  const answer = (request: IncomingMessage, body: string): { status: number; body?: string } => {
    if (request.method === 'POST' && request.url === '/auth') {
      counts.authCalls++;
      const session = sessionOf(request.headers.cookie);
      if (session === undefined) return { status: 401 };
      // Each session is its own subject (per-subject limits, presence), allowed to hear who joins
      // and leaves (`presence:members`), for longer than any case runs.
      return {
        status: 200,
        body: JSON.stringify({
          allow: true,
          subject: `user-${session}`,
          subscribe: [HOOKS_TOPIC],
          permissions: ['presence:members'],
          expiresIn: ANSWER_EXPIRES_S,
        }),
      };
    }
    if (request.method === 'POST' && request.url === '/webhook') {
      counts.webhookPosts++;
      if (!signed(body, request.headers['herald-signature'] as string | undefined)) {
        counts.badSignatures++;
        return { status: 400 };
      }
      const events = (JSON.parse(body) as { events?: { type?: string }[] }).events ?? [];
      counts.notices += events.length;
      for (const event of events) {
        if (event.type === 'stream.opened') counts.opened++;
        else if (event.type === 'stream.closed') counts.closed++;
      }
      return { status: 204 };
    }
    return { status: 404 };
  };
  const server: Server = createServer((request, response) => {
    bodyOf(request)
      .then((body) => answer(request, body))
      .then(
        (reply) => {
          const headers = reply.body === undefined ? {} : { 'content-type': 'application/json' };
          response.writeHead(reply.status, headers).end(reply.body);
        },
        () => {
          counts.malformed++;
          if (!response.headersSent) response.writeHead(400).end();
        },
      );
  });
  // Herald keeps its connections to the app open between calls.
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  server.unref();
  const { port } = server.address() as AddressInfo;
  return {
    authUrl: `http://127.0.0.1:${port}/auth`,
    webhookUrl: `http://127.0.0.1:${port}/webhook`,
    get counts() {
      return counts;
    },
    reset() {
      counts = zero();
    },
  };
}
