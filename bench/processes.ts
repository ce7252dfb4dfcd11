import type { ChildProcess } from 'node:child_process';

/**
 * Every child process the benchmark starts is registered here, so that none outlives it: on a
 * normal end, an error, Ctrl-C or SIGTERM, whatever is still running is killed by its pid.
 */
const children = new Set<ChildProcess>();

export function track<T extends ChildProcess>(child: T): T {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

const running = (child: ChildProcess) => child.exitCode === null && child.signalCode === null;

/** Kills every registered child still running. Synchronous, so it also works in an `exit` handler. */
export function killAll(signal: NodeJS.Signals = 'SIGKILL'): void {
  for (const child of children) {
    if (running(child)) child.kill(signal);
  }
}

/** Work that must still happen after the children are gone (a broker's log to remove). */
const cleanups = new Set<() => Promise<void>>();
/** How long Ctrl-C waits for the cleanups before it exits anyway. */
const CLEANUP_GRACE_MS = 5_000;

/**
 * Registers `cleanup` to run if the benchmark is interrupted (SIGINT/SIGTERM) while it is
 * registered; the caller runs it itself on a normal end. Returns what unregisters it.
 */
export function onInterrupt(cleanup: () => Promise<void>): () => void {
  cleanups.add(cleanup);
  return () => cleanups.delete(cleanup);
}

let installed = false;

/**
 * Kills the children on process exit and on SIGINT/SIGTERM; on a signal, also runs the registered
 * cleanups (for at most a few seconds; a second signal cuts them short), then exits with 128 + signal.
 */
export function installCleanup(): void {
  if (installed) return;
  installed = true;
  process.on('exit', () => killAll());
  let stopping = false;
  for (const [signal, code] of [
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const) {
    process.on(signal, () => {
      if (stopping) process.exit(code);
      stopping = true;
      process.stderr.write(`\nbench: ${signal}, stopping ${children.size} child process(es)\n`);
      killAll();
      const pending = [...cleanups].map((cleanup) => cleanup().catch(() => {}));
      const grace = new Promise((resolve) => setTimeout(resolve, CLEANUP_GRACE_MS));
      void Promise.race([Promise.all(pending), grace]).then(() => process.exit(code));
    });
  }
}

/** Resolves when the child has exited (at once if it already has). */
export function exited(child: ChildProcess): Promise<void> {
  if (!running(child)) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/** Waits up to `ms` for the child to exit; true if it has. */
export async function waitExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (!running(child)) return true;
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  const outcome = await Promise.race([exited(child).then(() => true), late]);
  clearTimeout(timer);
  return outcome;
}

/** SIGTERM, then SIGKILL if it is still there after `graceMs`; resolves once it is gone. */
export async function stopChild(child: ChildProcess, graceMs = 5_000): Promise<void> {
  if (!running(child)) return;
  child.kill('SIGTERM');
  if (await waitExit(child, graceMs)) return;
  child.kill('SIGKILL');
  await exited(child);
}
