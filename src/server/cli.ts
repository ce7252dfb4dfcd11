#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { Command, type CommanderError, Option } from 'commander';
import { createLogger, maskSecrets } from '../observability/logger.ts';
import { logDestination } from '../observability/pretty.ts';
import {
  ConfigError,
  closest,
  describeOrigin,
  formatValue,
  GROUPS,
  maskUrl,
  parseDuration,
  type ResolvedConfig,
  resolveSettings,
  SETTINGS,
  type Setting,
  settingsMarkdown,
} from './config.ts';
import { loadConfigFile } from './config-file.ts';
import { DEFAULT_HEALTH_TIMEOUT, healthCommand } from './health-command.ts';
import { listenCommand } from './listen-command.ts';
import { maskUrlsIn } from './messages.ts';
import { DEFAULT_HUB_URL, publishCommand } from './publish-command.ts';
import { heraldOptions, isLoopback, serve } from './serve.ts';
import { loadTls } from './tls.ts';
import { DEFAULT_TOKEN_TTL, mintToken } from './token-command.ts';
import { runWorkers } from './workers.ts';

/**
 * The `herald` command. A mistake in how it is called (an unknown flag, a missing or bad value,
 * a setting that does not parse) prints what is wrong in a line or two, with the nearest flag
 * and where to look, and exits 2; a failure while running (a port in use, a hub that does not
 * answer) exits 1. No help screen, message or `config check` prints a secret's value.
 */

// Streams get a retry hint and the process exits well inside the 10 s most orchestrators allow.
const SHUTDOWN_DEADLINE_MS = 4_500;
const HUB_URL = process.env.HERALD_URL || DEFAULT_HUB_URL;

const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
  version: string;
};
const collect = (value: string, previous: string[] = []) => [...previous, value];

/** A mistake in how a command was called: printed with a pointer to its `--help`, exit 2. */
class UsageError extends Error {
  readonly problems: readonly string[];
  /** `herald listen`, for a value refused while the flags are parsed (before the command is known). */
  readonly path: string | undefined;
  constructor(problems: readonly string[] | string, path?: string) {
    const list = typeof problems === 'string' ? [problems] : problems;
    super(list.join('\n'));
    this.problems = list;
    this.path = path;
  }
}

/** `herald config check`, from a command. */
function commandPath(command: Command): string {
  const names: string[] = [];
  for (let c: Command | null = command; c !== null; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

/** ` (env: HERALD_TOKEN, set)`: whether a secret's variable is set, never its value. */
const secretEnv = (name: string) => ` (env: ${name}${process.env[name] ? ', set' : ''})`;

const program = new Command('herald')
  .description('Herald: a real-time event hub over Server-Sent Events')
  .version(version)
  .showSuggestionAfterError(false);

// serve

/** What `serve --help` says of a setting: what it does, its default, its variables. */
function settingHelp(s: Setting): string {
  const notes: string[] = [];
  if (s.kind !== 'switch' && s.defaultValue !== undefined && formatValue(s, s.defaultValue) !== 'none') {
    notes.push(`default: ${formatValue(s, s.defaultValue)}`);
  }
  notes.push(`env: ${s.env.join(' or ')}`);
  return `${s.description} (${notes.join('; ')})`;
}

/** Every setting as a flag of `command`, grouped in its help as in the README. */
function addSettings(command: Command): Command {
  command.addOption(
    new Option(
      '--config <file>',
      'settings file, JSON or YAML, with the flags as names (port: 8080); flags and HERALD_… variables override it (env: HERALD_CONFIG)',
    ),
  );
  for (const group of GROUPS) {
    for (const s of SETTINGS.filter((candidate) => candidate.group === group)) {
      const option = new Option(s.flag, settingHelp(s)).helpGroup(`${group}:`);
      command.addOption(s.repeatable ? option.argParser(collect) : option);
    }
  }
  return command;
}

/** Flags over `HERALD_…` variables over the `--config` file (or HERALD_CONFIG) over defaults. */
function resolveFromCli(flags: Record<string, unknown>): ResolvedConfig {
  const path = typeof flags.config === 'string' ? flags.config : process.env.HERALD_CONFIG || undefined;
  return resolveSettings(flags, process.env, path === undefined ? undefined : loadConfigFile(path));
}

addSettings(
  program
    .command('serve')
    .description('run the hub (memory broker by default: no other service needed)')
    .addHelpText(
      'after',
      '\nDurations take ms, s, m, h, d (15s, 24h); sizes KiB, MiB. Flags win over variables, variables over --config.\n',
    ),
).action(async (flags: Record<string, unknown>) => {
  const { config } = resolveFromCli(flags);
  if (config.workers > 1) return runWorkers(config, version);
  const logger = createLogger({ level: config.logLevel, ...logDestination(config.logFormat) });
  const running = await serve(config, logger);
  const broker = running.herald.degraded ? `memory, ${running.herald.degraded}` : running.herald.broker.kind;
  // Where it listens is printed at any level: scripts and operators wait for that line.
  logger
    .child({}, { level: 'info' })
    .info(
      { url: running.url, broker, version },
      `herald ${version} listening on ${running.url} (broker: ${broker}, history: ${config.historySize} events)`,
    );
  if (running.herald.open) {
    logger.warn(
      { open: true },
      'open development mode: no JWT key is configured, so every request may publish and see everything',
    );
  }
  const shutdown = (signal: string) => {
    logger.info({ signal }, `${signal} received, closing streams`);
    setTimeout(() => process.exit(0), SHUTDOWN_DEADLINE_MS).unref();
    running.close().then(() => process.exit(0));
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
});

// config

const configCommand = program
  .command('config')
  .description('check a configuration, or print every setting')
  .addHelpText('after', '\nSee herald config check --help.');

addSettings(
  configCommand
    .command('check')
    .description(
      'check the settings serve would run with (--config file, HERALD_… variables, flags) without starting it; print them, secrets masked; exit 0 when they would do, 2 when not',
    ),
).action(async (flags: Record<string, unknown>) => {
  const resolved = resolveFromCli(flags);
  const problems = deeperProblems(resolved);
  if (problems.length > 0) throw new ConfigError(problems);
  const width = Math.max(...SETTINGS.map((s) => s.name.length)) - 1;
  const lines: string[] = [];
  for (const warning of unknownVariables(process.env)) lines.push(`warning: ${warning}`);
  for (const group of GROUPS) {
    lines.push(`${group}:`);
    for (const s of SETTINGS.filter((candidate) => candidate.group === group)) {
      const value = formatValue(s, resolved.config[s.key]);
      lines.push(
        `  ${s.name.slice(2).padEnd(width)}  ${value.padEnd(24)}  ${describeOrigin(s, resolved.origins[s.key])}`,
      );
    }
  }
  lines.push('herald config check: the configuration is valid');
  console.log(maskSecrets(lines.join('\n')));
});

configCommand
  .command('table')
  .description("print every serve setting as the README's Markdown configuration table")
  .action(() => {
    console.log(settingsMarkdown());
  });

/** What `serve` would refuse at start that the settings alone do not show: files, keys, open mode. */
function deeperProblems({ config }: ResolvedConfig): string[] {
  const problems: string[] = [];
  try {
    loadTls(config);
  } catch (error) {
    problems.push((error as Error).message);
  }
  try {
    const options = heraldOptions(config);
    if (options.auth === undefined && !config.insecure && !isLoopback(config.host)) {
      problems.push(
        `--host ${config.host}: open development mode (no JWT key configured) is refused on a non-loopback address; configure --jwt-secret, --jwt-public-key or --jwks-url, or pass --insecure if this network is yours alone`,
      );
    }
  } catch (error) {
    problems.push((error as Error).message);
  }
  return problems;
}

/** `HERALD_PROT`: a variable that looks like a setting's but is none, with the one it is near. */
function unknownVariables(env: Readonly<Record<string, string | undefined>>): string[] {
  const known = SETTINGS.flatMap((s) => s.env);
  const extra = new Set(['HERALD_URL', 'HERALD_TOKEN', 'HERALD_CONFIG']);
  return Object.keys(env)
    .filter((name) => name.startsWith('HERALD_') && !known.includes(name) && !extra.has(name))
    .flatMap((name) => {
      const near = closest(name, known);
      return near === undefined ? [] : [`${name} is not a setting (did you mean ${near}?); it is ignored`];
    });
}

// token

program
  .command('token')
  .description('mint an HS256 token with the hub secret, for development and tests')
  .option('--secret <secret>', `signing secret${secretEnv('HERALD_JWT_SECRET')}`)
  .option('--tenant <tenant>', 'tenant the token belongs to')
  .option('--subscribe <selector>', 'subscribe grant: which private events it may see (repeatable)', collect)
  .option('--publish <selector>', 'publish grant (repeatable)', collect)
  .option('--permission <name>', 'permission, e.g. to see redacted fields (repeatable)', collect)
  .option('--admin', 'every right in every tenant')
  .option('--subject <sub>', 'subject (sub claim)')
  .option('--ttl <duration>', 'lifetime, e.g. 15m or 1h', DEFAULT_TOKEN_TTL)
  .option('--audience <aud>', 'audience (aud claim)')
  .option('--issuer <iss>', 'issuer (iss claim)')
  .action(async (options) => {
    const secret = options.secret || process.env.HERALD_JWT_SECRET;
    if (!secret)
      throw new UsageError('a secret is required: --secret or HERALD_JWT_SECRET (the hub’s --jwt-secret)');
    let ttlMs: number;
    try {
      ttlMs = parseDuration(options.ttl);
    } catch (error) {
      throw new UsageError(`--ttl: ${(error as Error).message}`);
    }
    if (ttlMs < 1000)
      throw new UsageError(`--ttl: ${JSON.stringify(options.ttl)} is too short; use 1s or more`);
    console.log(await mintToken({ ...options, secret, ttlMs }));
  });

// publish, listen, health

/** `--topic is required`, once commander has refused any unknown option. */
function required(options: Record<string, unknown>, names: readonly string[]): void {
  const missing = names.filter((name) => options[name] === undefined);
  if (missing.length > 0) throw new UsageError(missing.map((name) => `--${name} is required`));
}

const urlOption = () =>
  new Option('--url <url>', 'hub URL (env: HERALD_URL)').default(HUB_URL, maskUrl(HUB_URL));
const tokenOption = () => new Option('--token <jwt>', `bearer token${secretEnv('HERALD_TOKEN')}`);

program
  .command('publish')
  .description('publish one event to a running hub; prints its id')
  // Required, but checked in the action: commander would report a missing --topic before an
  // unknown option, and `--topc t` would then say "--topic is required" instead of naming the typo.
  .option('--topic <topic>', 'topic (repeat for alternates; the first is canonical; required)', collect)
  .option('--data <json>', 'event data: JSON, or a plain string when it is not JSON (required)')
  .option('--type <type>', 'event type (the SSE event: field)')
  .option('--id <id>', 'event id (default: assigned by the hub)')
  .option('--key <key>', 'latest-value key, for conflation')
  .option('--priority <priority>', 'normal or high')
  .option('--tag <name=value>', 'tag (repeatable)', collect)
  .option('--private', 'only subscribers granted the topic may see it')
  .addOption(urlOption())
  .addOption(tokenOption())
  .action(async (options) => {
    required(options, ['topic', 'data']);
    console.log(await publishCommand({ ...options, token: options.token || process.env.HERALD_TOKEN }));
  });

program
  .command('listen')
  .description('print events as JSON lines, resuming after disconnects')
  .option('--topic <selector>', 'topic, * or URI template (repeatable; required)', collect)
  .option('--type <type>', 'only events of this type (repeatable)', collect)
  .option('--tag <name=value>', 'only events with this tag (repeatable)', collect)
  .option('--last-event-id <id>', 'resume after this event id')
  .option('--count <n>', 'exit after n events', (value) => {
    if (!/^\s*\d+\s*$/.test(value) || Number(value) < 1)
      throw new UsageError(
        `--count: ${JSON.stringify(value)} is not a whole number of 1 or more`,
        'herald listen',
      );
    return Number(value);
  })
  .addOption(urlOption())
  .addOption(tokenOption())
  .action(async (options) => {
    required(options, ['topic']);
    const stop = new AbortController();
    process.once('SIGINT', () => stop.abort());
    process.once('SIGTERM', () => stop.abort());
    await listenCommand({
      ...options,
      token: options.token || process.env.HERALD_TOKEN,
      signal: stop.signal,
    });
  });

program
  .command('health')
  .description(
    "ask a hub's /readyz whether it is ready: exit 0 when it is (ok, or degraded but serving), 1 when not; for container health checks",
  )
  .addOption(urlOption())
  .option('--timeout <duration>', 'how long to wait for the answer', DEFAULT_HEALTH_TIMEOUT)
  .option('--strict', 'count degraded (serving alone on memory, --on-broker-down local) as unhealthy')
  .action(async (options) => {
    let timeoutMs: number;
    try {
      timeoutMs = parseDuration(options.timeout);
    } catch (error) {
      throw new UsageError(`--timeout: ${(error as Error).message}`);
    }
    const result = await healthCommand({
      url: options.url,
      timeoutMs: Math.max(1, timeoutMs),
      strict: options.strict,
    });
    console.log(maskSecrets(result.line));
    process.exitCode = result.healthy ? 0 : 1;
  });

// Errors

/** Commander's parse errors, in the words of this CLI; `undefined` for help and --version. */
function usageProblem(command: Command, error: CommanderError): string | undefined {
  const quoted = /'([^']*)'/.exec(error.message)?.[1] ?? '';
  const flagName = quoted.split(/[ ,]/)[0] ?? quoted;
  const flags = command.options.flatMap((option) => (option.long === undefined ? [] : [option.long]));
  switch (error.code) {
    case 'commander.unknownOption': {
      const near = closest(quoted, flags);
      return `unknown option ${quoted}${near === undefined ? '' : ` (did you mean ${near}?)`}`;
    }
    case 'commander.unknownCommand': {
      const near = closest(
        quoted,
        command.commands.map((c) => c.name()),
      );
      return `unknown command ${JSON.stringify(quoted)}${near === undefined ? '' : ` (did you mean ${near}?)`}`;
    }
    case 'commander.optionMissingArgument': {
      const s = SETTINGS.find((candidate) => candidate.name === flagName);
      const example =
        s !== undefined && s.defaultValue !== undefined && formatValue(s, s.defaultValue) !== 'none'
          ? ` (e.g. ${flagName} ${formatValue(s, s.defaultValue)})`
          : '';
      return `${flagName} needs a value${example}`;
    }
    case 'commander.missingMandatoryOptionValue':
      return `${flagName} is required`;
    case 'commander.excessArguments': {
      const extra = command.args.slice(command.registeredArguments.length);
      return `unexpected argument ${extra.map((a) => JSON.stringify(maskUrl(a))).join(', ')}: options start with --`;
    }
    case 'commander.invalidArgument':
    case 'commander.conflictingOption':
    case 'commander.missingArgument':
      return error.message.replace(/^error: /, '');
    case 'commander.help':
    case 'commander.helpDisplayed':
    case 'commander.version':
      return undefined;
    default:
      return error.message.replace(/^error: /, '');
  }
}

/** The command whose action runs, for the name in front of an error. */
let running: Command = program;
program.hook('preAction', (_, actionCommand) => {
  running = actionCommand;
});

const ParseExit = class extends Error {
  readonly command: Command;
  readonly error: CommanderError;
  constructor(command: Command, error: CommanderError) {
    super(error.message);
    this.command = command;
    this.error = error;
  }
};

for (const command of allCommands(program)) {
  command.configureOutput({ outputError: () => {} });
  command.exitOverride((error) => {
    throw new ParseExit(command, error);
  });
}

function allCommands(command: Command): Command[] {
  return [command, ...command.commands.flatMap(allCommands)];
}

const JWT_SHAPE = /\beyJ[\w-]*\.[\w-]+\.[\w-]*/g;

function report(path: string, problems: readonly string[], exitCode: number, helpOf?: string): never {
  // Messages are built with credentials masked; a token pasted where it does not belong is too.
  for (const problem of problems)
    process.stderr.write(`${path}: ${maskUrlsIn(problem).replace(JWT_SHAPE, '[redacted]')}\n`);
  if (helpOf !== undefined) process.stderr.write(`see ${helpOf} --help\n`);
  process.exit(exitCode);
}

program.parseAsync().catch((error: unknown) => {
  if (error instanceof ParseExit) {
    const problem = usageProblem(error.command, error.error);
    if (problem === undefined) process.exit(error.error.exitCode);
    const path = commandPath(error.command);
    report(path, [problem], 2, path);
  }
  const path = (error instanceof UsageError ? error.path : undefined) ?? commandPath(running);
  if (error instanceof UsageError || error instanceof ConfigError) report(path, error.problems, 2, path);
  // A failure while running: `herald: …`, as scripts and tests have long matched it.
  report('herald', [error instanceof Error ? error.message : String(error)], 1);
});
