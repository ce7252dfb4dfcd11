import type { Command, CommanderError } from 'commander';
import { ConfigError } from './config.ts';
import { maskUrl, maskUrlsIn } from './masking.ts';
import { SETTINGS } from './settings.ts';
import { formatValue } from './settings-text.ts';
import { closest } from './suggestions.ts';

/**
 * How `herald` ends when it cannot do what it was asked. A mistake in how it is called (an
 * unknown flag, a missing or bad value, a setting that does not parse) prints what is wrong in a
 * line or two, with the nearest flag and where to look, and exits 2; a failure while running (a
 * port in use, a hub that does not answer) exits 1. Nothing printed here holds a credential.
 */

/** A mistake in how a command was called: printed with a pointer to its `--help`, exit 2. */
export class UsageError extends Error {
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

/** `--topic is required`, once commander has refused any unknown option. */
export function required(options: Record<string, unknown>, names: readonly string[]): void {
  const missing = names.filter((name) => options[name] === undefined);
  if (missing.length > 0) throw new UsageError(missing.map((name) => `--${name} is required`));
}

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

const ParseExit = class extends Error {
  readonly command: Command;
  readonly error: CommanderError;
  constructor(command: Command, error: CommanderError) {
    super(error.message);
    this.command = command;
    this.error = error;
  }
};

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

/** Runs `program` on the process's arguments; any error it ends with is reported as above. */
export async function run(program: Command): Promise<void> {
  /** The command whose action runs, for the name in front of an error. */
  let running: Command = program;
  program.hook('preAction', (_, actionCommand) => {
    running = actionCommand;
  });
  for (const command of allCommands(program)) {
    command.configureOutput({ outputError: () => {} });
    command.exitOverride((error) => {
      throw new ParseExit(command, error);
    });
  }
  await program.parseAsync().catch((error: unknown) => {
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
}
