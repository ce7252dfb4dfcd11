/**
 * Seed 000's live dealer tiles on Hono: a score job publishes through Herald's in-process API,
 * Herald's web handler serves the streams under /realtime, and a React page (herald/react) shows
 * one tile per dealer. Run it with `npm run example:dealer-tiles`.
 */
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { serve } from '@hono/node-server';
import react from '@vitejs/plugin-react';
import { createHerald, type Herald, HeraldError } from 'herald';
import { webHandler } from 'herald/web';
import { Hono } from 'hono';
import { build, type Rolldown } from 'vite';
import { z } from 'zod';
import { DEMO_INVENTORY, ScoreJob, type TileEvents } from './score-job.ts';

export interface DealerTilesOptions {
  /** 0 picks a free port. Default 3000. */
  readonly port?: number;
  readonly host?: string;
  /** How often the demo feed changes a random price, ms; 0 turns it off (the tests drive the job). Default 2 000. */
  readonly feedMs?: number;
}

export interface DealerTiles {
  readonly url: string;
  readonly herald: Herald<TileEvents>;
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

/**
 * The page, built by Vite from index.html and page.tsx into memory at start: path → file. Vite
 * hashes asset names, so the HTML it writes is what names the script.
 */
async function buildPage(): Promise<Map<string, { type: string; body: Uint8Array | string }>> {
  const output = (await build({
    configFile: false,
    root: fileURLToPath(new URL('.', import.meta.url)),
    plugins: [react()],
    logLevel: 'silent',
    build: { write: false, target: 'es2022', modulePreload: false },
  })) as Rolldown.RolldownOutput;
  const files = new Map<string, { type: string; body: Uint8Array | string }>();
  for (const file of output.output) {
    const body = file.type === 'chunk' ? file.code : file.source;
    const type = file.fileName.endsWith('.html') ? 'text/html; charset=utf-8' : 'text/javascript';
    files.set(`/${file.fileName === 'index.html' ? '' : file.fileName}`, { type, body });
  }
  return files;
}

export async function start(options: DealerTilesOptions = {}): Promise<DealerTiles> {
  // Browsers only listen (anonymous, public events); publishing over HTTP needs a token signed
  // with this secret, which nobody is given: the score job publishes in-process.
  const herald = createHerald<TileEvents>({
    auth: { jwt: { secrets: [randomBytes(32).toString('hex')] }, anonymous: true },
  });
  const job = new ScoreJob(herald, DEMO_INVENTORY);
  const realtime = webHandler(herald, { basePath: '/realtime' });
  const page = await buildPage();

  const app = new Hono()
    .all('/realtime/*', (c) => realtime(c.req.raw))
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
    })
    .get('*', (c) => {
      const file = page.get(c.req.path);
      if (file === undefined) return c.notFound();
      return c.body(file.body as string, 200, { 'content-type': file.type });
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
