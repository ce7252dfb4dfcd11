/**
 * Herald's benchmark suite: `npm run bench [-- flags]`, or `node bench/run.ts [flags]`.
 *
 * Runs each scenario case against each target, every time on a freshly started server, prints a
 * Markdown table and writes bench/results/latest.{md,json}. Exits 1 if any run had a problem
 * (lost events, failed streams): those figures are not to be trusted.
 */
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { BROKERS } from './brokers.ts';
import { writeChart } from './chart.ts';
import { describeMachine } from './machine.ts';
import { installCleanup, killAll } from './processes.ts';
import { problemList, type ResultRow, scenarioTable, writeResults } from './report.ts';
import { NotRun, type PlanOptions, type Scenario } from './scenario.ts';
import { adversarial } from './scenarios/adversarial.ts';
import { CLUSTER_BROKERS, CLUSTER_RATE, cluster } from './scenarios/cluster.ts';
import { compression } from './scenarios/compression.ts';
import { DEFAULT_RATE, fanout } from './scenarios/fanout.ts';
import { hooks } from './scenarios/hooks.ts';
import { LATENCY_RATE, latency } from './scenarios/latency.ts';
import { memory } from './scenarios/memory.ts';
import { publishing } from './scenarios/publishing.ts';
import { replay } from './scenarios/replay.ts';
import { TOPICS_RATE, topicsScenario } from './scenarios/topics.ts';
import { profileHeraldInto, type RunningTarget, TARGETS, type Target } from './targets.ts';

const SCENARIOS: Readonly<Record<string, Scenario>> = {
  fanout,
  latency,
  memory,
  topics: topicsScenario,
  replay,
  cluster,
  adversarial,
  publish: publishing,
  compression,
  hooks,
};
/** The scenarios by the numbers the README and the results use (`--only S7`). */
const NUMBERED: Readonly<Record<string, string>> = {
  S1: 'fanout',
  S2: 'latency',
  S3: 'memory',
  S4: 'topics',
  S5: 'replay',
  S6: 'cluster',
  S7: 'adversarial',
  S8: 'publish',
  S9: 'compression',
  S10: 'hooks',
};
const RESULTS = new URL('./results/', import.meta.url);

const USAGE = `Usage: node bench/run.ts [options]

  --scenario <names>     ${Object.keys(SCENARIOS).join(', ')} or all (default: all)
  --only <S1…S10>        the same by number, e.g. --only S7 (adversarial) or --only S4,S8;
                         a partial run writes results/latest-<names>.*, not results/latest.*
  --target <names>       ${Object.keys(TARGETS).join(', ')} or all (default: all)
  --subscribers <n>      subscribers (fanout, cluster: 1000, quick 100; latency, topics:
                         10000, quick 1000; replay: 1000, quick 100; memory: fixed cases)
  --rate <events/s>      publish rate; 0 = saturated (default: both saturated and
                         ${DEFAULT_RATE} for fanout, ${CLUSTER_RATE} for cluster; ${LATENCY_RATE} for latency,
                         ${TOPICS_RATE} for topics, which are never saturated)
  --broker <names>       cluster: ${CLUSTER_BROKERS.join(', ')} or all (default: all)
  --duration <s>         measured window per case (default: 10; quick: 1.5)
  --warmup <s>           warmup before it (default: 2; quick: 0.5)
  --workers <n>          subscriber worker processes (default: 2–4, by subscriber count)
  --case <text>          only the cases whose label contains <text> (e.g. "1 event/request")
  --cpu-prof <dir>       each Herald node writes a V8 CPU profile into <dir> when it stops
                         (node --cpu-prof; summarize one with bench/profile-summary.ts)
  --quick                small and short, to check that everything works
  -h, --help             this text
`;

function number(name: string, text: string | undefined, min: number, max: number): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!Number.isFinite(value) || value < min || value > max) {
    throw new Error(`--${name} must be a number from ${min} to ${max}; got ${JSON.stringify(text)}`);
  }
  return value;
}

function pick<T>(kind: string, known: Readonly<Record<string, T>>, names: string): T[] {
  if (names === 'all') return Object.values(known);
  return names.split(',').map((name) => {
    const found = known[name.trim()];
    if (found === undefined)
      throw new Error(`unknown ${kind} "${name}"; known: ${Object.keys(known).join(', ')}`);
    return found;
  });
}

const log = (message: string) =>
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      scenario: { type: 'string', default: 'all' },
      only: { type: 'string' },
      target: { type: 'string', default: 'all' },
      subscribers: { type: 'string' },
      rate: { type: 'string' },
      duration: { type: 'string' },
      warmup: { type: 'string' },
      workers: { type: 'string' },
      broker: { type: 'string', default: 'all' },
      'cpu-prof': { type: 'string' },
      case: { type: 'string' },
      quick: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const names =
    values.only === undefined
      ? values.scenario
      : values.only
          .split(',')
          .map((id) => {
            const name = NUMBERED[id.trim().toUpperCase()];
            if (name === undefined)
              throw new Error(`unknown scenario number "${id}"; known: ${Object.keys(NUMBERED).join(', ')}`);
            return name;
          })
          .join(',');
  const scenarios = pick('scenario', SCENARIOS, names);
  const targets: Target[] = pick('target', TARGETS, values.target);
  const subscribers = number('subscribers', values.subscribers, 1, 15_000);
  const rate = number('rate', values.rate, 0, 1_000_000);
  const durationS = number('duration', values.duration, 0.1, 600);
  const warmupS = number('warmup', values.warmup, 0, 60);
  const workers = number('workers', values.workers, 1, 16);
  const brokers = pick('broker', BROKERS, values.broker).map((broker) => broker.name);
  const options: PlanOptions = {
    quick: values.quick,
    ...(subscribers !== undefined && { subscribers: Math.round(subscribers) }),
    ...(rate !== undefined && { rate }),
    ...(durationS !== undefined && { durationS }),
    ...(warmupS !== undefined && { warmupS }),
    ...(workers !== undefined && { workers: Math.round(workers) }),
    ...(values.broker !== 'all' && { brokers }),
  };

  // Absolute: the nodes run in the repository's directory, not necessarily this one.
  const profileDir = values['cpu-prof'];
  profileHeraldInto(profileDir === undefined ? undefined : resolve(profileDir));
  installCleanup();
  const startedAt = new Date().toISOString();
  const rows: ResultRow[] = [];
  for (const scenario of scenarios) {
    const cases = scenario
      .plan(options)
      .filter((scenarioCase) => values.case === undefined || scenarioCase.label.includes(values.case));
    for (const scenarioCase of cases) {
      for (const target of targets) {
        const name = `${scenario.name} ${scenarioCase.label} on ${target.name}`;
        if (scenario.targets !== undefined && !scenario.targets.includes(target.name)) {
          rows.push({
            scenario: scenario.name,
            case: scenarioCase.label,
            target: target.name,
            params: scenarioCase.params,
            result: {
              metrics: {},
              problems: [],
              notRun: `not run: measures ${scenario.targets.join(', ')} only`,
            },
          });
          continue;
        }
        log(`${name}: starting ${target.name}`);
        let server: RunningTarget | undefined;
        try {
          server = await target.start({ ...scenarioCase.server, ...(await scenarioCase.prepare?.()) });
          // Load generators and servers stay on this machine's loopback.
          for (const node of server.nodes) {
            if (node.host !== '127.0.0.1') {
              throw new Error(`${target.name} listens on ${node.host}, not 127.0.0.1`);
            }
          }
          const context = { log: (message: string) => log(`${name}: ${message}`) };
          const result = await scenarioCase.run(server, context);
          rows.push({
            scenario: scenario.name,
            case: scenarioCase.label,
            target: target.name,
            params: scenarioCase.params,
            result,
          });
          for (const problem of result.problems) log(`${name}: PROBLEM: ${problem}`);
          for (const warning of result.warnings ?? []) log(`${name}: warning: ${warning}`);
        } catch (error) {
          // The peer lacks what the case measures (replay, several processes): said, not counted.
          if (error instanceof NotRun) {
            const notRun = error.message;
            log(`${name}: not run: ${notRun}`);
            rows.push({
              scenario: scenario.name,
              case: scenarioCase.label,
              target: target.name,
              params: scenarioCase.params,
              result: { metrics: {}, problems: [], notRun: `not run: ${notRun}` },
            });
            continue;
          }
          let message = error instanceof Error ? error.message : String(error);
          const exit = server?.exitReason();
          if (exit !== undefined) message += ` (${exit}; its last output:\n${server?.output()})`;
          log(`${name}: FAILED: ${message}`);
          rows.push({
            scenario: scenario.name,
            case: scenarioCase.label,
            target: target.name,
            params: scenarioCase.params,
            result: { metrics: {}, problems: [`the run failed: ${message}`] },
          });
        } finally {
          // A log left on a shared broker does not make the figures wrong: said, not counted.
          await server?.stop().catch((error: unknown) => {
            log(`${name}: warning: ${error instanceof Error ? error.message : String(error)}`);
          });
        }
      }
    }
  }

  const results = {
    command: ['node bench/run.ts', ...process.argv.slice(2)].join(' '),
    machine: describeMachine(),
    startedAt,
    finishedAt: new Date().toISOString(),
    rows,
  };
  // A partial run does not replace the full run's results.
  const all = scenarios.length === Object.keys(SCENARIOS).length;
  const basename = all ? 'latest' : `latest-${scenarios.map((scenario) => scenario.name).join('-')}`;
  const written = writeResults(RESULTS, results, scenarios, basename);
  written.push(
    writeChart(
      RESULTS,
      scenarios,
      rows,
      `Herald benchmark, ${results.machine.cores} cores, ${results.finishedAt.slice(0, 16)}Z`,
      basename,
    ),
  );
  for (const scenario of scenarios) {
    const scenarioRows = rows.filter((row) => row.scenario === scenario.name);
    if (scenarioRows.length > 0)
      process.stdout.write(`\n## ${scenario.title}\n\n${scenarioTable(scenario, scenarioRows)}\n`);
  }
  const problems = problemList(rows);
  if (problems !== '') {
    process.stdout.write(`\n## ⚠ PROBLEMS: these figures are not to be trusted\n\n${problems}\n`);
  }
  const warnings = problemList(rows, 'warnings');
  if (warnings !== '') process.stdout.write(`\n## Warnings\n\n${warnings}\n`);
  log(`wrote ${written.map((url) => url.pathname).join(' and ')}`);
  return problems === '' ? 0 : 1;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`bench: ${error instanceof Error ? error.message : String(error)}\n`);
    killAll();
    process.exitCode = 2;
  },
);
