/**
 * Preloaded into a server process (`node --import`) by the scenarios that measure its event loop
 * (S7): every 100 ms it appends to BENCH_LOOP_FILE one JSON line, `{"t": <ms since the epoch>,
 * "maxMs": <longest event-loop stall in those 100 ms>}`. A stall is how late a 5 ms timer fired,
 * as `perf_hooks.monitorEventLoopDelay` measures it; that histogram is not used itself because
 * resetting it between lines drops the delay it was about to record when the writing timer happens
 * to fire first after a stall. A stall of several seconds shows as one line written late, holding
 * the whole stall. Nothing is written when the variable is unset; the timers never keep the
 * process alive.
 */
import { openSync, writeSync } from 'node:fs';

const RESOLUTION_MS = 5;
const file = process.env.BENCH_LOOP_FILE;
if (file !== undefined && file !== '') {
  // Opened once: when the scenario removes the file, what is written after goes nowhere.
  const fd = openSync(file, 'a');
  let last = performance.now();
  let longest = 0;
  setInterval(() => {
    const now = performance.now();
    longest = Math.max(longest, now - last - RESOLUTION_MS);
    last = now;
  }, RESOLUTION_MS).unref();
  setInterval(() => {
    writeSync(fd, `${JSON.stringify({ t: Date.now(), maxMs: Math.max(0, longest) })}\n`);
    longest = 0;
  }, 100).unref();
}
