import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  childEnv,
  freePort,
  literal,
  markedCommands,
  markedFiles,
  Proc,
  ROOT,
  section,
  sh,
  shellBlocks,
  stopAll,
} from './snippet-app.ts';

/**
 * The code a newcomer pastes, run as pasted: every complete file of docs/embedding.md (a server
 * for node:http, node:http2, Express, Fastify and Hono, and a `herald/client` script) and of the
 * README's Example (an Express server and its `herald/client` script), each marked
 * `<!-- file: <path> -->`, is written into an app in test-artifacts/ (git-ignored) with `herald`
 * installed from this checkout's build (npm test builds it first; the frameworks resolve from the
 * checkout's node_modules, as from the app's own). Each server runs with Node (type stripping) on
 * a free port; the page's own client and the documented `curl -N` receive what the documented
 * commands publish, in-process through the app's own route and over Herald's HTTP API. Then the
 * README's Quickstart: `npm start`, and its two curl commands. Those two pages are the ones whose
 * blocks claim to run (docs/embedding-nextjs.md's files are test/frameworks/nextjs.test.ts's): a
 * block marked on any other page fails here until this file runs it.
 */

const DOC = join(ROOT, 'docs/embedding.md');
const README = join(ROOT, 'README.md');
const APP = join(ROOT, 'test-artifacts', `snippets-${process.pid}`);
const TSC = join(ROOT, 'node_modules/typescript/bin/tsc');

const DOC_FILES = [
  'node-http/server.ts',
  'node-http2/server.ts',
  'express/server.ts',
  'fastify/server.ts',
  'hono/server.ts',
  'client.ts',
];
/** The README's Example gives a server and a client; they go to readme/ in the app. */
const README_FILES = ['server.ts', 'client.ts'];
/** The pages with marked files and commands, each run by this file. */
const RUN_HERE = ['README.md', 'docs/embedding.md'];
/** Where the snippets' servers listen, and the client's default: replaced by a free port. */
const DOC_ORIGIN = 'localhost:3000';
/** Where the Quickstart's hub listens: replaced by the one `npm start` reports. */
const QUICKSTART_ORIGIN = 'http://127.0.0.1:8080';

/** Each wait has its own generous bound (60 s, 90 s for npm start): a test may add a few of them. */
const SLOW = { timeout: 300_000 };

const read = (path: string) => readFileSync(path, 'utf8');

/** The data a documented publish command sends: an event's `data`, or the score the app's route turns into it. */
function publishedData(command: string): string {
  const body = /-d '([^']*)'/.exec(command)?.[1];
  assert.ok(body !== undefined, `no -d '…' body in: ${command}`);
  const parsed = JSON.parse(body) as Record<string, unknown>;
  if ('topic' in parsed) return JSON.stringify(parsed.data);
  const { vin, avi, ati, cis } = parsed;
  return JSON.stringify({ vin, avi, ati, cis });
}

interface Check {
  /** The documented `curl -N` command. */
  readonly stream: string;
  /** The documented publish commands. */
  readonly publishes: readonly string[];
  readonly scheme?: 'http' | 'https';
  /** For client.ts, besides HERALD_URL. */
  readonly clientEnv?: Record<string, string>;
  /** The client script, in the app: the page's own (default: docs/embedding.md's client.ts). */
  readonly client?: string;
}

/**
 * Runs `<dir>/server.ts` on a free port (another one if that port was taken in between), and waits
 * for the line it prints once it listens.
 */
async function startServer(dir: string, scheme: string): Promise<{ server: Proc; port: number }> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const server = new Proc(
      `${dir}/server.ts`,
      process.execPath,
      ['server.ts'],
      join(APP, dir),
      childEnv({ PORT: String(port) }),
    );
    try {
      await server.waitFor(
        new RegExp(`listening on ${scheme}://localhost:${port}\\b`),
        'its "listening on" line',
      );
      return { server, port };
    } catch (error) {
      await server.stop();
      if (attempt < 3 && /EADDRINUSE/.test(server.output)) continue;
      throw error;
    }
  }
}

/** The server in `dir`, the documented client and `curl -N`, then each documented publish. */
async function runsAsDocumented(dir: string, check: Check): Promise<void> {
  const scheme = check.scheme ?? 'http';
  const { server, port } = await startServer(dir, scheme);
  const cwd = join(APP, dir);
  const local = (command: string) => {
    assert.ok(command.includes(DOC_ORIGIN), `the command does not go to ${DOC_ORIGIN}: ${command}`);
    return command.replaceAll(DOC_ORIGIN, `localhost:${port}`);
  };
  const clientScript = check.client ?? 'client.ts';
  const client = new Proc(
    clientScript,
    process.execPath,
    [join(APP, clientScript)],
    cwd,
    childEnv({ HERALD_URL: `${scheme}://localhost:${port}/realtime`, ...check.clientEnv }),
  );
  const stream = new Proc(check.stream, 'sh', ['-c', local(check.stream)], cwd, childEnv());
  try {
    await client.waitFor(/^\[open\]$/m, 'client.ts to print [open]');
    await stream.waitFor(/^event: herald\.connected$/m, 'herald.connected on the curl -N stream');

    for (const command of check.publishes) {
      const { code, stdout, output } = await sh(local(command), cwd);
      assert.equal(code, 0, `${command}\nprinted:\n${output}\n${server.describe()}`);
      const id = /\{"id":\s*"([^"]+)"\}/.exec(stdout)?.[1];
      assert.ok(id !== undefined, `${command}\nanswered no {"id"}:\n${output}\n${server.describe()}`);
      const data = publishedData(command);
      // The client prints `<id> <data>`; the stream has the event as SSE.
      await client.waitFor(
        new RegExp(`^${literal(id)} ${literal(data)}$`, 'm'),
        `event ${id} on ${clientScript}`,
      );
      await stream.waitFor(
        new RegExp(`^id: ${literal(id)}\nevent: ai-score\ndata: ${literal(data)}$`, 'm'),
        `event ${id} on the curl -N stream`,
      );
    }

    if (scheme === 'https') {
      // curl spoke HTTP/2, and the dashboard answers this machine (no auth: loopback only).
      const { stdout, output } = await sh(
        `curl -sS --cacert cert.pem -o /dev/null -w '%{http_version} %{http_code}' https://localhost:${port}/realtime/dashboard`,
        cwd,
      );
      assert.equal(stdout.trim(), '2 200', output);
    } else {
      // Without auth, the dashboard answers this machine.
      const dashboard = await fetch(`http://localhost:${port}/realtime/dashboard`);
      const page = await dashboard.text();
      assert.equal(dashboard.status, 200, page);
      assert.match(page, /<title>Herald dashboard<\/title>/);
    }
    // Nothing went to the server's output but its own line and the one open-mode warning.
    assert.doesNotMatch(server.output, /Error\b|ERR_|Unhandled/, server.describe());
  } finally {
    await Promise.all([client.stop(), stream.stop(), server.stop()]);
  }
}

describe('the documented code runs as pasted: docs/embedding.md, the README Example and Quickstart', () => {
  let docFiles: Map<string, string>;
  let docCommands: Map<string, string[]>;
  let readmeFiles: Map<string, string>;
  let readmeCommands: Map<string, string[]>;

  before(async () => {
    assert.ok(
      existsSync(join(ROOT, 'dist/index.js')),
      'herald is not built: run `npm run build` (npm test does it first)',
    );
    // The pages' commands are curl's (and openssl's, for the certificate): say so, once.
    for (const tool of ['curl', 'openssl']) {
      const { code } = await sh(`command -v ${tool}`, ROOT);
      assert.equal(code, 0, `${tool} is not installed: the documented commands this file runs need it`);
    }
    const doc = read(DOC);
    docFiles = markedFiles(doc);
    docCommands = markedCommands(doc);
    const example = section(read(README), 'Example');
    readmeFiles = markedFiles(example);
    readmeCommands = markedCommands(example);

    rmSync(APP, { recursive: true, force: true });
    const files: [string, string][] = [
      ['package.json', `${JSON.stringify({ name: 'snippets', private: true, type: 'module' }, null, 2)}\n`],
      // What a TypeScript app on Node would have; strict, and only syntax Node can strip.
      [
        'tsconfig.json',
        `${JSON.stringify(
          {
            compilerOptions: {
              target: 'es2023',
              module: 'nodenext',
              moduleResolution: 'nodenext',
              strict: true,
              noEmit: true,
              skipLibCheck: true,
              verbatimModuleSyntax: true,
              erasableSyntaxOnly: true,
              types: ['node'],
            },
            include: ['**/*.ts'],
            exclude: ['node_modules'],
          },
          null,
          2,
        )}\n`,
      ],
      ...docFiles,
      ...[...readmeFiles].map(([path, text]): [string, string] => [`readme/${path}`, text]),
    ];
    for (const [path, text] of files) {
      mkdirSync(dirname(join(APP, path)), { recursive: true });
      writeFileSync(join(APP, path), text);
    }
    // `npm install herald` from this checkout: what the package ships (`files`: dist).
    const herald = join(APP, 'node_modules/herald');
    cpSync(join(ROOT, 'dist'), join(herald, 'dist'), { recursive: true });
    cpSync(join(ROOT, 'package.json'), join(herald, 'package.json'));
  });

  after(async () => {
    await stopAll();
    rmSync(APP, { recursive: true, force: true });
  });

  test('docs/embedding.md gives each file and command, the README its Example', () => {
    assert.deepEqual([...docFiles.keys()].sort(), [...DOC_FILES].sort());
    for (const name of ['publish-in-process', 'publish-over-http', 'stream', 'http2-certificate'])
      assert.equal(docCommands.get(name)?.length, 1, `docs/embedding.md: <!-- commands: ${name} -->`);
    assert.equal(docCommands.get('http2-try')?.length, 2, 'docs/embedding.md: <!-- commands: http2-try -->');
    assert.deepEqual(
      [...readmeFiles.keys()].sort(),
      [...README_FILES].sort(),
      'README Example: <!-- file: server.ts --> and <!-- file: client.ts -->',
    );
    assert.ok(readmeCommands.has('try'), 'README Example: <!-- commands: try -->');
    assert.match(
      readmeFiles.get('client.ts') ?? '',
      /from 'herald\/client'/,
      'the README client receives with herald/client',
    );
    // Every server answers where the client and the commands expect it, and publishes in-process.
    const servers = new Map([
      ...docFiles,
      ...[...readmeFiles].map(([path, text]) => [`readme/${path}`, text] as const),
    ]);
    for (const [path, text] of servers) {
      if (!path.endsWith('server.ts')) continue;
      assert.match(text, /process\.env\.PORT \?\? 3000/, `${path} listens on PORT`);
      assert.match(text, /await herald\.publish\(/, `${path} publishes in-process`);
      assert.match(text, /['"]\/realtime/, `${path} mounts Herald under /realtime`);
    }
  });

  test('every file type-checks as an app has it (tsc, strict, nodenext, erasable syntax only)', async () => {
    const { code, output } = await sh(`"${process.execPath}" "${TSC}" -p tsconfig.json`, APP, 120_000);
    assert.equal(code, 0, `tsc:\n${output}`);
  });

  for (const dir of ['node-http', 'express', 'fastify', 'hono']) {
    test(
      `docs/embedding.md ${dir}/server.ts: client.ts and curl -N receive what the documented commands publish`,
      SLOW,
      async () => {
        await runsAsDocumented(dir, {
          stream: docCommands.get('stream')?.[0] ?? '',
          publishes: [
            docCommands.get('publish-in-process')?.[0] ?? '',
            docCommands.get('publish-over-http')?.[0] ?? '',
          ],
        });
      },
    );
  }

  test(
    'docs/embedding.md node-http2/server.ts: the same over HTTPS and HTTP/2, with the documented certificate',
    SLOW,
    async () => {
      const dir = join(APP, 'node-http2');
      for (const command of docCommands.get('http2-certificate') ?? []) {
        const { code, output } = await sh(command, dir);
        assert.equal(code, 0, `${command}\n${output}`);
      }
      const commands = docCommands.get('http2-try') ?? [];
      await runsAsDocumented('node-http2', {
        scheme: 'https',
        stream: commands.find((command) => / -N /.test(command)) ?? '',
        publishes: commands.filter((command) => /^curl -X POST /.test(command)),
        clientEnv: { NODE_EXTRA_CA_CERTS: join(dir, 'cert.pem') },
      });
    },
  );

  test(
    'README Example: its client.ts and curl -N receive what its curl command publishes through server.ts',
    SLOW,
    async () => {
      const commands = readmeCommands.get('try') ?? [];
      const [stream, ...rest] = [
        ...commands.filter((command) => / -N /.test(command)),
        ...commands.filter((command) => /^curl -X POST /.test(command)),
      ];
      assert.ok(stream !== undefined && rest.length > 0, `README Example's commands: ${commands.join('\n')}`);
      await runsAsDocumented('readme', { stream, publishes: rest, client: 'readme/client.ts' });
    },
  );

  test('no other page of the README or docs/ marks files or commands that nothing runs', () => {
    const pages = [
      'README.md',
      ...readdirSync(join(ROOT, 'docs'))
        .filter((name) => name.endsWith('.md'))
        .map((name) => `docs/${name}`),
    ];
    const marked = pages.filter((page) => /^<!-- (file|commands): /m.test(read(join(ROOT, page))));
    assert.deepEqual(
      marked.sort(),
      [...RUN_HERE].sort(),
      'pages with <!-- file: --> or <!-- commands: --> blocks',
    );
  });

  test(
    'README Quickstart: npm start, then its two curl commands stream what they publish',
    SLOW,
    async () => {
      const blocks = shellBlocks(section(read(README), 'Quickstart'));
      assert.ok(
        blocks[0]?.some((command) => command.startsWith('npm start')),
        `the Quickstart's first block starts the hub with npm start: ${blocks[0]?.join('\n')}`,
      );
      const commands = blocks[1] ?? [];
      const streamCommand = commands.find((command) => / -N /.test(command));
      const publish = commands.find((command) => /^curl -X POST /.test(command));
      assert.ok(
        streamCommand !== undefined && publish !== undefined,
        `Quickstart commands: ${commands.join('\n')}`,
      );

      // `npm start` as the Quickstart has it, on a free port (HERALD_PORT=0) instead of 8080. Its
      // prestart step (install and build when needed) is what `npm test` itself began with: here it
      // is left out (--ignore-scripts), so that it cannot rebuild dist/ under the files running beside.
      // The block's other command, `npm test`, is the run this file is part of.
      const hub = new Proc(
        'npm start',
        'npm',
        ['start', '--ignore-scripts'],
        ROOT,
        childEnv({ HERALD_PORT: '0' }),
      );
      try {
        const listening = await hub.waitFor(
          /listening on (http:\/\/[^\s"]+)/,
          'the URL from npm start',
          90_000,
          'output',
        );
        const url = listening[1] as string;
        const local = (command: string) => {
          assert.ok(command.includes(QUICKSTART_ORIGIN), `not to ${QUICKSTART_ORIGIN}: ${command}`);
          return command.replaceAll(QUICKSTART_ORIGIN, url);
        };
        const stream = new Proc(streamCommand, 'sh', ['-c', local(streamCommand)], ROOT, childEnv());
        try {
          await stream.waitFor(/^event: herald\.connected$/m, 'herald.connected on the curl -N stream');
          const { code, stdout, output } = await sh(local(publish), ROOT);
          assert.equal(code, 0, output);
          const id = /\{"id":\s*"([^"]+)"\}/.exec(stdout)?.[1];
          assert.ok(id !== undefined, `${publish}\nanswered no {"id"}:\n${output}\n${hub.describe()}`);
          await stream.waitFor(
            new RegExp(
              `^id: ${literal(id)}\nevent: ai-score\ndata: ${literal(publishedData(publish))}$`,
              'm',
            ),
            `event ${id} on the curl -N stream`,
          );
        } finally {
          await stream.stop();
        }
      } finally {
        await hub.stop();
      }
    },
  );
});
