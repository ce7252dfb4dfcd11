/**
 * Nchan (nginx's pub/sub module, C) as a benchmark peer: nginx in the foreground on a generated
 * config, its master and every worker counted as the server, installed from Debian's packages
 * first when missing.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { onInterrupt, stopChild, track } from '../processes.ts';
import { NotRun } from '../scenario.ts';
import type { RunningTarget, Target, TargetOptions } from '../targets.ts';
import { nchanConfig } from './nchan-config.ts';
import { nchanInstall } from './nchan-install.ts';

const START_TIMEOUT_MS = 15_000;
/** Nchan's own default ping is off; the benchmark's peers all send one, so it does too. */
const DEFAULT_HEARTBEAT_MS = 15_000;
/** Enough for S5's replay of 1 000 events back, with room. */
const DEFAULT_HISTORY = 2_000;
const MAX_WORKERS = 16;

/** Every nginx worker the benchmark started, killed by pid if the benchmark dies first. */
const liveWorkers = new Set<number>();
process.on('exit', () => {
  for (const pid of liveWorkers) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
});

const log = (message: string) => process.stderr.write(`[bench nchan] ${message}\n`);

/** A port free right now on 127.0.0.1: nginx cannot report the one it picked, so it is given one. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      probe.close(() => {
        if (address === null || typeof address === 'string') reject(new Error('no TCP port'));
        else resolve(address.port);
      });
    });
  });
}

/** The hard limit on open files, which is what nginx may raise its workers' limit to. */
function hardFileLimit(): number {
  try {
    const text = execFileSync('sh', ['-c', 'ulimit -Hn'], { encoding: 'utf8' }).trim();
    return text === 'unlimited' ? 1_048_576 : Number(text) || 20_000;
  } catch {
    return 20_000;
  }
}

/** The pids whose parent is `parent`, from /proc. */
function childrenOf(parent: number): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === parent) pids.push(Number(entry));
    } catch {
      // It exited while being read.
    }
  }
  return pids;
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function tail(file: string, lines = 20): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

export const nchan: Target = {
  name: 'nchan',
  description:
    'Nchan 1.3 (nginx 1.22 module, C; Debian libnginx-mod-nchan), eventsource subscribers, HTTP publisher, memory store',
  async start(options: TargetOptions): Promise<RunningTarget> {
    if ((options.broker ?? 'memory') !== 'memory' || (options.nodes ?? 1) !== 1) {
      throw new NotRun('nchan runs as one nginx on its own memory store here: no broker, no nodes');
    }
    const workers = options.workers ?? 1;
    if (!Number.isInteger(workers) || workers < 1 || workers > MAX_WORKERS) {
      throw new Error(`nchan takes 1 to ${MAX_WORKERS} workers; got ${workers}`);
    }
    const install = nchanInstall(log);
    const dir = mkdtempSync(path.join(tmpdir(), 'bench-nchan-'));
    const removeDir = async () => rmSync(dir, { recursive: true, force: true });
    const forgetRemoveDir = onInterrupt(removeDir);
    for (const sub of ['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) mkdirSync(path.join(dir, sub));
    const port = await freePort();
    const conf = path.join(dir, 'nginx.conf');
    const errorLog = path.join(dir, 'error.log');
    writeFileSync(
      conf,
      nchanConfig({
        dir,
        module: install.module,
        port,
        workers,
        maxFiles: hardFileLimit(),
        heartbeatMs: options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS,
        historySize: options.historySize ?? DEFAULT_HISTORY,
      }),
    );

    const output: string[] = [];
    let exitReason: string | undefined;
    const child: ChildProcess = track(
      spawn(install.nginx, ['-p', `${dir}/`, '-c', conf, '-e', errorLog], {
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
    );
    for (const stream of [child.stdout, child.stderr]) {
      stream?.setEncoding('utf8');
      stream?.on('data', (text: string) => {
        output.push(text);
        if (output.length > 40) output.shift();
      });
    }
    child.once('exit', (code, signal) => {
      exitReason = `nginx exited (${signal ?? `code ${code}`})`;
    });
    const master = child.pid;
    let workerPids: number[] = [];
    const stop = async () => {
      await stopChild(child, 5_000);
      // Workers finish on the master's word; any left behind (master killed) go by pid.
      for (const pid of workerPids) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // Gone, as expected.
        }
        liveWorkers.delete(pid);
      }
      await removeDir();
      forgetRemoveDir();
    };
    const lastOutput = () =>
      [output.join('').trim(), tail(errorLog)].filter((text) => text !== '').join('\n');

    try {
      if (master === undefined) throw new Error(`could not start ${install.nginx}`);
      const deadline = Date.now() + START_TIMEOUT_MS;
      for (;;) {
        if (exitReason !== undefined) throw new Error(`${exitReason} at start; its output:\n${lastOutput()}`);
        workerPids = childrenOf(master);
        for (const pid of workerPids) liveWorkers.add(pid);
        if (workerPids.length >= workers && (await canConnect(port))) break;
        if (Date.now() > deadline) {
          throw new Error(
            `nginx not ready within ${START_TIMEOUT_MS / 1000} s; its output:\n${lastOutput()}`,
          );
        }
        await sleep(50);
      }
    } catch (error) {
      await stop().catch(() => {});
      throw error;
    }

    const endpoint = { host: '127.0.0.1', port };
    return {
      name: 'nchan',
      nodes: [endpoint],
      publishTo: endpoint,
      subscribeTo: endpoint,
      protocol: 'nchan',
      pids: [master, ...workerPids],
      broker: 'memory',
      brokerPids: [],
      exitReason: () => exitReason,
      output: lastOutput,
      stop,
    };
  },
};
