import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import {
  MAX_SEMI_SPACE_MIB,
  operatorChoseYoungGeneration,
  youngGenerationFlags,
} from '../../src/server/young-generation.ts';
import { killAllHubs, spawnHub } from '../helpers/nodes.ts';
import { sleep } from '../helpers/server.ts';

const run = promisify(execFile);
const MODULE = fileURLToPath(new URL('../../src/server/young-generation.ts', import.meta.url));
const MiB = 1024 * 1024;

/**
 * A process that keeps what it allocates, about 96 MiB over many turns of the event loop, as
 * opening thousands of streams does; it prints its young generation's size at the end. Started
 * with V8's bound at 64 MiB a semi-space, so that without the cap the young generation grows past
 * Herald's bound on any machine.
 */
async function youngGenerationAfterBurst(cap: boolean): Promise<number> {
  const script = `
    import { capYoungGeneration, youngGenerationBytes } from ${JSON.stringify(MODULE)};
    // The flag on this process is the test's, not an operator's: the cap is asked to ignore it.
    const cap = ${cap} ? capYoungGeneration({ execArgv: [], nodeOptions: undefined, everyMs: 1 }) : undefined;
    const kept = [];
    for (let turn = 0; turn < 1500; turn++) {
      for (let i = 0; i < 1000; i++) kept.push({ turn, i, tags: [turn, i], name: 'stream-' + turn + '-' + i });
      await new Promise((resolve) => setImmediate(resolve));
    }
    cap?.stop();
    console.log(JSON.stringify({ bytes: youngGenerationBytes(), kept: kept.length }));
  `;
  const { stdout } = await run(
    process.execPath,
    ['--max-semi-space-size=64', '--input-type=module', '-e', script],
    { timeout: 120_000 },
  );
  const { bytes, kept } = JSON.parse(stdout) as { bytes: number; kept: number };
  assert.equal(kept, 1_500_000);
  return bytes;
}

/** The command lines of `pid`'s child processes (Linux). */
function childCommandLines(pid: number): string[][] {
  const lines: string[][] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // The parent's pid is the 2nd field after the command name, which is in parentheses.
      const parent = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (parent === pid) lines.push(readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0'));
    } catch {
      // Gone meanwhile.
    }
  }
  return lines;
}

async function workerCommandLines(pid: number, count: number): Promise<string[][]> {
  for (let i = 0; i < 100; i++) {
    const workers = childCommandLines(pid).filter((line) => line.some((arg) => /worker\.[tj]s$/.test(arg)));
    if (workers.length === count) return workers;
    await sleep(100);
  }
  throw new Error(`${count} workers of ${pid} not found`);
}

describe('young generation bound (herald serve)', () => {
  after(killAllHubs);

  test("an operator's own V8 flag wins, under either spelling, on the command line or in NODE_OPTIONS", () => {
    assert.equal(operatorChoseYoungGeneration([], undefined), false);
    assert.equal(operatorChoseYoungGeneration(['--max-old-space-size=512', '--cpu-prof'], ''), false);
    assert.equal(operatorChoseYoungGeneration(['--max-semi-space-size=4'], undefined), true);
    assert.equal(operatorChoseYoungGeneration(['--max_semi_space_size=4'], undefined), true);
    assert.equal(operatorChoseYoungGeneration(['--semi-space-growth-factor=3'], undefined), true);
    assert.equal(operatorChoseYoungGeneration([], '--enable-source-maps --max-semi-space-size=32'), true);
    // A flag with a longer name is another flag.
    assert.equal(operatorChoseYoungGeneration(['--max-semi-space-size-extra=1'], undefined), false);
    assert.deepEqual(youngGenerationFlags([], undefined), [`--max-semi-space-size=${MAX_SEMI_SPACE_MIB}`]);
    assert.deepEqual(youngGenerationFlags(['--max-semi-space-size=4'], undefined), []);
    assert.deepEqual(youngGenerationFlags([], '--max-semi-space-size=4'), []);
  });

  test('a burst of objects that stay grows the young generation past the bound without the cap, not with it', async () => {
    const [uncapped, capped] = await Promise.all([
      youngGenerationAfterBurst(false),
      youngGenerationAfterBurst(true),
    ]);
    const bound = 2 * MAX_SEMI_SPACE_MIB * MiB;
    assert.ok(uncapped > bound, `without the cap: ${uncapped / MiB} MiB, more than ${bound / MiB}`);
    assert.ok(capped <= bound, `with the cap: ${capped / MiB} MiB, at most ${bound / MiB}`);
  });

  test('--workers starts each worker with the bound, unless NODE_OPTIONS chose one', async () => {
    const hub = await spawnHub(['--workers', '2']);
    try {
      const pid = hub.child.pid as number;
      for (const line of await workerCommandLines(pid, 2)) {
        assert.ok(line.includes(`--max-semi-space-size=${MAX_SEMI_SPACE_MIB}`), line.join(' '));
      }
    } finally {
      await hub.stop();
    }
    const chosen = await spawnHub(['--workers', '2'], { NODE_OPTIONS: '--max-semi-space-size=4' });
    try {
      for (const line of await workerCommandLines(chosen.child.pid as number, 2)) {
        assert.ok(!line.some((arg) => arg.startsWith('--max-semi-space-size')), line.join(' '));
      }
    } finally {
      await chosen.stop();
    }
  });
});
