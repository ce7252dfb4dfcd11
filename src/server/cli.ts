#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { createLogger, maskSecrets } from '../observability/logger.ts';
import { logDestination } from '../observability/pretty.ts';
import {
  adminConnections,
  adminDisconnect,
  adminHistory,
  adminNodes,
  adminPresence,
  DEFAULT_ADMIN_HISTORY_LIMIT,
} from './admin-command.ts';
import { addSettings, collect, resolveFromCli, secretEnv, tokenOption, urlOption } from './cli-flags.ts';
import { required, run, UsageError } from './cli-usage.ts';
import { DEFAULT_HEALTH_TIMEOUT, healthCommand } from './health-command.ts';
import { listenCommand } from './listen-command.ts';
import { publishCommand } from './publish-command.ts';
import { parseDuration } from './setting-values.ts';
import { settingsMarkdown } from './settings-text.ts';
import { DEFAULT_TOKEN_TTL, mintToken } from './token-command.ts';
import { runWorkers } from './workers.ts';
import { capYoungGeneration } from './young-generation.ts';

/**
 * The `herald` command: each subcommand's flags and help, wired to the module that does its work.
 * A mistake in how it is called exits 2 and a failure while running exits 1, as cli-usage.ts
 * tells them; no help screen, message or `config check` prints a secret's value.
 */

// Streams get a retry hint and the process exits well inside the 10 s most orchestrators allow.
const SHUTDOWN_DEADLINE_MS = 4_500;

const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

const program = new Command('herald')
  .description('Herald: a real-time event hub over Server-Sent Events')
  .version(version)
  .showSuggestionAfterError(false);

// serve

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
  // Before the hub starts: its young generation would otherwise grow past the bound on a burst.
  capYoungGeneration();
  if (config.workers > 1) return runWorkers(config, version);
  const logger = createLogger({ level: config.logLevel, ...logDestination(config.logFormat) });
  // Loaded here, not with the CLI: the primary of --workers never serves, and is ~8 MiB smaller without it.
  const { serve } = await import('./serve.ts');
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
  const { configCheck } = await import('./config-command.ts');
  console.log(configCheck(resolveFromCli(flags)));
});

configCommand
  .command('table')
  .description('print every serve setting as the Markdown configuration table of docs/configuration.md')
  .action(() => {
    console.log(settingsMarkdown());
  });

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

// admin

/** A flag's value that must be a whole number of 1 or more, refused while the flags are parsed. */
function wholeNumber(value: string, flag: string, path: string): number {
  if (!/^\s*\d+\s*$/.test(value) || Number(value) < 1)
    throw new UsageError(`${flag}: ${JSON.stringify(value)} is not a whole number of 1 or more`, path);
  return Number(value);
}

const adminCommand = program
  .command('admin')
  .description('act on a running hub with admin credentials')
  .addHelpText(
    'after',
    '\nSee herald admin <command> --help (history, nodes, connections, disconnect, presence).',
  );

adminCommand
  .command('history')
  .description("print a topic's history, newest first, as JSON lines (admin credentials)")
  .option('--topic <selector>', 'topic, * or URI template (repeatable; required)', collect)
  .option('--before <id>', 'only events older than this id (or the position a previous run named)')
  .option(
    '--limit <n>',
    'print at most n events',
    (value) => wholeNumber(value, '--limit', 'herald admin history'),
    DEFAULT_ADMIN_HISTORY_LIMIT,
  )
  .option('--tenant <tenant>', "another tenant than the token's, or * for every tenant")
  .addOption(urlOption())
  .addOption(tokenOption())
  .action(async (options) => {
    required(options, ['topic']);
    await adminHistory({ ...options, token: options.token || process.env.HERALD_TOKEN });
  });

adminCommand
  .command('nodes')
  .description(
    "print every live node of the hub's cluster with its figures, as JSON lines (admin credentials)",
  )
  .addOption(urlOption())
  .addOption(tokenOption())
  .action(async (options) => {
    await adminNodes({ ...options, token: options.token || process.env.HERALD_TOKEN });
  });

adminCommand
  .command('connections')
  .description('print the open streams of every node, oldest first, as JSON lines (admin credentials)')
  .option('--tenant <tenant>', 'only this tenant (* for every tenant; a tenant admin sees its own)')
  .option('--subject <subject>', 'only streams of this token subject (sub)')
  .option('--topic <topic>', 'only streams whose selectors match this topic')
  .option('--limit <n>', 'print at most n streams (up to 10000; default 100)', (value) =>
    wholeNumber(value, '--limit', 'herald admin connections'),
  )
  .addOption(urlOption())
  .addOption(tokenOption())
  .action(async (options) => {
    await adminConnections({ ...options, token: options.token || process.env.HERALD_TOKEN });
  });

adminCommand
  .command('disconnect')
  .description(
    'end streams on every node (each told why with herald.disconnect); prints how many (admin credentials)',
  )
  .option('--id <connection>', 'one stream, by the id herald admin connections prints')
  .option('--subject <subject>', 'every stream of this token subject')
  .option('--tenant <tenant>', 'every stream of this tenant, or only within it with --id/--subject')
  .option('--reason <text>', 'why, as the client is told')
  .option('--no-reconnect', 'tell the clients not to reconnect with the same credential')
  .addOption(urlOption())
  .addOption(tokenOption())
  .action(async (options) => {
    if (options.id === undefined && options.subject === undefined && options.tenant === undefined) {
      throw new UsageError(
        'say which streams to end: --id, --subject or --tenant',
        'herald admin disconnect',
      );
    }
    await adminDisconnect({ ...options, token: options.token || process.env.HERALD_TOKEN });
  });

adminCommand
  .command('presence')
  .description('print who is on a topic across the cluster, as one JSON object')
  .option('--topic <topic>', 'one topic (required)')
  .option('--tenant <tenant>', "another tenant than the token's (an admin token of the default tenant only)")
  .addOption(urlOption())
  .addOption(tokenOption())
  .action(async (options) => {
    required(options, ['topic']);
    await adminPresence({ ...options, token: options.token || process.env.HERALD_TOKEN });
  });

program
  .command('health')
  .description(
    "ask a hub's /readyz whether it is ready: exit 0 when it is (ok, or degraded but serving), 1 when not; for container health checks",
  )
  .addOption(urlOption())
  .option('--timeout <duration>', 'how long to wait for the answer', DEFAULT_HEALTH_TIMEOUT)
  .option(
    '--strict',
    'count degraded (riding out a broker outage alone or rejoining, --on-broker-down local) as unhealthy',
  )
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

run(program);
