/**
 * Seed 000's live dealer tiles on Hono: a score job publishes through Herald's in-process API,
 * Herald's web handler serves the streams under /realtime, and a React page (herald/react) shows
 * one tile per dealer. Run it with `npm run example:dealer-tiles`.
 */
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { serve } from '@hono/node-server';
import { build } from 'esbuild';
import { createHerald, type Herald, HeraldError } from 'herald';
import { webHandler } from 'herald/web';
import { Hono } from 'hono';
import { z } from 'zod';
import { DEMO_INVENTORY, ScoreJob } from './score-job.ts';

export interface DealerTilesOptions {
  /** 0 picks a free port. Default 3000. */
  readonly port?: number;
  readonly host?: string;
  /** How often the demo feed changes a random price, ms; 0 turns it off (the tests drive the job). Default 2 000. */
  readonly feedMs?: number;
}

export interface DealerTiles {
  readonly url: string;
  readonly herald: Herald;
  readonly job: ScoreJob;
  close(): Promise<void>;
}

const MsrpSyncBody = z.strictObject({
  records: z
    .array(z.strictObject({ vin: z.string().min(1), msrp: z.number().int().positive() }))
    .min(1)
    .max(1_000),
});

const problem = (status: number, code: string, detail: string) =>
  new Response(JSON.stringify(new HeraldError(status, code, detail).toProblem()), {
    status,
    headers: { 'content-type': 'application/problem+json' },
  });

async function bundlePage(): Promise<Uint8Array> {
  const result = await build({
    entryPoints: [fileURLToPath(new URL('page.tsx', import.meta.url))],
    bundle: true,
    write: false,
    minify: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    jsx: 'automatic',
    define: { 'process.env.NODE_ENV': '"production"' },
    logLevel: 'silent',
  });
  return result.outputFiles[0]?.contents as Uint8Array;
}

const HTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Dealer tiles</title><link rel="icon" href="data:,">
<style>
body { font-family: system-ui, sans-serif; margin: 24px; background: #f5f6f8; color: #1d2330; }
header { display: flex; gap: 12px; align-items: baseline; }
.status { font-size: 13px; padding: 2px 8px; border-radius: 10px; background: #dde; }
.status[data-status="open"] { background: #c8efd4; }
.tiles { display: flex; gap: 16px; flex-wrap: wrap; }
.tile { background: #fff; border: 1px solid #d5d9e2; border-radius: 10px; padding: 16px 20px; width: 300px; }
.tile dl { display: grid; grid-template-columns: auto 1fr; gap: 4px 16px; font-size: 20px; }
.tile dd { margin: 0; font-variant-numeric: tabular-nums; font-weight: 600; }
.msrp { font-size: 13px; color: #555; min-height: 2.6em; }
</style></head>
<body><main id="root"></main><script type="module" src="/app.js"></script></body></html>`;

export async function start(options: DealerTilesOptions = {}): Promise<DealerTiles> {
  // Browsers only listen (anonymous, public events); publishing over HTTP needs a token signed
  // with this secret, which nobody is given: the score job publishes in-process.
  const herald = createHerald({
    auth: { jwt: { secrets: [randomBytes(32).toString('hex')] }, anonymous: true },
  });
  const job = new ScoreJob(herald, DEMO_INVENTORY);
  const realtime = webHandler(herald, { basePath: '/realtime' });
  const script = await bundlePage();

  const app = new Hono()
    .all('/realtime/*', (c) => realtime(c.req.raw))
    .get('/', (c) => c.html(HTML))
    .get('/app.js', (c) =>
      c.body(script as Uint8Array<ArrayBuffer>, 200, { 'content-type': 'text/javascript' }),
    )
    .get('/api/dealers', (c) => c.json({ dealers: job.dealers() }))
    // Seed 001's "trigger MSRP sync": the prices a feed reports; changes are published.
    .post('/api/jobs/msrp-sync', async (c) => {
      let body: unknown;
      try {
        body = await c.req.json();
      } catch {
        return problem(400, 'malformed-json', 'the body is not JSON: send {"records": [{"vin", "msrp"}]}');
      }
      const parsed = MsrpSyncBody.safeParse(body);
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        return problem(400, 'invalid-records', `${issue?.path.join('.') || 'body'}: ${issue?.message}`);
      }
      const unknown = parsed.data.records.find(({ vin }) => job.vehicle(vin) === undefined);
      if (unknown !== undefined) {
        return problem(
          400,
          'unknown-vin',
          `vin ${unknown.vin} is not in the inventory; see GET /api/dealers`,
        );
      }
      return c.json({ changed: await job.syncMsrp(parsed.data.records) }, 202);
    });

  const server = serve({
    fetch: app.fetch,
    port: options.port ?? 3000,
    hostname: options.host ?? '127.0.0.1',
  });
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  const { port } = server.address() as AddressInfo;

  const feedMs = options.feedMs ?? 2_000;
  const feed =
    feedMs > 0
      ? setInterval(() => {
          const vehicle = DEMO_INVENTORY[Math.floor(Math.random() * DEMO_INVENTORY.length)] as {
            vin: string;
          };
          const current = job.vehicle(vehicle.vin)?.msrp ?? 0;
          const msrp = Math.round(current * (0.95 + Math.random() * 0.1));
          job.syncMsrp([{ vin: vehicle.vin, msrp }]).catch((error) => console.error('demo feed:', error));
        }, feedMs)
      : undefined;

  return {
    url: `http://${options.host ?? '127.0.0.1'}:${port}`,
    herald,
    job,
    async close() {
      clearInterval(feed);
      // Streams never end by themselves: end them (with a retry hint) so the server can close.
      await herald.close();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

if (import.meta.main) {
  const app = await start({
    port: Number(process.env.PORT ?? 3000),
    feedMs: Number(process.env.FEED_MS ?? 2_000),
  });
  console.log(`dealer-tiles listening on ${app.url}`);
  const stop = () => void app.close().then(() => process.exit(0));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}
