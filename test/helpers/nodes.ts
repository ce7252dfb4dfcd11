import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const CLI = fileURLToPath(new URL('../../src/server/cli.ts', import.meta.url));

/**
 * How long a hub process may take to print its URL. Generous: it compiles its TypeScript as it
 * loads, and on a machine busy with other work that takes many times what it takes on a quiet one.
 */
const START_TIMEOUT_MS = 60_000;

export interface HubProcess {
  readonly url: string;
  readonly child: ChildProcess;
  /** Everything it printed. */
  output(): string;
  /** SIGKILL: no goodbye to anyone. */
  kill(): Promise<void>;
  /** SIGTERM, and wait for the exit (SIGKILL if it has not gone after 30 s: a stop never hangs). */
  stop(): Promise<number | null>;
}

/** Every hub process started here and still running. */
const running = new Set<ChildProcess>();

/**
 * Kills every hub process this test file started and has not stopped: for an `after` that must
 * clean up even what a failed test never got to hand over (a `spawnHub` among several in a
 * `Promise.all` that rejected).
 */
export async function killAllHubs(): Promise<void> {
  await Promise.all(
    [...running].map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          child.once('exit', () => resolve());
          child.kill('SIGKILL');
        }),
    ),
  );
}

// However the test process ends (a failure, a timeout, the runner's force-exit), no hub outlives it.
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** `herald serve` as its own process on a free loopback port. */
export async function spawnHub(
  args: readonly string[],
  env: Record<string, string> = {},
): Promise<HubProcess> {
  const child = spawn(process.execPath, [CLI, 'serve', '--port', '0', ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  let output = '';
  const collect = (chunk: Buffer) => {
    output += chunk;
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      running.delete(child);
      resolve(code);
    }),
  );
  const kill = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  };
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`no URL printed within ${START_TIMEOUT_MS / 1000} s:\n${output}`)),
      START_TIMEOUT_MS,
    );
    const check = () => {
      // https:// with --tls-cert and --tls-key.
      const match = /listening on (https?:\/\/\S+)/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve(match[1] as string);
      }
    };
    child.stdout?.on('data', check);
    exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`exited before listening:\n${output}`));
    });
  }).catch(async (error: unknown) => {
    // Never left running by a start that failed: nobody else holds it to stop it.
    await kill();
    throw error;
  });
  return {
    url,
    child,
    output: () => output,
    kill,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
        const code = await exited;
        clearTimeout(timer);
        return code;
      }
      return exited;
    },
  };
}
