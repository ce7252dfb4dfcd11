import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';

/**
 * The real `herald` CLI as a process, for the CLI tests: `runCli` waits for it to exit;
 * `killAllCli` (in each file's `after`) kills whatever is still running, even after a failure.
 */

export const CLI = fileURLToPath(new URL('../../src/server/cli.ts', import.meta.url));

export interface CliRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

const running = new Set<ChildProcess>();

process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** Variables the CLI reads, removed from what the tests inherit: each test says what it sets. */
const READ_BY_CLI = /^(HERALD_(?!TEST_(?!ONLY))|MERCURE_|PORT$|HOST$)/;

export function cliEnv(env: Record<string, string>): Record<string, string> {
  const base: Record<string, string> = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (value !== undefined && !READ_BY_CLI.test(name)) base[name] = value;
  }
  return { ...base, ...env };
}

/**
 * `node src/server/cli.ts …args`, resolved when it exits. A run that has not ended after
 * `limitMs` (generous: a busy machine compiles the TypeScript slowly) is killed and reported.
 */
export function runCli(
  args: readonly string[],
  env: Record<string, string> = {},
  options: { limitMs?: number; command?: readonly string[] } = {},
): Promise<CliRun> {
  const [file, ...prefix] = options.command ?? [process.execPath, CLI];
  return new Promise((resolve, reject) => {
    const child = spawn(file as string, [...prefix, ...args], {
      env: cliEnv(env),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    running.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
    });
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(
        new Error(`herald ${args.join(' ')} still running after ${(options.limitMs ?? 90_000) / 1000} s`),
      );
    }, options.limitMs ?? 90_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      running.delete(child);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Kills every CLI process this file started that is still running. */
export async function killAllCli(): Promise<void> {
  await Promise.all(
    [...running].map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          child.once('close', () => resolve());
          child.kill('SIGKILL');
        }),
    ),
  );
}

/** A loopback port nothing listens on (it was free a moment ago). */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}
