import { renameSync, writeFileSync } from 'node:fs';
import { format, type ResultRow } from './report.ts';
import type { ChartSpec, Scenario } from './scenario.ts';

/**
 * The results chart, `latest.svg`: one panel per `ChartSpec` of the scenarios run, a horizontal
 * bar per target (and case), so peers compare at a glance. Plain SVG written by hand: no
 * dependency for a few rectangles.
 */

const WIDTH = 760;
const LABEL_WIDTH = 190;
const BAR_MAX = 430;
const BAR_HEIGHT = 18;
const BAR_GAP = 6;
const TITLE_HEIGHT = 28;
const PANEL_GAP = 18;
const MARGIN = 16;
/** One colour per target, in the order targets first appear. */
const PALETTE = ['#2f6fdf', '#e8793a', '#4aa564', '#a35dc2', '#c9a227', '#d64b6a'];

const xmlText = (text: string) =>
  text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

interface Bar {
  readonly label: string;
  readonly target: string;
  readonly value: number | null;
  /** Shown instead of a bar. */
  readonly note?: string;
}

function barsOf(spec: ChartSpec, rows: readonly ResultRow[]): Bar[] {
  const chosen = spec.caseLabel === undefined ? rows : rows.filter((row) => row.case === spec.caseLabel);
  const cases = new Set(chosen.map((row) => row.case));
  return chosen.map((row) => {
    const value = row.result.metrics[spec.key];
    const label = cases.size > 1 ? `${row.target} · ${row.case}` : row.target;
    const number = typeof value === 'number' && Number.isFinite(value) ? value : null;
    if (row.result.notRun !== undefined)
      return { label, target: row.target, value: null, note: row.result.notRun };
    if (number === null) return { label, target: row.target, value: null, note: 'failed' };
    // A figure from a run with problems is drawn, but marked: it is not to be trusted.
    const note = row.result.problems.length > 0 ? '⚠ problems' : undefined;
    return { label, target: row.target, value: number, ...(note !== undefined && { note }) };
  });
}

/** The SVG text; empty panels (no row ran) are left out. */
export function renderChart(
  scenarios: readonly Scenario[],
  rows: readonly ResultRow[],
  caption: string,
): string {
  const targets = [...new Set(rows.map((row) => row.target))];
  const colour = (target: string) => PALETTE[targets.indexOf(target) % PALETTE.length] ?? '#888';
  const parts: string[] = [];
  let y = MARGIN;
  parts.push(
    `<text x="${MARGIN}" y="${y + 14}" font-size="16" font-weight="bold">${xmlText(caption)}</text>`,
  );
  y += TITLE_HEIGHT;
  for (const scenario of scenarios) {
    const scenarioRows = rows.filter((row) => row.scenario === scenario.name);
    for (const spec of scenario.charts ?? []) {
      const bars = barsOf(spec, scenarioRows);
      if (bars.length === 0) continue;
      const better = spec.better === 'higher' ? 'higher is better' : 'lower is better';
      parts.push(
        `<text x="${MARGIN}" y="${y + 16}" font-size="13" font-weight="bold">${xmlText(spec.title)}` +
          ` <tspan font-weight="normal" fill="#666">(${better})</tspan></text>`,
      );
      y += TITLE_HEIGHT;
      const max = Math.max(0, ...bars.map((bar) => bar.value ?? 0));
      for (const bar of bars) {
        const mid = y + BAR_HEIGHT / 2 + 4;
        parts.push(
          `<text x="${MARGIN + LABEL_WIDTH - 8}" y="${mid}" font-size="12" text-anchor="end">${xmlText(bar.label)}</text>`,
        );
        const x = MARGIN + LABEL_WIDTH;
        let after = x + 6;
        if (bar.value !== null) {
          const width = max > 0 ? Math.max(1, (bar.value / max) * BAR_MAX) : 1;
          parts.push(
            `<rect x="${x}" y="${y}" width="${width.toFixed(1)}" height="${BAR_HEIGHT}" fill="${colour(bar.target)}"/>`,
          );
          after = x + width + 6;
        }
        const text = [bar.value === null ? '' : format(bar.value, spec.format), bar.note ?? '']
          .filter((t) => t !== '')
          .join(' ');
        parts.push(
          `<text x="${after.toFixed(1)}" y="${mid}" font-size="12" fill="${bar.value === null ? '#888' : '#222'}">${xmlText(text)}</text>`,
        );
        y += BAR_HEIGHT + BAR_GAP;
      }
      y += PANEL_GAP;
    }
  }
  const height = y + MARGIN;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif">`,
    `<rect width="${WIDTH}" height="${height}" fill="#fff"/>`,
    ...parts,
    '</svg>',
    '',
  ].join('\n');
}

/** Writes `latest.svg` in `directory` (through a temporary file) and returns its URL. */
export function writeChart(
  directory: URL,
  scenarios: readonly Scenario[],
  rows: readonly ResultRow[],
  caption: string,
  basename = 'latest',
): URL {
  const svg = new URL(`${basename}.svg`, directory);
  const temporary = new URL(`${svg.href}.tmp`);
  writeFileSync(temporary, renderChart(scenarios, rows, caption));
  renameSync(temporary, svg);
  return svg;
}
