import { type ChildProcess, fork } from 'node:child_process';
import { stopChild, track, waitExit } from './processes.ts';

/** Any message between the orchestrator and a worker: a plain object with a `type`. */
export interface Message {
  readonly type: string;
}

/**
 * A forked load-generator process with typed messaging both ways. Messages of a type that has a
 * listener go to it; the others wait in a queue for `next(type)`.
 */
export class WorkerHandle<In extends Message, Out extends Message> {
  readonly name: string;
  readonly child: ChildProcess;
  private readonly queues = new Map<string, Out[]>();
  private readonly waiters = new Map<string, ((message: Out) => void)[]>();
  private readonly listeners = new Map<string, (message: Out) => void>();
  private exitReason: string | undefined;
  private readonly failures = new Set<(error: Error) => void>();

  constructor(module: URL, name: string) {
    this.name = name;
    // execArgv carries over any flag the parent runs with; Node 24 strips types by default.
    this.child = track(
      fork(module, [], { execArgv: process.execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }),
    );
    this.child.on('message', (message: Out) => this.receive(message));
    this.child.once('exit', (code, signal) => {
      this.exitReason = `${this.name} exited (${signal ?? `code ${code}`})`;
      const error = new Error(this.exitReason);
      for (const fail of this.failures) fail(error);
      this.failures.clear();
    });
  }

  get running(): boolean {
    return this.exitReason === undefined && this.child.connected;
  }

  send(message: In): void {
    if (this.exitReason !== undefined) throw new Error(this.exitReason);
    this.child.send(message);
  }

  on<T extends Out['type']>(type: T, listener: (message: Extract<Out, { type: T }>) => void): void {
    this.listeners.set(type, listener as (message: Out) => void);
  }

  /** The next message of `type`; rejects after `timeoutMs` or if the worker exits first. */
  next<T extends Out['type']>(type: T, timeoutMs: number): Promise<Extract<Out, { type: T }>> {
    const queued = this.queues.get(type)?.shift();
    if (queued !== undefined) return Promise.resolve(queued as Extract<Out, { type: T }>);
    if (this.exitReason !== undefined) return Promise.reject(new Error(this.exitReason));
    return new Promise((resolve, reject) => {
      const fail = (error: Error) => {
        clearTimeout(timer);
        reject(error);
      };
      const timer = setTimeout(() => {
        this.failures.delete(fail);
        const list = this.waiters.get(type);
        list?.splice(list.indexOf(deliver), 1);
        reject(new Error(`${this.name}: no ${type} message within ${Math.round(timeoutMs / 1000)} s`));
      }, timeoutMs);
      const deliver = (message: Out) => {
        clearTimeout(timer);
        this.failures.delete(fail);
        resolve(message as Extract<Out, { type: T }>);
      };
      this.failures.add(fail);
      const list = this.waiters.get(type) ?? [];
      list.push(deliver);
      this.waiters.set(type, list);
    });
  }

  /** Asks the worker to quit (with the `quit` message), then makes sure it has. */
  async stop(quit: In): Promise<void> {
    if (this.exitReason === undefined && this.child.connected) {
      try {
        this.child.send(quit);
      } catch {
        // The channel closed meanwhile: the signals below still apply.
      }
      if (await waitExit(this.child, 3_000)) return;
    }
    await stopChild(this.child, 2_000);
  }

  private receive(message: Out): void {
    const listener = this.listeners.get(message.type);
    if (listener !== undefined) {
      listener(message);
      return;
    }
    const waiter = this.waiters.get(message.type)?.shift();
    if (waiter !== undefined) {
      waiter(message);
      return;
    }
    const queue = this.queues.get(message.type) ?? [];
    queue.push(message);
    this.queues.set(message.type, queue);
  }
}
