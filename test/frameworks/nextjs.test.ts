import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { appendFileSync, cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { stripVTControlCharacters } from 'node:util';
import { createHerald } from '../../src/herald.ts';
import { eventsHandler } from '../../src/http/web.ts';
import { openStream, type SseStream } from '../helpers/sse-client.ts';

/**
 * Herald in a Next.js App Router app, as a user would have it: the files of
 * docs/embedding-nextjs.md, no next.config, and `herald` installed from this checkout's build (npm
 * test builds it first). `next build` with Turbopack and with webpack, each served by `next start`
 * (a stream-only route receives what another route publishes; the dashboard is served from the
 * bundle), then `next dev`, where an open stream must keep receiving after lib/herald.ts is
 * edited (one hub per process).
 *
 * The app lives in test-artifacts/ (git-ignored), inside the checkout: Turbopack compiles nothing
 * outside its root (the directory of the nearest lockfile, here the checkout's), and next, react
 * and react-dom resolve from the checkout's node_modules as they would from the app's own.
 */

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const NEXT_BIN = join(ROOT, 'node_modules/next/dist/bin/next');
const DOC = join(ROOT, 'docs/embedding-nextjs.md');
const APP = join(ROOT, 'test-artifacts', `nextjs-${process.pid}`);

/** The files the doc gives, each introduced by a bold `path` line before its code block. */
const DOCUMENTED = [
  'lib/herald.ts',
  'app/api/ai-scores/stream/route.ts',
  'app/api/scores/route.ts',
  'app/dealer-scores.tsx',
  'app/api/herald/[...path]/route.ts',
];

/** What create-next-app writes, and what the test needs besides the doc's files. */
const SCAFFOLD: Readonly<Record<string, string>> = {
  'package.json': `${JSON.stringify({ name: 'herald-nextjs-test', private: true }, null, 2)}\n`,
  'tsconfig.json': `${JSON.stringify(
    {
      compilerOptions: {
        target: 'ES2017',
        lib: ['dom', 'dom.iterable', 'esnext'],
        allowJs: true,
        skipLibCheck: true,
        strict: true,
        noEmit: true,
        esModuleInterop: true,
        module: 'esnext',
        moduleResolution: 'bundler',
        resolveJsonModule: true,
        isolatedModules: true,
        jsx: 'react-jsx',
        incremental: true,
        plugins: [{ name: 'next' }],
        paths: { '@/*': ['./*'] },
      },
      include: ['next-env.d.ts', '**/*.ts', '**/*.tsx', '.next/types/**/*.ts'],
      exclude: ['node_modules'],
    },
    null,
    2,
  )}\n`,
  'app/layout.tsx': `export default function RootLayout({ children }: { children: React.ReactNode }) {
  return (
    <html lang="en">
      <body>{children}</body>
    </html>
  );
}
`,
  'app/page.tsx': `import { DealerScores } from './dealer-scores';

export default function Home() {
  return <DealerScores dealerId="STORE1" />;
}
`,
  // The operator's mount, as a platform that vouches its callers are local would serve it: a hub
  // without auth answers stats, metrics and the dashboard only to this machine.
  'app/api/local/[...path]/route.ts': `import { webHandler } from 'herald/web';
import { herald } from '@/lib/herald';

const handler = webHandler(herald, { basePath: '/api/local', clientAddress: () => '127.0.0.1' });
export { handler as GET };
`,
  // Tells which edition of lib/herald.ts the server runs: the dev test edits it to set 2.
  'app/api/edition/route.ts': `import '@/lib/herald';

export function GET(): Response {
  return Response.json({ edition: (globalThis as { heraldEdition?: number }).heraldEdition ?? 1 });
}
`,
};

const EDIT = '\n(globalThis as { heraldEdition?: number }).heraldEdition = 2;\n';
const TOPIC = 'dealers/{dealerId}/scores';
const STREAM_PATH = `/api/ai-scores/stream?topic=${encodeURIComponent(TOPIC)}`;

function documentedFiles(): Map<string, string> {
  const markdown = readFileSync(DOC, 'utf8');
  const files = new Map<string, string>();
  for (const match of markdown.matchAll(/^\*\*`([^`]+)`\*\*(?:(?!```)[\s\S])*?^```tsx?\n([\s\S]*?)^```$/gm)) {
    files.set(match[1] as string, match[2] as string);
  }
  return files;
}

// ---- processes ------------------------------------------------------------------------------

const running = new Set<NextProcess>();

/** Kills every Next process group still running (next spawns workers: the whole group goes). */
function killAll(): void {
  for (const next of running) next.signal('SIGKILL');
}
// Also when the file is interrupted (the runner's watchdog, Ctrl-C): the groups are not ours.
process.once('exit', killAll);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    killAll();
    process.kill(process.pid, signal);
  });
}

/** `next <args>` in the app, in a process group of its own. */
class NextProcess {
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
  output = '';
  private waiters: (() => void)[] = [];

  constructor(args: readonly string[]) {
    const env: NodeJS.ProcessEnv = { ...process.env, NEXT_TELEMETRY_DISABLED: '1', NO_COLOR: '1' };
    // Next sets NODE_ENV itself; node:test's own variable is not for the app.
    delete env.NODE_ENV;
    delete env.NODE_TEST_CONTEXT;
    this.child = spawn(process.execPath, [NEXT_BIN, ...args], {
      cwd: APP,
      env,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    running.add(this);
    for (const stream of [this.child.stdout, this.child.stderr]) {
      stream?.setEncoding('utf8');
      stream?.on('data', (text: string) => {
        this.output += stripVTControlCharacters(text);
        this.wake();
      });
    }
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code) => {
        running.delete(this);
        this.wake();
        resolve(code);
      });
    });
  }

  /** The last lines of the output, for failure messages. */
  tail(): string {
    return this.output.split('\n').slice(-60).join('\n');
  }

  /** Resolves with the first match of `pattern` in the output; rejects if the process ends first. */
  async waitFor(pattern: RegExp, what: string, timeoutMs: number): Promise<RegExpMatchArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const match = pattern.exec(this.output);
      if (match !== null) return match;
      if (!running.has(this)) throw new Error(`next ended before ${what}:\n${this.tail()}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no ${what} from next within ${timeoutMs / 1000} s:\n${this.tail()}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 1000));
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  signal(signal: NodeJS.Signals): void {
    if (this.child.pid === undefined || !running.has(this)) return;
    try {
      process.kill(-this.child.pid, signal);
    } catch {
      // Already gone.
    }
  }

  async stop(): Promise<void> {
    this.signal('SIGKILL');
    await this.exited;
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }
}

async function build(args: readonly string[]): Promise<void> {
  const next = new NextProcess(['build', ...args]);
  const code = await next.exited;
  assert.equal(code, 0, `next build ${args.join(' ')} failed:\n${next.tail()}`);
}

/** `next start` or `next dev` on a free loopback port; resolves with its base URL once it is ready. */
async function serve(command: 'start' | 'dev'): Promise<{ next: NextProcess; url: string }> {
  const next = new NextProcess([command, '--port', '0', '--hostname', '127.0.0.1']);
  const [, url] = await next.waitFor(/Local:\s+(http:\/\/\S+)/, 'URL', 120_000);
  await next.waitFor(/Ready in/, 'ready line', 120_000);
  return { next, url: url as string };
}

// ---- what the tests do through the app --------------------------------------------------------

const streams = new Set<SseStream>();

async function openScores(url: string): Promise<SseStream> {
  const stream = await openStream(`${url}${STREAM_PATH}`);
  streams.add(stream);
  if (stream.status !== 200) {
    await stream.untilEnded(30_000).catch(() => {});
    assert.fail(`GET ${STREAM_PATH} answered ${stream.status}:\n${stream.raw.slice(0, 4000)}`);
  }
  assert.match(String(stream.headers['content-type']), /^text\/event-stream/);
  // next dev compiles the route on its first request.
  await stream.untilConnected(120_000);
  return stream;
}

/** Publishes through the app's own route (`herald.publish` in a Route Handler). */
async function publishScore(url: string, avi: number): Promise<string> {
  const response = await fetch(`${url}/api/scores`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ dealerId: 'STORE1', vin: '1ABC', avi, ati: 72, cis: 69 }),
  });
  const text = await response.text();
  assert.equal(response.status, 202, text);
  return (JSON.parse(text) as { id: string }).id;
}

/** Waits for event number `count` on the stream and checks it is the score with `avi`. */
async function receives(stream: SseStream, count: number, id: string, avi: number): Promise<void> {
  await stream.untilData(count, 30_000);
  const event = stream.data[count - 1];
  assert.equal(event?.id, id);
  assert.equal(event?.type, 'ai-score');
  assert.deepEqual(JSON.parse(event?.data ?? ''), { vin: '1ABC', avi, ati: 72, cis: 69 });
}

/** next start on the build just made: stream, publish from another route, dashboard, metrics. */
async function checkProduction(): Promise<void> {
  const { next, url } = await serve('start');
  try {
    const stream = await openScores(url);
    const id = await publishScore(url, 66);
    await receives(stream, 1, id, 66);
    stream.close();

    // Without auth, the full mount keeps the operator's pages from a caller it cannot place.
    for (const path of ['dashboard', 'metrics']) {
      const refused = await fetch(`${url}/api/herald/${path}`);
      assert.equal(refused.status, 403, path);
      assert.equal(((await refused.json()) as { code: string }).code, 'loopback-only');
    }
    // The dashboard comes from the bundle: no file is read at run time.
    const page = await fetch(`${url}/api/local/dashboard`);
    assert.equal(page.status, 200);
    assert.match(await page.text(), /<title>Herald dashboard<\/title>/);
    const script = await fetch(`${url}/api/local/dashboard/app.js`);
    assert.equal(script.status, 200);
    assert.match(String(script.headers.get('content-type')), /^text\/javascript/);
    assert.ok((await script.text()).length > 1000);
    // prom-client, loaded on first use, from the bundle.
    const metrics = await fetch(`${url}/api/local/metrics`);
    const exposition = await metrics.text();
    assert.equal(metrics.status, 200, exposition.slice(0, 4000));
    assert.match(exposition, /^herald_connections/m);
  } finally {
    await next.stop();
  }
}

const seconds = (since: number) => `${((performance.now() - since) / 1000).toFixed(1)} s`;

describe('Next.js App Router: the documented app, with no next.config', () => {
  before(() => {
    assert.ok(
      existsSync(join(ROOT, 'dist/index.js')),
      'herald is not built: run `npm run build` (npm test does it first)',
    );
    const files = documentedFiles();
    for (const path of DOCUMENTED) assert.ok(files.has(path), `docs/embedding-nextjs.md gives no ${path}`);
    rmSync(APP, { recursive: true, force: true });
    for (const [path, text] of [...files, ...Object.entries(SCAFFOLD)]) {
      mkdirSync(dirname(join(APP, path)), { recursive: true });
      writeFileSync(join(APP, path), text);
    }
    // `npm install herald` from this checkout: what the package ships (`files`: dist).
    const herald = join(APP, 'node_modules/herald');
    cpSync(join(ROOT, 'dist'), join(herald, 'dist'), { recursive: true });
    cpSync(join(ROOT, 'package.json'), join(herald, 'package.json'));
  });

  after(async () => {
    for (const stream of streams) stream.close();
    await Promise.all([...running].map((next) => next.stop()));
    rmSync(APP, { recursive: true, force: true });
  });

  test('next build (Turbopack), next start: a stream-only route gets what another route publishes', {
    timeout: 420_000,
  }, async (t) => {
    const began = performance.now();
    await build([]);
    t.diagnostic(`next build (Turbopack): ${seconds(began)}`);
    await checkProduction();
  });

  test('next build --webpack, next start: the same', { timeout: 420_000 }, async (t) => {
    const began = performance.now();
    await build(['--webpack']);
    t.diagnostic(`next build --webpack: ${seconds(began)}`);
    await checkProduction();
  });

  test('next dev: a stream opened before lib/herald.ts is edited gets what is published after (one hub)', {
    timeout: 420_000,
  }, async (t) => {
    const began = performance.now();
    const { next, url } = await serve('dev');
    try {
      const stream = await openScores(url);
      await receives(stream, 1, await publishScore(url, 1), 1);
      t.diagnostic(`next dev, first event: ${seconds(began)}`);

      // An edit as a developer makes one: next dev evaluates lib/herald.ts (and its importers) again.
      appendFileSync(join(APP, 'lib/herald.ts'), EDIT);
      const reloaded = Date.now() + 120_000;
      for (;;) {
        const response = await fetch(`${url}/api/edition`);
        // Anything but the answer (a page while it compiles) is asked again.
        const answer = response.ok ? ((await response.json()) as { edition: number }) : undefined;
        if (answer?.edition === 2) break;
        assert.ok(Date.now() < reloaded, `next dev did not reload lib/herald.ts:\n${next.tail()}`);
        await new Promise((resolve) => setTimeout(resolve, 500));
      }

      const id = await publishScore(url, 2);
      await receives(stream, 2, id, 2).catch((error: Error) => {
        throw new Error(
          `after the reload, the stream opened before it did not get ${id}: a second hub? ${error.message}`,
        );
      });
      assert.equal(stream.ended, false);
      t.diagnostic(`next dev, reload and event: ${seconds(began)}`);
    } finally {
      await next.stop();
    }
  });
});

describe('eventsHandler, the GET of a stream-only route (no Next.js needed)', () => {
  test('serves the event stream at any path, with the query of /v1/events', async (t) => {
    const herald = createHerald({ heartbeatMs: 60_000 });
    t.after(() => herald.close());
    const GET = eventsHandler(herald);
    const abort = new AbortController();
    t.after(() => abort.abort());
    const response = await GET(
      new Request(
        'http://localhost:3000/api/ai-scores/stream?topic=dealers/%7BdealerId%7D/scores&type=ai-score',
        {
          signal: abort.signal,
        },
      ),
    );
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('content-type'), 'text/event-stream; charset=utf-8');
    assert.ok(response.body !== null);
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let text = '';
    const until = async (part: string) => {
      while (!text.includes(part)) {
        const { done, value } = await reader.read();
        assert.ok(!done, `the stream ended before ${part}: ${text}`);
        text += value;
      }
    };
    await until('event: herald.connected');
    await herald.publish({ topic: 'dealers/STORE2/scores', type: 'other', data: 'filtered out' });
    const id = await herald.publish({ topic: 'dealers/STORE1/scores', type: 'ai-score', data: { avi: 66 } });
    await until(`id: ${id}`);
    assert.ok(!text.includes('filtered out'));
    await until('data: {"avi":66}');
    await reader.cancel();
  });

  test('answers another method with 405 and the problem of /v1/events', async (t) => {
    const herald = createHerald();
    t.after(() => herald.close());
    const response = await eventsHandler(herald)(
      new Request('http://localhost:3000/api/ai-scores/stream', { method: 'POST', body: '{}' }),
    );
    assert.equal(response.status, 405);
    assert.equal(response.headers.get('allow'), 'GET');
  });
});
