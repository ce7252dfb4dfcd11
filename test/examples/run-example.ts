import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export interface ExampleProcess {
  readonly url: string;
  /** Everything it printed. */
  output(): string;
  /** SIGTERM to the whole process group (npm, its shell, the server), SIGKILL after 5 s. */
  stop(): Promise<void>;
}

/**
 * Runs an example the way its README says, `npm run example:<name>` (which builds first), in a
 * process group of its own so that stopping it leaves no server behind npm's back.
 */
export async function runExample(name: string, env: Record<string, string>): Promise<ExampleProcess> {
  const child: ChildProcess = spawn('npm', ['run', '--silent', `example:${name}`], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let output = '';
  const collect = (chunk: Buffer) => {
    output += chunk;
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const signal = (name: NodeJS.Signals) => {
    try {
      process.kill(-(child.pid as number), name);
    } catch {
      // Already gone.
    }
  };
  // Its own process group is out of reach of whatever kills this one's (a test runner's
  // watchdog): however this process ends, the example ends with it.
  const orphaned = () => signal('SIGKILL');
  process.once('exit', orphaned);
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      signal('SIGKILL');
      reject(new Error(`example:${name} printed no URL within 90 s:\n${output}`));
    }, 90_000); // npm, the build check and a TypeScript start: slow on a busy machine
    child.stdout?.on('data', () => {
      const match = /listening on (http:\/\/\S+)/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve(match[1] as string);
      }
    });
    exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`example:${name} exited before listening:\n${output}`));
    });
  });
  return {
    url,
    output: () => output,
    async stop() {
      signal('SIGTERM');
      const timer = setTimeout(() => signal('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
