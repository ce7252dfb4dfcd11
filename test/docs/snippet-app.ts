import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stripVTControlCharacters } from 'node:util';

/**
 * What test/docs/snippets.test.ts needs to run a page's code as a reader would: the files and
 * commands a Markdown page marks, and processes (servers, clients, curl) that it can wait on and
 * is sure to stop.
 */

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

// ---- Markdown ---------------------------------------------------------------------------------

/**
 * The complete files a page gives: a `<!-- file: <path> -->` comment, then (after any text that
 * is not a code block, such as a bold file name) the first ```ts or ```tsx block.
 */
export function markedFiles(markdown: string): Map<string, string> {
  const files = new Map<string, string>();
  for (const match of markdown.matchAll(
    /^<!-- file: (\S+) -->\n(?:(?!```)[\s\S])*?^```tsx?\n([\s\S]*?)^```$/gm,
  )) {
    const path = match[1] as string;
    if (files.has(path)) throw new Error(`two files marked ${path}`);
    files.set(path, match[2] as string);
  }
  return files;
}

/** The commands of the ```sh block after each `<!-- commands: <name> -->` comment. */
export function markedCommands(markdown: string): Map<string, string[]> {
  const blocks = new Map<string, string[]>();
  for (const match of markdown.matchAll(
    /^<!-- commands: (\S+) -->\n(?:(?!```)[\s\S])*?^```sh\n([\s\S]*?)^```$/gm,
  )) {
    blocks.set(match[1] as string, shellCommands(match[2] as string));
  }
  return blocks;
}

/** A section of a page: from its `## <title>` heading to the next `## ` heading. */
export function section(markdown: string, title: string): string {
  const start = markdown.search(new RegExp(`^## ${literal(title)}\\s*$`, 'm'));
  if (start === -1) throw new Error(`no "## ${title}" section`);
  const rest = markdown.slice(start + 3);
  const end = rest.search(/^## /m);
  return end === -1 ? markdown.slice(start) : markdown.slice(start, start + 3 + end);
}

/** `text` as a regular expression that matches it. */
export const literal = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** The ```sh blocks of a piece of Markdown, each as its commands. */
export function shellBlocks(markdown: string): string[][] {
  return [...markdown.matchAll(/^```sh\n([\s\S]*?)^```$/gm)].map((match) =>
    shellCommands(match[1] as string),
  );
}

/** One command per line; a line ending in `\` goes on on the next one. Comment lines are left out. */
function shellCommands(block: string): string[] {
  return block
    .replace(/\\\n\s*/g, ' ')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
}

// ---- processes --------------------------------------------------------------------------------

/** The environment of a child: npm's variables of the `npm test` that runs this suite left out. */
export function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (
      /^npm_/i.test(name) &&
      !/^npm_config_(cache|registry|userconfig|proxy|https_proxy|noproxy)$/i.test(name)
    )
      continue;
    env[name] = value;
  }
  // node:test's own variables are not for the app.
  delete env.NODE_TEST_CONTEXT;
  // The Node this suite runs on (the node@24 dev dependency) first, as `npm start` has it.
  env.PATH = [join(ROOT, 'node_modules/.bin'), env.PATH ?? ''].join(delimiter);
  env.NO_COLOR = '1';
  return { ...env, ...extra };
}

const running = new Set<Proc>();

/** SIGKILL to every process group still running, and waits for them to end: for `after`. */
export async function stopAll(): Promise<void> {
  await Promise.all([...running].map((proc) => proc.stop()));
}
// Also when this file is interrupted (the runner's watchdog, Ctrl-C): the groups are not its own.
const killAll = () => {
  for (const proc of running) proc.kill();
};
process.once('exit', killAll);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    killAll();
    process.kill(process.pid, signal);
  });
}

/** A command in a process group of its own (so that npm's, sh's or curl's children go with it). */
export class Proc {
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
  readonly label: string;
  /** Everything it printed, stdout and stderr as they came. */
  output = '';
  /** What it printed on stdout alone (curl's progress meter goes to stderr, between the lines). */
  stdout = '';
  stderr = '';
  private waiters: (() => void)[] = [];

  constructor(label: string, command: string, args: readonly string[], cwd: string, env: NodeJS.ProcessEnv) {
    this.label = label;
    this.child = spawn(command, args, { cwd, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    running.add(this);
    for (const stream of [this.child.stdout, this.child.stderr]) {
      stream?.setEncoding('utf8');
      stream?.on('data', (text: string) => {
        const clean = stripVTControlCharacters(text);
        this.output += clean;
        if (stream === this.child.stdout) this.stdout += clean;
        else this.stderr += clean;
        this.wake();
      });
    }
    this.exited = new Promise((resolve) => {
      this.child.once('error', (error) => {
        this.output += `\n(${error.message})`;
      });
      this.child.once('close', (code) => {
        running.delete(this);
        this.wake();
        resolve(code);
      });
    });
  }

  get done(): boolean {
    return !running.has(this);
  }

  /** What it printed, for failure messages. */
  describe(): string {
    const tail = (text: string, size: number) => (text.length > size ? `…${text.slice(-size)}` : text);
    // Of a progress meter (curl's), only its last state.
    const stderr = this.stderr.replace(/[^\n]*\r(?=[^\n]*\r)/g, '');
    return `${this.label}${this.done ? ' (ended)' : ''} printed:\n${tail(this.stdout, 4000) || '(nothing)'}\n${
      this.stderr === '' ? '' : `and on stderr:\n${tail(stderr, 1500)}`
    }`;
  }

  /**
   * Resolves with the first match of `pattern` in what it printed on stdout (or on either, with
   * `from: 'output'`); rejects when the process ends first.
   */
  async waitFor(
    pattern: RegExp,
    what: string,
    timeoutMs = 60_000,
    from: 'stdout' | 'output' = 'stdout',
  ): Promise<RegExpExecArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const match = pattern.exec(this[from]);
      if (match !== null) return match;
      if (this.done) throw new Error(`${this.label} ended before ${what}; ${this.describe()}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no ${what} within ${timeoutMs / 1000} s; ${this.describe()}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 500));
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  kill(): void {
    if (this.child.pid === undefined || this.done) return;
    try {
      process.kill(-this.child.pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }

  async stop(): Promise<void> {
    this.kill();
    await this.exited;
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }
}

/** Runs a shell command to its end (killed after `timeoutMs`): its exit code, its stdout, all it printed. */
export async function sh(
  command: string,
  cwd: string,
  timeoutMs = 60_000,
): Promise<{ code: number | null; stdout: string; output: string }> {
  const proc = new Proc(`\`${command}\``, 'sh', ['-c', command], cwd, childEnv());
  const timer = setTimeout(() => proc.kill(), timeoutMs);
  try {
    const code = await proc.exited;
    return { code, stdout: proc.stdout, output: proc.output };
  } finally {
    clearTimeout(timer);
  }
}

/** A TCP port nobody listens on right now, on either loopback address. */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const server = createServer();
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        const { port } = server.address() as { port: number };
        server.close(() => resolve(port));
      });
    });
    // The servers listen on `::` or on every address of `localhost`: free there too?
    const freeOnV6 = await new Promise<boolean>((resolve) => {
      const server = createServer();
      server.once('error', (error: NodeJS.ErrnoException) => resolve(error.code === 'EADDRNOTAVAIL'));
      server.listen(port, '::1', () => server.close(() => resolve(true)));
    });
    if (freeOnV6) return port;
  }
}
