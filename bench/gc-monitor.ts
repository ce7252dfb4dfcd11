/**
 * Preloaded into a Herald process (`node --import`) by the scenarios that report its garbage
 * collection (S4): every V8 pause, as `PerformanceObserver` sees it, appended to BENCH_GC_FILE as
 * one JSON line `{"t": <ms since the epoch at its end>, "ms": <pause>, "kind": <1 minor
 * (scavenge), 2 major, 4 incremental, 8 weak callbacks>}`. The event loop runs nothing else
 * meanwhile: every delivery due then waits the pause out. Nothing is written when the variable
 * is unset.
 */
import { appendFileSync } from 'node:fs';
import { PerformanceObserver } from 'node:perf_hooks';

const file = process.env.BENCH_GC_FILE;
if (file !== undefined && file !== '') {
  new PerformanceObserver((list) => {
    let lines = '';
    for (const entry of list.getEntries()) {
      const kind = (entry as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind ?? 0;
      lines += `${JSON.stringify({ t: Date.now(), ms: entry.duration, kind })}\n`;
    }
    appendFileSync(file, lines);
  }).observe({ entryTypes: ['gc'] });
}
