import { type ChildProcess, spawn } from 'node:child_process';
import { stopChild, track } from './processes.ts';

export interface ServerProcessOptions {
  readonly command: string;
  readonly args: readonly string[];
  readonly cwd?: string;
  readonly env?: NodeJS.ProcessEnv;
  /** Matched against each line of stdout and stderr; group 1 is the URL the server listens on. */
  readonly ready: RegExp;
  readonly timeoutMs?: number;
  /** Prefix of the server's own output when it is echoed. */
  readonly name: string;
}

export interface ServerProcess {
  readonly child: ChildProcess;
  readonly url: URL;
  /** The last lines the server wrote, for error messages. */
  output(): string;
  /** Why it is no longer running, or undefined while it is. */
  exitReason(): string | undefined;
  stop(): Promise<void>;
}

const KEEP_LINES = 40;

/**
 * Starts a server as a fresh child process and resolves once it prints the line that says where
 * it listens. Rejects, with what it printed, if it exits or stays silent past the timeout.
 */
export function startServerProcess(options: ServerProcessOptions): Promise<ServerProcess> {
  const child = track(
    spawn(options.command, options.args, {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
  const lines: string[] = [];
  let exitReason: string | undefined;
  const output = () => lines.join('\n');
  return new Promise<ServerProcess>((resolve, reject) => {
    let started = false;
    const timer = setTimeout(() => {
      fail(`${options.name} did not report listening within ${(options.timeoutMs ?? 15_000) / 1000} s`);
    }, options.timeoutMs ?? 15_000);
    const fail = (reason: string) => {
      if (started) return;
      started = true;
      clearTimeout(timer);
      void stopChild(child, 1_000);
      reject(new Error(`${reason}; its output:\n${output() || '(none)'}`));
    };
    const onLine = (line: string) => {
      lines.push(line);
      if (lines.length > KEEP_LINES) lines.shift();
      if (started) return;
      const match = options.ready.exec(line);
      if (match?.[1] === undefined) return;
      started = true;
      clearTimeout(timer);
      resolve({
        child,
        url: new URL(match[1]),
        output,
        exitReason: () => exitReason,
        stop: () => stopChild(child, 5_000),
      });
    };
    for (const stream of [child.stdout, child.stderr]) {
      let partial = '';
      stream.setEncoding('utf8');
      stream.on('data', (text: string) => {
        const parts = (partial + text).split('\n');
        partial = parts.pop() ?? '';
        for (const line of parts) onLine(line);
      });
    }
    child.once('error', (error) => fail(`${options.name} could not start: ${error.message}`));
    child.once('exit', (code, signal) => {
      exitReason = `${options.name} exited (${signal ?? `code ${code}`})`;
      fail(exitReason);
    });
  });
}
