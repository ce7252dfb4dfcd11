import type { BrokerName } from './brokers.ts';
import type { RunningTarget, TargetOptions } from './targets.ts';

/** What the command line asks for; each scenario takes what applies to it. */
export interface PlanOptions {
  readonly quick: boolean;
  readonly subscribers?: number;
  /** Events per second; 0: saturated. */
  readonly rate?: number;
  readonly durationS?: number;
  readonly warmupS?: number;
  /** Subscriber worker processes. */
  readonly workers?: number;
  /** The brokers of the scenarios that compare them (cluster). */
  readonly brokers?: readonly BrokerName[];
}

export type MetricValue = number | string | null;

/** The figures of one case against one target. */
export interface CaseResult {
  readonly metrics: Readonly<Record<string, MetricValue>>;
  /** Everything that makes the figures suspect (lost events, errors): reported loudly. */
  readonly problems: readonly string[];
  /** What may skew the figures without making them wrong (another process using the CPU). */
  readonly warnings?: readonly string[];
  /** Raw detail for the JSON file. */
  readonly details?: Readonly<Record<string, unknown>>;
  /** Why the case was not run on this target (it lacks the feature measured): neither figures nor a problem. */
  readonly notRun?: string;
}

/**
 * Thrown by a case, or for a target, that cannot be measured there because the peer lacks what it
 * measures (replay, several processes): the row says so instead of counting a failure.
 */
export class NotRun extends Error {}

export interface RunContext {
  /** Progress for the operator, on stderr. */
  log(message: string): void;
}

/** One measurement: a scenario with fixed parameters, run against a freshly started target. */
export interface ScenarioCase {
  /** Short, e.g. `1000/s` or `saturated`. */
  readonly label: string;
  readonly params: Readonly<Record<string, MetricValue>>;
  /** How the target must be started for this case. */
  readonly server: TargetOptions;
  /**
   * Runs before the target starts, for settings known only then (S10: the URL of the app endpoint
   * the case serves itself, listening by then): what it returns is added to `server`.
   */
  prepare?(): Promise<TargetOptions>;
  run(target: RunningTarget, context: RunContext): Promise<CaseResult>;
}

export type ColumnFormat = 'int' | 'ms' | 'percent' | 'mib' | 'kib' | 'text' | 'fixed1';

export interface Column {
  readonly key: string;
  readonly label: string;
  readonly format: ColumnFormat;
}

export interface Scenario {
  /** As given to `--scenario`. */
  readonly name: string;
  readonly title: string;
  /** What it measures and how, for the results file. */
  readonly description: string;
  /** The table's columns after target and case; keys into `CaseResult.metrics`. */
  readonly columns: readonly Column[];
  /**
   * The targets it applies to, when not all (S7 measures Herald's own limits): the others are
   * listed as not run, without being started.
   */
  readonly targets?: readonly string[];
  /** Panels of the results chart (`results/latest.svg`) drawn from this scenario's rows. */
  readonly charts?: readonly ChartSpec[];
  plan(options: PlanOptions): readonly ScenarioCase[];
}

/** One panel of the results chart: one bar per target (and per case, unless `caseLabel` picks one). */
export interface ChartSpec {
  readonly title: string;
  /** Key into `CaseResult.metrics`. */
  readonly key: string;
  /** Only the rows of this case; every case otherwise. */
  readonly caseLabel?: string;
  /** How a value is shown next to its bar. */
  readonly format: ColumnFormat;
  readonly better: 'higher' | 'lower';
}
