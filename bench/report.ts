import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import type { Machine } from './machine.ts';
import type { CaseResult, Column, ColumnFormat, MetricValue, Scenario } from './scenario.ts';

/** One row of the results: a scenario case against one target. */
export interface ResultRow {
  readonly scenario: string;
  readonly case: string;
  readonly target: string;
  readonly params: Readonly<Record<string, MetricValue>>;
  readonly result: CaseResult;
}

export interface Results {
  readonly command: string;
  readonly machine: Machine;
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly rows: readonly ResultRow[];
}

export function format(value: MetricValue | undefined, kind: ColumnFormat): string {
  if (value === null || value === undefined) return '–';
  if (typeof value === 'string') return value;
  switch (kind) {
    case 'int':
      return Math.round(value).toLocaleString('en-US');
    case 'ms':
      return value < 10
        ? value.toFixed(2)
        : value < 100
          ? value.toFixed(1)
          : Math.round(value).toLocaleString('en-US');
    case 'percent':
      if (value === 1) return '100 %';
      // Just under 100 % must not round up to it: 99.9996 % of deliveries is a lost event.
      if (value > 0.999 && value < 1) return `${(Math.floor(value * 1e5) / 1e3).toFixed(3)} %`;
      return `${(value * 100).toFixed(1)} %`;
    case 'mib':
      return (value / 1024 ** 2).toFixed(1);
    case 'kib':
      return (value / 1024).toFixed(1);
    case 'fixed1':
      return value.toFixed(1);
    case 'text':
      return String(value);
  }
}

/** The Markdown table of one scenario's rows. */
export function scenarioTable(scenario: Scenario, rows: readonly ResultRow[]): string {
  const columns: readonly Column[] = scenario.columns;
  const header = ['Target', 'Case', ...columns.map((c) => c.label)];
  const right = ['---', '---', ...columns.map(() => '---:')];
  const lines = [header, right].map((cells) => `| ${cells.join(' | ')} |`);
  for (const row of rows) {
    const flag =
      row.result.notRun !== undefined
        ? ` (${row.result.notRun})`
        : row.result.problems.length > 0
          ? ' ⚠'
          : '';
    const cells = [
      row.target,
      `${row.case}${flag}`,
      ...columns.map((c) => format(row.result.metrics[c.key], c.format)),
    ];
    lines.push(`| ${cells.join(' | ')} |`);
  }
  return lines.join('\n');
}

/** Every problem (or warning), one bullet each, or an empty string when there is none. */
export function problemList(rows: readonly ResultRow[], kind: 'problems' | 'warnings' = 'problems'): string {
  const items = rows.flatMap((row) =>
    (row.result[kind] ?? []).map((text) => `- **${row.scenario} ${row.case} on ${row.target}**: ${text}`),
  );
  return items.join('\n');
}

export function machineTable(machine: Machine): string {
  const gib = (machine.memoryBytes / 1024 ** 3).toFixed(1);
  return [
    '| | |',
    '|---|---|',
    `| CPU | ${machine.cpuModel} |`,
    `| Cores | ${machine.cores} |`,
    `| Memory | ${gib} GiB |`,
    `| OS | ${machine.os} |`,
    `| Node | ${machine.node} |`,
    `| Date | ${machine.date} |`,
  ].join('\n');
}

export function markdownReport(results: Results, scenarios: readonly Scenario[]): string {
  const parts = [
    '# Herald benchmark results',
    '',
    `Command: \`${results.command}\``,
    '',
    machineTable(results.machine),
  ];
  for (const scenario of scenarios) {
    const rows = results.rows.filter((row) => row.scenario === scenario.name);
    if (rows.length === 0) continue;
    parts.push('', `## ${scenario.title}`, '', scenario.description, '', scenarioTable(scenario, rows));
    const params = rows[0]?.params;
    if (params !== undefined) {
      parts.push(
        '',
        `Parameters: ${rows.map((row) => `${row.case}: \`${JSON.stringify(row.params)}\``).join('; ')}`,
      );
    }
  }
  const problems = problemList(results.rows);
  parts.push(
    '',
    '## Problems',
    '',
    problems === '' ? 'None: every event reached every subscriber.' : problems,
  );
  parts.push(
    '',
    '## Columns',
    '',
    '- **Nodes**: Herald processes forming the hub; the publisher sends to the first, every subscriber is on the last.',
    '- **Delivered**: events received ÷ (events published × subscribers) in the measured window; anything under 100 % is a bug.',
    '- **Deliveries/s**: events received by all subscribers together, per second of the measured window.',
    '- **p50/p99/max**: publish-to-receive latency: from just before the publish request to the socket read that brought the event.',
    '- **Deliveries/CPU-s**: deliveries per second of server CPU time (user + system, from /proc/<pid>/stat).',
    '- **Server CPU** (S6: **Herald CPU**): server CPU time ÷ wall time of the window (100 % = one core), summed over every node.',
    '- **Broker CPU**: the redis-server or nats-server process’s CPU time ÷ wall time of the window. That server is the machine’s, shared: whatever else used it meanwhile counts too. – on the memory broker, which runs inside Herald.',
    '- **RSS**: the server’s resident memory (VmRSS) at the end of the window, summed over every node.',
    '- **Load-gen CPU**: the subscriber workers’ CPU time ÷ wall time: when it nears the core count, the client is the limit.',
    '- **KiB per stream** (S3): (server RSS with the idle streams − RSS before them) ÷ streams, summed over every server process, each read once RSS stopped moving; **Server procs** counts them (nginx: master and workers).',
    '- **Catch-up** (S5): from the first reconnection attempt to the last replayed or live event arriving anywhere.',
    '- **Selectors** (S4): how the streams chose their topics; a peer without URI templates gets exact topics for all.',
    '- **not run**: the peer lacks what the case measures (replay, several processes): no figure, and not a problem.',
    '- **Other CPU**: CPU the rest of the machine used meanwhile (all busy time in /proc/stat, steal included, minus the server, the broker and the load generators); above 10 % the run was disturbed.',
    '',
  );
  return parts.join('\n');
}

/** Writes through a temporary file, so a reader never sees half a file. */
function writeAtomically(path: URL, text: string): void {
  const temporary = new URL(`${path.href}.tmp`);
  writeFileSync(temporary, text);
  renameSync(temporary, path);
}

/** `<basename>.md` and `<basename>.json` in `directory` (`latest.*` by default). */
export function writeResults(
  directory: URL,
  results: Results,
  scenarios: readonly Scenario[],
  basename = 'latest',
): URL[] {
  mkdirSync(directory, { recursive: true });
  const md = new URL(`${basename}.md`, directory);
  const json = new URL(`${basename}.json`, directory);
  writeAtomically(md, markdownReport(results, scenarios));
  writeAtomically(json, `${JSON.stringify(results, null, 2)}\n`);
  return [md, json];
}
