/**
 * Seed 003's cockpit on Fastify: analytics services publish on NATS (`metrics.<company>.<metric>`,
 * `journey.<company>.flag_updated`), two bridges carry the subjects into company-scoped topics with
 * the company as the tenant, Herald keeps the log in NATS JetStream (the seed's Redis replay
 * cache, 24 h), and the dashboard resumes with `lastEventId` after a reload. Run it with
 * `npm run example:company-metrics`.
 */
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify';
import { type Bridges, brokerFor, createHerald, type Herald, HeraldError, startBridges } from 'herald';
import { heraldFastify } from 'herald/fastify';
import { jwtVerify, SignJWT } from 'jose';
import { startCalculator } from './calculator.ts';

export interface CompanyMetricsOptions {
  /** 0 picks a free port. Default 3002. */
  readonly port?: number;
  readonly host?: string;
  /** Default nats://127.0.0.1:4222. */
  readonly natsUrl?: string;
  /** Before every subject the bridges listen to, e.g. `demo.`. Default none. */
  readonly subjectPrefix?: string;
  /** The JetStream stream holding Herald's log. Default `COMPANY_METRICS`. */
  readonly stream?: string;
  /** How often the demo calculator publishes, ms; 0 turns it off. Default 1 500. */
  readonly feedMs?: number;
}

export interface CompanyMetrics {
  readonly url: string;
  readonly herald: Herald;
  readonly bridges: Bridges;
  close(): Promise<void>;
}

const COOKIE = 'herald_token';
const COMPANY_ID = /^[A-Za-z0-9_-]{1,64}$/;
const DAY_MS = 24 * 60 * 60 * 1000;

const problem = (reply: FastifyReply, status: number, code: string, detail: string) =>
  reply
    .code(status)
    .type('application/problem+json')
    .send(JSON.stringify(new HeraldError(status, code, detail).toProblem()));

function cookie(request: FastifyRequest, name: string): string | undefined {
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
<html lang="en"><head><meta charset="utf-8"><title>Company metrics</title><link rel="icon" href="data:,">
<style>
body { font-family: system-ui, sans-serif; margin: 24px; background: #f4f6f8; color: #1b2130; }
header { display: flex; gap: 12px; align-items: baseline; }
.status { font-size: 13px; padding: 2px 8px; border-radius: 10px; background: #dde; }
.status[data-status="open"] { background: #c8efd4; }
.resume { font-size: 13px; color: #555; }
.gap { background: #fde68a; padding: 6px 10px; border-radius: 6px; }
.grid { display: grid; grid-template-columns: repeat(2, 200px) 260px 1fr; gap: 14px; align-items: start; }
.metric, .panel { background: #fff; border: 1px solid #d6dae2; border-radius: 10px; padding: 12px 16px; }
.metric h2, .panel h2 { font-size: 13px; text-transform: uppercase; color: #667; margin: 0 0 6px; }
.metric .value { font-size: 30px; font-weight: 650; font-variant-numeric: tabular-nums; }
.journey { grid-column: 3; grid-row: 1 / span 6; }
.activity { grid-column: 4; grid-row: 1 / span 6; }
.panel ul, .panel ol { margin: 0; padding-left: 36px; font-size: 13px; max-height: 560px; overflow: hidden; }
.panel ol { columns: 2; }
</style></head>
<body><main id="root"></main><script type="module" src="/app.js"></script></body></html>`;

export async function start(options: CompanyMetricsOptions = {}): Promise<CompanyMetrics> {
  const natsUrl = options.natsUrl ?? 'nats://127.0.0.1:4222';
  const prefix = options.subjectPrefix ?? '';
  const secret = new TextEncoder().encode(process.env.SESSION_SECRET ?? randomBytes(32).toString('hex'));
  const herald = createHerald({
    broker: await brokerFor({ url: natsUrl, stream: options.stream ?? 'COMPANY_METRICS', maxAgeMs: DAY_MS }),
    auth: { jwt: { secrets: [new TextDecoder().decode(secret)] } },
  });
  await herald.hub.whenReady();
  // The company is in the subject; it becomes the tenant, so a stream only ever carries its own
  // company's events (seed 003's "TODO: JWT verification" is the token's tenant). The keys name
  // what the dashboard shows, a metric or a user's flag: the hub keeps the latest event of each
  // for a page that opens with nothing saved (`snapshot=latest`). They are distinct across topics
  // too, since a key also conflates queued events.
  const bridges = await startBridges(
    herald,
    [
      `nats:${prefix}metrics.*.* -> companies/{1}/metrics/{2} tenant={1} type='metric_updated' key=metric:{2}`,
      `nats:${prefix}journey.*.* -> companies/{1}/journey/{2} tenant={1} type=journey_{2} key=flag:{userId}`,
    ],
    { natsUrl },
  );
  herald.addStats('bridges', () => bridges.stats());
  const feedMs = options.feedMs ?? 1_500;
  const stopCalculator =
    feedMs > 0 ? await startCalculator({ natsUrl, subjectPrefix: prefix, everyMs: feedMs }) : undefined;
  const script = await bundlePage();

  const app = Fastify();
  await app.register(heraldFastify, { herald, prefix: '/realtime' });
  app.get('/', (_request, reply) => reply.type('text/html; charset=utf-8').send(HTML));
  app.get('/app.js', (_request, reply) => reply.type('text/javascript').send(Buffer.from(script)));
  // A stand-in for the platform's sign-in: the session token names the company as Herald's tenant.
  app.get<{ Params: { companyId: string } }>('/login/:companyId', async (request, reply) => {
    const { companyId } = request.params;
    if (!COMPANY_ID.test(companyId)) {
      return problem(reply, 400, 'invalid-company', 'a company id is 1 to 64 letters, digits, - or _');
    }
    const token = await new SignJWT({ herald: { tenant: companyId } })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject(`${companyId}-analyst`)
      .setIssuedAt()
      .setExpirationTime('8h')
      .sign(secret);
    return reply.header('set-cookie', `${COOKIE}=${token}; HttpOnly; SameSite=Strict; Path=/`).redirect('/');
  });
  app.get('/api/me', async (request, reply) => {
    const token = cookie(request, COOKIE);
    try {
      if (token === undefined) throw new Error('no session');
      const { payload } = await jwtVerify(token, secret);
      return { companyId: (payload.herald as { tenant: string }).tenant };
    } catch {
      return problem(reply, 401, 'signed-out', 'sign in at /login/<companyId> first');
    }
  });

  const address = await app.listen({ port: options.port ?? 3002, host: options.host ?? '127.0.0.1' });
  return {
    url: address,
    herald,
    bridges,
    async close() {
      await stopCalculator?.();
      await bridges.close();
      // Ends the plugin's streams (preClose), then the hub and its NATS connection.
      await app.close();
      await herald.close();
    },
  };
}

if (import.meta.main) {
  const app = await start({
    port: Number(process.env.PORT ?? 3002),
    natsUrl: process.env.NATS_URL,
    subjectPrefix: process.env.SUBJECT_PREFIX,
    feedMs: Number(process.env.FEED_MS ?? 1_500),
  });
  console.log(`company-metrics listening on ${app.url} (sign in at ${app.url}/login/acme)`);
  const stop = () => void app.close().then(() => process.exit(0));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}
