/**
 * Seed 002's purchase-order progress on Express: a worker publishes stage, progress, completion
 * and error events to Redis channels `<prefix>:<merchantId>:<kind>`, one bridge carries them into
 * Herald with the merchant as the tenant, and each merchant's page (herald/client) shows a
 * progress bar per purchase order. Run it with `npm run example:order-progress`.
 */
import { randomBytes } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import express, { type Request, type Response } from 'express';
import { type Bridges, createHerald, type Herald, HeraldError, startBridges } from 'herald';
import { nodeHandler } from 'herald/node';
import { jwtVerify, SignJWT } from 'jose';
import { createClient } from 'redis';
import { queueKey, startWorker, type Worker } from './worker.ts';

export interface OrderProgressOptions {
  /** 0 picks a free port. Default 3001. */
  readonly port?: number;
  readonly host?: string;
  /** Default redis://127.0.0.1:6379. */
  readonly redisUrl?: string;
  /** Channel and key prefix. Default `merchant` (channels `merchant:<id>:progress`, as in seed 002). */
  readonly prefix?: string;
  /** The worker's pause between progress steps, ms. Default 700. */
  readonly stepMs?: number;
}

export interface OrderProgress {
  readonly url: string;
  readonly herald: Herald;
  readonly bridges: Bridges;
  close(): Promise<void>;
}

/** Herald reads its token from this cookie by default: the page never handles the token. */
const COOKIE = 'herald_token';
const MERCHANT_ID = /^[A-Za-z0-9_-]{1,64}$/;

const problem = (response: Response, status: number, code: string, detail: string) =>
  response
    .status(status)
    .type('application/problem+json')
    .send(JSON.stringify(new HeraldError(status, code, detail).toProblem()));

function cookie(request: Request, name: string): string | undefined {
  for (const part of (request.headers.cookie ?? '').split(';')) {
    const [key, ...value] = part.trim().split('=');
    if (key === name) return decodeURIComponent(value.join('='));
  }
  return undefined;
}

async function bundlePage(): Promise<Uint8Array> {
  const result = await build({
    entryPoints: [fileURLToPath(new URL('page.ts', import.meta.url))],
    bundle: true,
    write: false,
    minify: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    logLevel: 'silent',
  });
  return result.outputFiles[0]?.contents as Uint8Array;
}

const HTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Purchase orders</title><link rel="icon" href="data:,">
<style>
body { font-family: system-ui, sans-serif; margin: 24px; background: #f6f7f9; color: #1c2230; max-width: 900px; }
header { display: flex; gap: 12px; align-items: baseline; }
.status { font-size: 13px; padding: 2px 8px; border-radius: 10px; background: #dde; }
.status[data-status="open"] { background: #c8efd4; }
form { margin: 16px 0; display: flex; gap: 8px; }
input { padding: 6px 8px; width: 260px; }
.order { background: #fff; border: 1px solid #d7dbe3; border-radius: 8px; padding: 12px 16px; margin-bottom: 10px; }
.order h2 { font-size: 16px; margin: 0 0 6px; display: flex; justify-content: space-between; }
.bar { height: 12px; background: #e7e9ee; border-radius: 6px; overflow: hidden; }
.bar div { height: 100%; background: #3b82f6; transition: width 0.2s; }
.order[data-state="completed"] .bar div { background: #16a34a; }
.order[data-state="failed"] .bar div { background: #dc2626; }
.message { font-size: 13px; color: #555; margin-top: 6px; }
</style></head>
<body><main id="root"></main><script type="module" src="/app.js"></script></body></html>`;

export async function start(options: OrderProgressOptions = {}): Promise<OrderProgress> {
  const redisUrl = options.redisUrl ?? 'redis://127.0.0.1:6379';
  const prefix = options.prefix ?? 'merchant';
  // The app signs its sessions, and Herald verifies them: one token is both.
  const secret = new TextEncoder().encode(process.env.SESSION_SECRET ?? randomBytes(32).toString('hex'));
  const herald = createHerald({ auth: { jwt: { secrets: [new TextDecoder().decode(secret)] } } });
  // The merchant is only in the channel name: it becomes the tenant, so a merchant's stream only
  // ever carries its own orders, whatever topics it asks for. The key is the order: the hub keeps
  // each order's latest event, which a page that opens gets first (`snapshot: 'latest'`).
  const bridges = await startBridges(
    herald,
    [`redis:${prefix}:*:* -> purchase-orders/{poId} tenant={1} type={2} key=poId`],
    { redisUrl },
  );
  herald.addStats('bridges', () => bridges.stats());
  const worker: Worker = await startWorker({ redisUrl, prefix, stepMs: options.stepMs ?? 700 });
  const queue = createClient({ url: redisUrl });
  queue.on('error', (error) => console.error('queue redis:', error));
  await queue.connect();
  const script = await bundlePage();

  const merchantOf = async (request: Request): Promise<string | undefined> => {
    const token = cookie(request, COOKIE);
    if (token === undefined) return undefined;
    try {
      const { payload } = await jwtVerify(token, secret);
      return (payload.herald as { tenant?: string } | undefined)?.tenant;
    } catch {
      return undefined;
    }
  };

  const app = express();
  app.use('/realtime', nodeHandler(herald));
  app.get('/', (_request, response) => void response.type('html').send(HTML));
  app.get('/app.js', (_request, response) => void response.type('text/javascript').send(Buffer.from(script)));
  // A stand-in for the app's real sign-in (seed 002 verifies a Shopify session): the session
  // token names the merchant as Herald's tenant.
  app.get('/login/:merchantId', async (request, response) => {
    const { merchantId } = request.params;
    if (!MERCHANT_ID.test(merchantId)) {
      return problem(response, 400, 'invalid-merchant', 'a merchant id is 1 to 64 letters, digits, - or _');
    }
    const token = await new SignJWT({ herald: { tenant: merchantId } })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject(`${merchantId}-user`)
      .setIssuedAt()
      .setExpirationTime('8h')
      .sign(secret);
    response.cookie(COOKIE, token, { httpOnly: true, sameSite: 'strict', path: '/' }).redirect('/');
  });
  app.get('/api/me', async (request, response) => {
    const merchantId = await merchantOf(request);
    if (merchantId === undefined)
      return problem(response, 401, 'signed-out', 'sign in at /login/<merchantId> first');
    response.json({ merchantId });
  });
  // "Upload PO": queue the job for the worker.
  app.post('/api/purchase-orders', express.json({ limit: '16kb' }), async (request, response) => {
    const merchantId = await merchantOf(request);
    if (merchantId === undefined)
      return problem(response, 401, 'signed-out', 'sign in at /login/<merchantId> first');
    const fileName = (request.body as { fileName?: unknown } | undefined)?.fileName;
    if (typeof fileName !== 'string' || fileName.trim() === '' || fileName.length > 200) {
      return problem(response, 400, 'file-name-required', 'send {"fileName": "…"}, 1 to 200 characters');
    }
    const poId = `PO-${randomBytes(4).toString('hex').toUpperCase()}`;
    await queue.lPush(queueKey(prefix), JSON.stringify({ merchantId, poId, fileName: fileName.trim() }));
    response.status(202).json({ poId });
  });

  const server: Server = app.listen(options.port ?? 3001, options.host ?? '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${options.host ?? '127.0.0.1'}:${port}`,
    herald,
    bridges,
    async close() {
      await worker.close();
      await bridges.close();
      await herald.close();
      await new Promise((resolve) => server.close(resolve));
      await queue.del(queueKey(prefix));
      await queue.close();
    },
  };
}

if (import.meta.main) {
  const app = await start({
    port: Number(process.env.PORT ?? 3001),
    redisUrl: process.env.REDIS_URL,
    prefix: process.env.CHANNEL_PREFIX,
  });
  console.log(`order-progress listening on ${app.url} (sign in at ${app.url}/login/<merchantId>)`);
  const stop = () => void app.close().then(() => process.exit(0));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}
