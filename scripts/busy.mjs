// Runs a command beside a CPU load: one busy-loop process per core (by default), for as long as
// the command runs, killed when it ends however it ends. `npm run test:busy` runs the whole suite
// this way: a suite that can be trusted passes on a machine that is busy with other work.
//
//   node scripts/busy.mjs <command> [args…]
//
// HERALD_BUSY_PROCESSES: how many busy loops (default: the number of cores);
// HERALD_BUSY_NICE: their niceness, 0 (default: as urgent as the suite) to 19 (only idle time).
import { spawn } from 'node:child_process';
import { availableParallelism, setPriority } from 'node:os';

const [command, ...args] = process.argv.slice(2);
if (command === undefined) {
  console.error('usage: node scripts/busy.mjs <command> [args…]');
  process.exit(2);
}
const count = Number(process.env.HERALD_BUSY_PROCESSES ?? availableParallelism());
const nice = Number(process.env.HERALD_BUSY_NICE ?? 0);

// Each loop also ends by itself if this process is gone (killed with no chance to clean up), and
// after six hours whatever happens.
const LOOP = `
const parent = process.ppid;
const until = Date.now() + 6 * 3600_000;
for (;;) {
  for (let i = 0; i < 5e7; i++);
  if (process.ppid !== parent || Date.now() > until) process.exit(0);
}`;

const burners = Array.from({ length: count }, () => {
  const burner = spawn(process.execPath, ['-e', LOOP], { stdio: 'ignore' });
  try {
    if (nice !== 0) setPriority(burner.pid, nice);
  } catch {}
  return burner;
});
const stopLoad = () => {
  for (const burner of burners)
    if (burner.exitCode === null && burner.signalCode === null) burner.kill('SIGKILL');
};
process.on('exit', stopLoad);

console.log(`busy: ${count} busy-loop process(es) at nice ${nice}, beside: ${[command, ...args].join(' ')}`);
const began = Date.now();
const child = spawn(command, args, { stdio: 'inherit' });
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, () => {
    child.kill(signal);
    stopLoad();
  });
}
child.once('error', (error) => {
  console.error(`busy: could not run ${command}: ${error.message}`);
  stopLoad();
  process.exit(1);
});
child.once('exit', (code, signal) => {
  stopLoad();
  const seconds = ((Date.now() - began) / 1000).toFixed(1);
  console.log(
    `busy: load stopped; ${command} ended with ${signal ?? `exit code ${code}`} after ${seconds} s`,
  );
  process.exit(code ?? 1);
});
