// Runs the test suite (what `npm test` runs after the type check and the lint): every
// test/**/*.test.ts file in its own `node --test` process, two at a time, each in a process group
// of its own and under a watchdog.
//
//   node scripts/run-tests.mjs [file or directory…]      (default: test/)
//
// - A file that runs longer than HERALD_TEST_FILE_TIMEOUT_S (default 600) is interrupted (node
//   prints the tests it was running), then killed with everything it started, and named.
// - Whatever a file leaves running when it ends (a hub process, a broker) is killed and named, and
//   the file counts as failed: every process a test starts must be stopped in its `after`.
// - One line per file that passes; the whole report of a file that does not.
// - The browser tests (*.browser.test.ts, and the Mercure conformance suite) need Chromium: when it
//   is missing, it is installed from the system's packages where this process can (root with
//   apt-get); where it cannot, one line says so and the run stops before it starts.
//   HERALD_SKIP_BROWSER=1 skips them instead, and they are listed as skipped with that reason.
//
// Other settings: HERALD_TEST_CONCURRENCY (files at once, default 2), HERALD_TEST_TIMEOUT_MS (per
// test, default 120000), HERALD_TEST_VERBOSE=1 (every file's whole report).
import { spawn } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { browserSkipReason, ensureChromium } from './chromium.mjs';

const positive = (value, fallback) => {
  const number = Number(value);
  return Number.isFinite(number) && number > 0 ? number : fallback;
};
const CONCURRENCY = positive(process.env.HERALD_TEST_CONCURRENCY, 2);
const FILE_TIMEOUT_S = positive(process.env.HERALD_TEST_FILE_TIMEOUT_S, 600);
const TEST_TIMEOUT_MS = positive(process.env.HERALD_TEST_TIMEOUT_MS, 120_000);
const VERBOSE = /^(1|true|yes)$/i.test(process.env.HERALD_TEST_VERBOSE ?? '');
/** How long an interrupted file gets to print what it was running before it is killed. */
const GRACE_MS = 5_000;
const DURATIONS = 'node_modules/.cache/herald/test-durations.json';

const isBrowserFile = (file) => file.endsWith('.browser.test.ts');

function collect(path, into) {
  let stat;
  try {
    stat = statSync(path);
  } catch {
    console.error(`run-tests: no such file or directory: ${path}`);
    process.exit(1);
  }
  if (stat.isDirectory()) {
    for (const name of readdirSync(path).sort()) {
      if (name === 'node_modules' || name.startsWith('.')) continue;
      collect(join(path, name), into);
    }
  } else if (path.endsWith('.test.ts') || path.endsWith('.test.mjs') || path.endsWith('.test.js')) {
    into.push(relative(process.cwd(), path).split(sep).join('/'));
  }
  return into;
}

const roots = process.argv.slice(2);
const files = [...new Set((roots.length > 0 ? roots : ['test']).flatMap((root) => collect(root, [])))];
if (files.length === 0) {
  console.error(`run-tests: no test files under ${roots.join(' ') || 'test'}`);
  process.exit(1);
}

const skipReason = browserSkipReason();
const skipped = skipReason === undefined ? [] : files.filter(isBrowserFile);
// Chromium before anything runs: installed here, or one line and a stop.
if (
  skipReason === undefined &&
  files.some((file) => isBrowserFile(file) || file.endsWith('conformance.test.ts'))
) {
  if (!ensureChromium()) process.exit(1);
}

// Longest first (as timed by the last run here): two slow files at the end would leave a core idle.
let known = {};
try {
  known = JSON.parse(readFileSync(DURATIONS, 'utf8'));
} catch {}
// A file not timed yet goes first: it may be a long one.
const expected = (file) => known[file] ?? Number.MAX_SAFE_INTEGER;
const queue = files.filter((file) => !skipped.includes(file)).sort((a, b) => expected(b) - expected(a));

const totals = { tests: 0, pass: 0, fail: 0, cancelled: 0, skipped: 0, todo: 0 };
const failedFiles = [];
const killedFiles = [];
const leakyFiles = [];
const durations = { ...known };
const running = new Set();
const began = Date.now();

/** The processes still in process group `pgid` (Linux: from /proc), as "pid command" lines. */
function groupMembers(pgid) {
  const members = [];
  try {
    for (const pid of readdirSync('/proc')) {
      if (!/^\d+$/.test(pid)) continue;
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
        // pid (comm) state ppid pgrp …: comm may hold spaces and parentheses.
        const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        // fields: state ppid pgrp …; a zombie has already ended (it only awaits its parent).
        if (Number(fields[2]) !== pgid || fields[0] === 'Z') continue;
        const command = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
        members.push(`${pid} ${command.slice(0, 160)}`);
      } catch {}
    }
    return members;
  } catch {
    // No /proc: only whether the group still exists.
    try {
      process.kill(-pgid, 0);
      return ['(processes of the group)'];
    } catch {
      return [];
    }
  }
}

const killGroup = (pgid, signal = 'SIGKILL') => {
  try {
    process.kill(-pgid, signal);
  } catch {}
};

/** The counts of node's spec summary (`ℹ tests 12` …), and the report without it. */
function splitSummary(output) {
  const counts = {};
  const kept = [];
  for (const line of output.split('\n')) {
    const match = /^ℹ (tests|suites|pass|fail|cancelled|skipped|todo|duration_ms) ([\d.]+)$/.exec(line);
    if (match) counts[match[1]] = Number(match[2]);
    else kept.push(line);
  }
  return { counts, report: kept.join('\n').trimEnd() };
}

function runFile(file) {
  return new Promise((resolve) => {
    const started = Date.now();
    const child = spawn(
      process.execPath,
      [
        '--test',
        '--test-reporter=spec',
        `--test-timeout=${TEST_TIMEOUT_MS}`,
        // Once its tests are done, the file's process ends even if something it opened is still
        // open; what that leaves running is killed and reported below.
        '--test-force-exit',
        file,
      ],
      // Its own process group: the file, and all it spawns, can be killed at once.
      { detached: true, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const entry = { file, pgid: child.pid, interrupted: false };
    running.add(entry);
    let output = '';
    child.stdout.on('data', (chunk) => {
      output += chunk;
    });
    child.stderr.on('data', (chunk) => {
      output += chunk;
    });
    const watchdog = setTimeout(() => {
      entry.interrupted = true;
      console.log(
        `⏱ ${file}: still running after ${FILE_TIMEOUT_S} s: interrupted and killed (HERALD_TEST_FILE_TIMEOUT_S)`,
      );
      // SIGINT first: node lists the tests it was running; then the whole group goes.
      killGroup(child.pid, 'SIGINT');
      setTimeout(() => killGroup(child.pid), GRACE_MS).unref();
    }, FILE_TIMEOUT_S * 1000);
    child.once('close', async (code, signal) => {
      clearTimeout(watchdog);
      const seconds = (Date.now() - started) / 1000;
      durations[file] = seconds;
      // A moment for what is already on its way out (a helper process whose pipe just closed).
      let left = groupMembers(child.pid);
      for (let wait = 0; left.length > 0 && wait < 20; wait++) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        left = groupMembers(child.pid);
      }
      if (left.length > 0) killGroup(child.pid);
      running.delete(entry);
      const { counts, report } = splitSummary(output);
      for (const key of Object.keys(totals)) totals[key] += counts[key] ?? 0;
      const failed = code !== 0 || entry.interrupted || left.length > 0;
      const parts = [`${counts.tests ?? '?'} tests`];
      for (const key of ['fail', 'cancelled', 'skipped', 'todo'])
        if (counts[key]) parts.push(`${counts[key]} ${key}`);
      const line = `${failed ? '✖' : '✔'} ${file} (${parts.join(', ')}; ${seconds.toFixed(1)} s)`;
      if (failed || VERBOSE) {
        console.log(`\n${line}\n${report.replace(/^/gm, '  ')}`);
        if (signal !== null && !entry.interrupted) console.log(`  the file's process ended on ${signal}`);
      } else {
        console.log(line);
        // What was skipped, and why, even when the rest passed.
        for (const skip of report.split('\n').filter((l) => /^\s*﹣ /.test(l)))
          console.log(`  ${skip.trim()}`);
      }
      if (entry.interrupted) {
        killedFiles.push(file);
        console.log(`✖ ${file} was killed by its watchdog after ${FILE_TIMEOUT_S} s\n`);
      } else if (failed) failedFiles.push(file);
      if (left.length > 0) {
        leakyFiles.push(file);
        console.log(
          `✖ ${file} left ${left.length} process(es) running when it ended (killed now):\n${left.map((l) => `    ${l}`).join('\n')}\n`,
        );
      }
      resolve();
    });
  });
}

let stopping = false;
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    console.log(
      `\nrun-tests: ${signal}: stopping ${[...running].map((r) => r.file).join(', ') || 'nothing'}`,
    );
    for (const entry of running) killGroup(entry.pgid);
    process.exit(130);
  });
}
// However this process ends, nothing it started outlives it.
process.on('exit', () => {
  for (const entry of running) killGroup(entry.pgid);
});

console.log(
  `run-tests: ${queue.length} files, ${CONCURRENCY} at a time (per test ${TEST_TIMEOUT_MS / 1000} s, per file ${FILE_TIMEOUT_S} s)`,
);
for (const file of skipped) console.log(`﹣ ${file} # SKIP ${skipReason}`);

await Promise.all(
  Array.from({ length: Math.min(CONCURRENCY, queue.length) }, async () => {
    for (let file = queue.shift(); file !== undefined && !stopping; file = queue.shift()) await runFile(file);
  }),
);

try {
  mkdirSync('node_modules/.cache/herald', { recursive: true });
  writeFileSync(DURATIONS, `${JSON.stringify(durations, null, 1)}\n`);
} catch {}

const seconds = ((Date.now() - began) / 1000).toFixed(1);
const ran = files.length - skipped.length;
console.log(`
ℹ files ${ran} run${skipped.length > 0 ? `, ${skipped.length} skipped (${skipReason})` : ''}; failed ${failedFiles.length}, killed by the watchdog ${killedFiles.length}, left processes running ${leakyFiles.length}
ℹ tests ${totals.tests}
ℹ pass ${totals.pass}
ℹ fail ${totals.fail}
ℹ cancelled ${totals.cancelled}
ℹ skipped ${totals.skipped}
ℹ todo ${totals.todo}
ℹ duration ${seconds} s`);
const bad = [...new Set([...failedFiles, ...killedFiles, ...leakyFiles])];
if (bad.length > 0) {
  console.log(`\n✖ ${bad.length} file(s) did not pass:\n${bad.map((file) => `  ${file}`).join('\n')}`);
  process.exitCode = 1;
}
