import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

/**
 * The package as an app gets it: `npm pack` of this checkout (npm test builds dist/ first), the
 * tarball installed into a new app in the system's temp directory (outside the checkout, so
 * nothing resolves from the checkout's node_modules), then every subpath export type-checked
 * under `moduleResolution` `nodenext` and `bundler` with this checkout's TypeScript, and run.
 *
 * The app installs what a user of every subpath has: herald, fastify, react and the types of
 * Node and React. Not redis nor @nats-io/*: they are optional peer dependencies that a
 * memory-broker app never installs.
 */

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const TSC = join(ROOT, 'node_modules/typescript/bin/tsc');
const SUBPATHS = ['herald', 'herald/node', 'herald/fastify', 'herald/web', 'herald/client', 'herald/react'];
/** Packages that `import 'herald'` must not load: they are for `herald serve`, /metrics, Redis, NATS. */
const NOT_ON_IMPORT = [
  'pino',
  'prom-client',
  'redis',
  '@redis/client',
  '@nats-io/transport-node',
  'zod',
  'commander',
];

let work: string;
let app: string;
let packed: { filename: string; files: { path: string }[] };

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** npm's own settings from the environment, without those of the npm that runs this suite. */
function childEnv(): NodeJS.ProcessEnv {
  const keep =
    /^npm_config_(cache|registry|userconfig|globalconfig|proxy|https_proxy|noproxy|strict_ssl|cafile)$/i;
  return Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !/^npm_/i.test(name) || keep.test(name)),
  );
}

/** Runs a command to its end (killed after `timeoutMs`), with its output. */
function run(command: string, args: readonly string[], cwd: string, timeoutMs = 90_000): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
    });
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

async function ok(command: string, args: readonly string[], cwd: string, timeoutMs?: number): Promise<Run> {
  const result = await run(command, args, cwd, timeoutMs);
  assert.equal(
    result.code,
    0,
    `${command} ${args.join(' ')} failed (${result.code}):\n${result.stdout}\n${result.stderr}`,
  );
  return result;
}

/** Runs a module of the app with this Node; it prints one JSON value last. */
async function node(file: string, source: string, args: readonly string[] = []): Promise<unknown> {
  writeFileSync(join(app, file), source);
  const result = await ok(process.execPath, [...args, file], app, 30_000);
  const lines = result.stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1] as string);
}

/** The version this checkout has installed, so the app's install is served from npm's cache. */
function installed(name: string): string {
  return JSON.parse(readFileSync(join(ROOT, 'node_modules', name, 'package.json'), 'utf8')).version;
}

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'herald-package-'));
  app = join(work, 'app');
  mkdirSync(app);
  const pack = await ok('npm', ['pack', '--json', '--pack-destination', work], ROOT);
  packed = (JSON.parse(pack.stdout) as (typeof packed)[])[0] as typeof packed;
  writeFileSync(
    join(app, 'package.json'),
    `${JSON.stringify({ name: 'herald-package-test', private: true, type: 'module' }, null, 2)}\n`,
  );
  await ok(
    'npm',
    [
      'install',
      '--prefer-offline',
      '--no-audit',
      '--no-fund',
      '--no-package-lock',
      join(work, packed.filename),
      `fastify@${installed('fastify')}`,
      `react@${installed('react')}`,
      `@types/node@${installed('@types/node')}`,
      `@types/react@${installed('@types/react')}`,
    ],
    app,
    120_000,
  );
});

after(() => {
  if (work !== undefined) rmSync(work, { recursive: true, force: true });
});

describe('the npm package', () => {
  test('ships dist/, the license, the changelog and the readme: no build stamp, no source maps', () => {
    const files = packed.files.map((file) => file.path);
    for (const file of [
      'package.json',
      'README.md',
      'LICENSE',
      'CHANGELOG.md',
      'dist/index.js',
      'dist/index.d.ts',
    ]) {
      assert.ok(files.includes(file), `${file} is in the tarball`);
    }
    assert.deepEqual(
      files.filter((file) => file.endsWith('.map') || file.includes('bootstrap')),
      [],
      'no source map (their sources are not shipped) and no build stamp',
    );
    assert.deepEqual(files.filter((file) => !file.startsWith('dist/') && !file.includes('/')).sort(), [
      'CHANGELOG.md',
      'LICENSE',
      'README.md',
      'package.json',
    ]);
    const manifest = JSON.parse(readFileSync(join(app, 'node_modules/herald/package.json'), 'utf8'));
    assert.equal(manifest.types, './dist/index.d.ts');
    assert.match(manifest.repository.url, /github\.com/);
    const named = files.filter(
      (file) =>
        file.endsWith('.js') &&
        readFileSync(join(app, 'node_modules/herald', file), 'utf8').includes('sourceMappingURL='),
    );
    assert.deepEqual(named, [], 'no file names a source map');
  });

  test('installs without the Redis and NATS clients or a second SSE parser', () => {
    const manifest = JSON.parse(readFileSync(join(app, 'node_modules/herald/package.json'), 'utf8'));
    for (const name of ['redis', '@nats-io/transport-node', '@nats-io/jetstream', '@nats-io/kv']) {
      assert.equal(manifest.dependencies[name], undefined, `${name} is not a dependency`);
      assert.equal(manifest.peerDependenciesMeta[name]?.optional, true, `${name} is an optional peer`);
      assert.ok(!existsSync(join(app, 'node_modules', name)), `${name} is not installed`);
    }
    assert.equal(manifest.dependencies['eventsource-parser'], undefined);
    assert.ok(!existsSync(join(app, 'node_modules/eventsource-parser')));
    assert.ok(!existsSync(join(app, 'node_modules/@redis')));
  });

  test('every package a bundler follows from dist/ is installed with herald', () => {
    // Next.js bundles herald into the app's server routes. An import a bundler cannot resolve fails
    // the build under Turbopack (webpack swaps in an empty module, which fails at run time), so an
    // optional peer that is not installed must be imported where only Node follows it:
    // import(/* webpackIgnore: true */ /* turbopackIgnore: true */ 'redis').
    const root = join(app, 'node_modules/herald');
    const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
    const dependencies = new Set(Object.keys(manifest.dependencies ?? {}));
    // A subpath's own peer: only its importers reach it, and they have it installed.
    const peerOf: Record<string, string> = {
      'dist/http/fastify.js': 'fastify',
      'dist/client/react.js': 'react',
    };
    const builtins = new Set(builtinModules);
    const wrong: string[] = [];
    for (const file of packed.files.map((entry) => entry.path).filter((path) => path.endsWith('.js'))) {
      const source = readFileSync(join(root, file), 'utf8');
      const followed = [
        ...source.matchAll(/^(?:import|export)\s[^;]*?\bfrom\s*'([^']+)'/gm),
        ...source.matchAll(/^import\s*'([^']+)'/gm),
        ...[...source.matchAll(/\bimport\(\s*((?:\/\*[^*]*\*\/\s*)*)'([^']+)'\s*\)/g)]
          .filter(
            (match) =>
              !/webpackIgnore: true/.test(match[1] as string) ||
              !/turbopackIgnore: true/.test(match[1] as string),
          )
          .map((match) => [match[0], match[2]]),
        ...source.matchAll(/\brequire\(\s*'([^']+)'\s*\)/g),
      ].map((match) => match[1] as string);
      for (const specifier of followed) {
        if (/^(\.|\/|node:)/.test(specifier) || builtins.has(specifier)) continue;
        const parts = specifier.split('/');
        const name = specifier.startsWith('@') ? parts.slice(0, 2).join('/') : (parts[0] as string);
        if (!dependencies.has(name) && peerOf[file] !== name) wrong.push(`${file} imports ${specifier}`);
      }
    }
    assert.deepEqual(wrong, [], 'imports that a bundler follows, of packages an app may not have');
  });

  test('every subpath export type-checks under moduleResolution nodenext and bundler', async () => {
    const manifest = JSON.parse(readFileSync(join(app, 'node_modules/herald/package.json'), 'utf8'));
    assert.deepEqual(
      Object.keys(manifest.exports).filter((key) => key !== './package.json'),
      SUBPATHS.map((name) => name.replace(/^herald/, '.')),
      'the check below imports every subpath the package exports',
    );
    for (const name of SUBPATHS) assert.ok(TYPE_CHECK.includes(`from '${name}';`), `${name} is imported`);
    writeFileSync(join(app, 'check.tsx'), TYPE_CHECK);
    const check = async (resolution: 'nodenext' | 'bundler') => {
      const config = join(app, `tsconfig.${resolution}.json`);
      writeFileSync(
        config,
        JSON.stringify({
          compilerOptions: {
            target: 'es2022',
            module: resolution === 'nodenext' ? 'nodenext' : 'esnext',
            moduleResolution: resolution,
            lib: ['es2023', 'dom'],
            types: ['node'],
            jsx: 'react-jsx',
            strict: true,
            noEmit: true,
            // Once with every declaration file checked, Herald's among them (the slow part: Node's,
            // React's and Fastify's too); the bundler pass relies on the @ts-expect-error probes.
            skipLibCheck: resolution === 'bundler',
          },
          files: ['check.tsx'],
        }),
      );
      const result = await run(process.execPath, [TSC, '-p', config], app, 110_000);
      return result.code === 0 ? '' : `tsc (${resolution}) found errors:\n${result.stdout}${result.stderr}`;
    };
    const errors = await Promise.all([check('nodenext'), check('bundler')]);
    assert.equal(errors.join(''), '');
  });

  test('import "herald" loads neither pino, prom-client, redis, @nats-io nor the CLI\'s packages', async () => {
    writeFileSync(join(app, 'record-packages.mjs'), RECORD_PACKAGES);
    const result = (await node(
      'memory.mjs',
      `import { createHerald } from 'herald';
const herald = createHerald();
const id = await herald.publish({ topic: 'orders/1', data: { n: 1 } });
await herald.close();
console.log(JSON.stringify({ id, loaded: [...globalThis.heraldPackages].sort() }));
`,
      ['--import', './record-packages.mjs'],
    )) as { id: string; loaded: string[] };
    assert.match(result.id, /-1$/);
    const loaded = result.loaded.filter((name) =>
      NOT_ON_IMPORT.some((heavy) => name === heavy || name.startsWith('@nats-io/')),
    );
    assert.deepEqual(
      loaded,
      [],
      `import 'herald' loaded ${loaded.join(', ')} (all: ${result.loaded.join(', ')})`,
    );
  });

  test('a redis:// or nats:// broker without its client names the package to install', async () => {
    const result = (await node(
      'brokers.mjs',
      `import { brokerFor, startBridges, createHerald } from 'herald';
const messages = [];
for (const url of ['redis://127.0.0.1:1', 'nats://127.0.0.1:1']) {
  await brokerFor({ url }).then(() => messages.push('connected'), (error) => messages.push(error.message));
}
const herald = createHerald();
await startBridges(herald, ['redis:orders -> orders/{id}'], { redisUrl: 'redis://127.0.0.1:1' }).then(
  () => messages.push('bridged'),
  (error) => messages.push(error.message),
);
await startBridges(herald, ['nats:orders -> orders/{id}'], { natsUrl: 'nats://127.0.0.1:1' }).then(
  () => messages.push('bridged'),
  (error) => messages.push(error.message),
);
await herald.close();
console.log(JSON.stringify(messages));
`,
    )) as string[];
    assert.equal(result[0], 'the Redis broker needs the redis package: npm install redis');
    assert.equal(
      result[1],
      'the NATS broker needs the packages @nats-io/transport-node, @nats-io/jetstream and @nats-io/kv: ' +
        'npm install @nats-io/transport-node @nats-io/jetstream @nats-io/kv',
    );
    assert.equal(result[2], 'a redis: bridge needs the redis package: npm install redis');
    assert.equal(
      result[3],
      'a nats: bridge needs the @nats-io/transport-node package: npm install @nats-io/transport-node',
    );
  });

  test('herald/node, herald/fastify and herald/web serve a hub, and herald/client in Node receives its events', async () => {
    const result = (await node(
      'serve.mjs',
      `import { once } from 'node:events';
import { createServer } from 'node:http';
import Fastify from 'fastify';
import { createHerald } from 'herald';
import { createClient } from 'herald/client';
import { heraldFastify } from 'herald/fastify';
import { nodeHandler } from 'herald/node';
import { webHandler } from 'herald/web';

const herald = createHerald();
const out = {};

const handler = nodeHandler(herald, { basePath: '/realtime' });
const server = createServer(handler).listen(0, '127.0.0.1');
await once(server, 'listening');
const base = \`http://127.0.0.1:\${server.address().port}/realtime\`;
out.node = (await fetch(\`\${base}/healthz\`)).status;

const client = createClient({ url: base, topics: ['orders/{id}'], store: null });
const received = new Promise((resolve) => client.on('order', (message) => resolve(message.data)));
await new Promise((resolve) => client.onStatus(({ status }) => status === 'open' && resolve()));
await herald.publish({ topic: 'orders/7', type: 'order', data: { id: 7 } });
out.client = await received;
client.close();
handler.closeStreams();
server.close();

const web = webHandler(herald);
out.web = (await web(new Request('http://localhost/healthz'))).status;

const fastify = Fastify();
await fastify.register(heraldFastify, { herald, prefix: '/realtime' });
const address = await fastify.listen({ port: 0, host: '127.0.0.1' });
out.fastify = (await fetch(\`\${address}/realtime/healthz\`)).status;
await fastify.close();

await herald.close();
console.log(JSON.stringify(out));
`,
    )) as Record<string, unknown>;
    assert.deepEqual(result, { node: 200, client: { id: 7 }, web: 200, fastify: 200 });
  });

  test('herald/react imports in Node, with react installed', async () => {
    const result = await node(
      'react.mjs',
      `const react = await import('herald/react');
console.log(JSON.stringify(Object.keys(react).sort()));
`,
    );
    assert.ok(Array.isArray(result));
    for (const name of ['HeraldProvider', 'useHerald', 'useHeraldEvent', 'useLatest', 'useHeraldStatus']) {
      assert.ok((result as string[]).includes(name), `herald/react exports ${name}`);
    }
  });

  test('the herald command runs from the installed package', async () => {
    // The bin link, run by this Node (its `#!/usr/bin/env node` may find an older one on PATH).
    const help = await ok(process.execPath, [join(app, 'node_modules/.bin/herald'), '--help'], app, 30_000);
    assert.match(help.stdout, /serve/);
  });
});

/**
 * A preload that records every bare package specifier resolved, ESM `import` and CommonJS
 * `require` alike (`module.registerHooks` runs in the loading thread and sees both).
 */
const RECORD_PACKAGES = `import { builtinModules, registerHooks } from 'node:module';
const builtins = new Set(builtinModules);
globalThis.heraldPackages = new Set();
registerHooks({
  resolve(specifier, context, next) {
    if (!/^(\\.|\\/|node:|file:|data:)/.test(specifier) && !builtins.has(specifier)) {
      const parts = specifier.split('/');
      globalThis.heraldPackages.add(specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]);
    }
    return next(specifier, context);
  },
});
`;

/**
 * Uses every subpath as an app would. Each `@ts-expect-error` proves that the types it probes
 * are Herald's (a subpath whose declarations did not resolve would be `any`, and the expected
 * error would not come).
 */
const TYPE_CHECK = `import { createServer } from 'node:http';
import Fastify from 'fastify';
import {
  brokerFor,
  createHerald,
  type Herald,
  type HeraldEvent,
  type HeraldOptions,
  MemoryBroker,
  startBridges,
} from 'herald';
import { createClient, createParser, type HeraldClient, type HeraldMessage } from 'herald/client';
import { heraldFastify } from 'herald/fastify';
import { type NodeHandler, nodeHandler } from 'herald/node';
import { HeraldProvider, useLatest } from 'herald/react';
import { eventsHandler, webHandler } from 'herald/web';

const options: HeraldOptions = { broker: new MemoryBroker() };
const herald: Herald = createHerald(options);
const id: Promise<string> = herald.publish({ topic: 'orders/1', data: { n: 1 } });
// @ts-expect-error a publish needs a topic
void herald.publish({ data: 1 });
void brokerFor({ url: 'memory' });
void startBridges(herald, []);
export type Seen = HeraldEvent['topics'];

const handler: NodeHandler = nodeHandler(herald, { basePath: '/realtime' });
createServer(handler).listen(0);
// @ts-expect-error nodeHandler takes a Herald
nodeHandler({});

const fetchHandler: (request: Request) => Promise<Response> = webHandler(herald, { basePath: '/api/herald' });
export const GET: (request: Request) => Promise<Response> = eventsHandler(herald);
// @ts-expect-error webHandler takes a Herald
webHandler('herald');

const fastify = Fastify();
void fastify.register(heraldFastify, { herald, prefix: '/realtime' });
// @ts-expect-error the plugin needs its herald
void fastify.register(heraldFastify, {});

const client: HeraldClient<{ order: { id: number } }> = createClient({ url: '/realtime', topics: ['orders/{id}'] });
client.on('order', (message: HeraldMessage<{ id: number }>) => message.data.id.toFixed());
// @ts-expect-error a client needs its topics
createClient({ url: '/realtime' });
createParser((event) => event.data.length);

export function Tile() {
  const latest = useLatest<{ id: number }>('order');
  return <HeraldProvider options={{ url: '/realtime', topics: ['orders/{id}'] }}>{latest?.id}</HeraldProvider>;
}
// @ts-expect-error useLatest takes an event type
useLatest(1);

export { fetchHandler, id };
`;
