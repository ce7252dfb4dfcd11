import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8';

/**
 * How large `herald serve` lets V8's young generation grow: each of its two semi-spaces at most
 * 16 MiB, the bound Node 20 has on a 64-bit machine.
 *
 * Node 24 lets a semi-space grow to 64 MiB on a machine with enough memory, and V8 grows it when
 * many new objects survive, which is what opening thousands of streams does (each keeps its
 * objects). The young generation never shrinks back once the server is idle, and the pages it
 * gave up stay resident: 10 000 streams opened in a burst left about 7 KiB per stream of free
 * young-generation pages in RSS, as much as the streams themselves (docs/performance.md). A
 * smaller young generation means a scavenge more often under a heavy publish load; this bound is
 * the one Node used for years.
 */
export const MAX_SEMI_SPACE_MIB = 16;

/** V8's own flag: given by the operator (`node --max-semi-space-size=…`, NODE_OPTIONS), it wins. */
const SEMI_SPACE_FLAG = '--max-semi-space-size';
const GROWTH_FLAG = '--semi-space-growth-factor';
/** V8's default growth factor, restored once the young generation is below the bound again. */
const DEFAULT_GROWTH_FACTOR = 2;
/**
 * How often a running process checks its young generation. A growth takes as many surviving bytes
 * as the young generation holds, so two growths between checks are unlikely.
 */
const CHECK_EVERY_MS = 200;

/** Whether the operator already chose a bound for the young generation (or how it grows). */
export function operatorChoseYoungGeneration(
  execArgv: readonly string[] = process.execArgv,
  nodeOptions: string | undefined = process.env.NODE_OPTIONS,
): boolean {
  // V8 takes `_` for `-` in its flags' names.
  const named = (arg: string) => {
    const name = (arg.split('=')[0] as string).replaceAll('_', '-');
    return name === SEMI_SPACE_FLAG || name === GROWTH_FLAG;
  };
  return execArgv.some(named) || (nodeOptions ?? '').split(/\s+/).some(named);
}

/**
 * The flags a worker process of `herald serve --workers N` starts with: V8 bounds its young
 * generation from the start, exactly. Nothing when the operator chose a bound already (the
 * primary's own flags, which the workers inherit, or NODE_OPTIONS).
 */
export function youngGenerationFlags(
  execArgv: readonly string[] = process.execArgv,
  nodeOptions: string | undefined = process.env.NODE_OPTIONS,
): string[] {
  return operatorChoseYoungGeneration(execArgv, nodeOptions)
    ? []
    : [`${SEMI_SPACE_FLAG}=${MAX_SEMI_SPACE_MIB}`];
}

export interface YoungGenerationCap {
  /** Stops checking and lets the young generation grow as V8 decides again. */
  stop(): void;
}

/**
 * Bounds the young generation of a process that started without `--max-semi-space-size` (a
 * one-process `herald serve`): V8 reads that flag only as it starts, so this checks the young
 * generation's size every 200 ms and stops its growth (a growth factor of 1, which V8 reads at
 * each growth) while it is at `maxSemiSpaceMiB`, letting it grow again once V8 has shrunk it.
 * A growth takes as many surviving bytes as the young generation holds, so it does not pass the
 * bound between two checks unless 16 MiB and more survive within 200 ms.
 *
 * Does nothing (undefined) when the operator chose a bound (`operatorChoseYoungGeneration`).
 * The timer does not keep the process alive.
 */
export function capYoungGeneration(
  options: {
    readonly maxSemiSpaceMiB?: number;
    readonly execArgv?: readonly string[];
    readonly nodeOptions?: string | undefined;
    readonly everyMs?: number;
  } = {},
): YoungGenerationCap | undefined {
  const nodeOptions = 'nodeOptions' in options ? options.nodeOptions : process.env.NODE_OPTIONS;
  if (operatorChoseYoungGeneration(options.execArgv, nodeOptions)) return undefined;
  // Both semi-spaces: V8 reports the young generation's size as their sum.
  const bound = 2 * (options.maxSemiSpaceMiB ?? MAX_SEMI_SPACE_MIB) * 1024 * 1024;
  let frozen = false;
  const check = () => {
    const atBound = youngGenerationBytes() >= bound;
    if (atBound === frozen) return;
    frozen = atBound;
    setFlagsFromString(`${GROWTH_FLAG}=${atBound ? 1 : DEFAULT_GROWTH_FACTOR}`);
  };
  check();
  const timer = setInterval(check, options.everyMs ?? CHECK_EVERY_MS);
  timer.unref();
  return {
    stop() {
      clearInterval(timer);
      if (frozen) setFlagsFromString(`${GROWTH_FLAG}=${DEFAULT_GROWTH_FACTOR}`);
      frozen = false;
    },
  };
}

/** The young generation's reserved size (both semi-spaces), bytes. */
export function youngGenerationBytes(): number {
  for (const space of getHeapSpaceStatistics()) if (space.space_name === 'new_space') return space.space_size;
  return 0;
}
