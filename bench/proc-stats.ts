import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

/** CPU time and memory of other processes, from Linux's /proc. */

let ticksPerSecond: number | undefined;

/** `getconf CLK_TCK`: the unit of /proc/<pid>/stat's utime and stime (100 almost everywhere). */
export function clockTicksPerSecond(): number {
  if (ticksPerSecond === undefined) {
    let value = Number.NaN;
    try {
      value = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    } catch {
      // Without getconf, Linux's USER_HZ is 100 on every common architecture.
    }
    ticksPerSecond = Number.isFinite(value) && value > 0 ? value : 100;
  }
  return ticksPerSecond;
}

/** utime and stime of one process, in clock ticks. */
function userAndKernelTicks(pid: number): readonly [number, number] {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) is in parentheses and may hold spaces: count fields after it.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields 14 and 15 (utime, stime); `fields` starts at field 3.
  return [Number(fields[11]), Number(fields[12])];
}

/** utime + stime of one process, in clock ticks. */
export function cpuTicks(pid: number): number {
  const [user, kernel] = userAndKernelTicks(pid);
  return user + kernel;
}

/** CPU seconds used by all of `pids` so far. */
export function cpuSeconds(pids: readonly number[]): number {
  let ticks = 0;
  for (const pid of pids) ticks += cpuTicks(pid);
  return ticks / clockTicksPerSecond();
}

/**
 * CPU seconds all of `pids` spent in the kernel so far (stime: system calls, and the network
 * stack's work done on their behalf). With `cpuSeconds` it splits a server's cost into what its
 * own code does and what every server pays the kernel for the same sockets and packets.
 */
export function kernelCpuSeconds(pids: readonly number[]): number {
  let ticks = 0;
  for (const pid of pids) ticks += userAndKernelTicks(pid)[1];
  return ticks / clockTicksPerSecond();
}

/**
 * Seconds the main threads of `pids` spent runnable but waiting for a core so far (the second
 * field of /proc/<pid>/schedstat): on a machine whose cores the load generators share, the part
 * of a delivery's latency that is the server waiting its turn, not working.
 */
export function runQueueWaitSeconds(pids: readonly number[]): number {
  let nanoseconds = 0;
  for (const pid of pids) nanoseconds += Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[1]);
  return nanoseconds / 1e9;
}

/** Resident set size of all of `pids`, in bytes (VmRSS of /proc/<pid>/status). */
export function rssBytes(pids: readonly number[]): number {
  let total = 0;
  for (const pid of pids) {
    const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    if (match === null) throw new Error(`no VmRSS for process ${pid}`);
    total += Number(match[1]) * 1024;
  }
  return total;
}

/**
 * CPU seconds the whole machine has been busy (every core; steal included, as time the
 * hypervisor gave to someone else), from the first line of /proc/stat.
 */
export function machineBusySeconds(): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] ?? '';
  // cpu  user nice system idle iowait irq softirq steal guest guest_nice (guest is inside user)
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = line
    .trim()
    .split(/\s+/)
    .slice(1)
    .map(Number);
  return (user + nice + system + irq + softirq + steal) / clockTicksPerSecond();
}

/**
 * `pid` and every process it started, children first-level and below: a server of several worker
 * processes (`herald serve --workers`) is all of them. Reads /proc/<pid>/task/<tid>/children,
 * so a process that has exited meanwhile is simply left out.
 */
export function processTree(pid: number): number[] {
  const tree = [pid];
  for (let i = 0; i < tree.length; i++) {
    const parent = tree[i] as number;
    let tasks: string[];
    try {
      tasks = readdirSync(`/proc/${parent}/task`);
    } catch {
      continue;
    }
    for (const task of tasks) {
      try {
        const text = readFileSync(`/proc/${parent}/task/${task}/children`, 'utf8').trim();
        if (text !== '') for (const child of text.split(' ')) tree.push(Number(child));
      } catch {
        // The task ended while being read.
      }
    }
  }
  return tree;
}
