#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { createLogger } from '../observability/logger.ts';
import { parseDuration, resolveConfig, SETTINGS } from './config.ts';
import { listenCommand } from './listen-command.ts';
import { publishCommand } from './publish-command.ts';
import { serve } from './serve.ts';
import { mintToken } from './token-command.ts';
import { runWorkers } from './workers.ts';

// Streams get a retry hint and the process exits well inside the 10 s most orchestrators allow.
const SHUTDOWN_DEADLINE_MS = 4_500;
const DEFAULT_URL = process.env.HERALD_URL ?? 'http://127.0.0.1:8080';

const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
  version: string;
};
const collect = (value: string, previous: string[] = []) => [...previous, value];

const program = new Command('herald')
  .description('Herald: a real-time event hub over Server-Sent Events')
  .version(version)
  .showHelpAfterError();

const serveCommand = program
  .command('serve')
  .description('run the hub (memory broker by default: no other service needed)')
  .action(async (flags: Record<string, unknown>) => {
    const config = resolveConfig(flags);
    if (config.workers > 1) return runWorkers(config, version);
    const logger = createLogger({ level: config.logLevel });
    const running = await serve(config, logger);
    const broker = running.herald.degraded
      ? `memory, ${running.herald.degraded}`
      : running.herald.broker.kind;
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
for (const setting of SETTINGS) {
  const option = new Option(setting.flag, `${setting.description} [env: ${setting.env.join(', ')}]`);
  serveCommand.addOption(setting.repeatable ? option.argParser(collect) : option);
}

program
  .command('token')
  .description('mint an HS256 token with the hub secret, for development and tests')
  .option('--secret <secret>', 'signing secret [env: HERALD_JWT_SECRET]', process.env.HERALD_JWT_SECRET)
  .option('--tenant <tenant>', 'tenant the token belongs to')
  .option('--subscribe <selector>', 'subscribe grant: which private events it may see (repeatable)', collect)
  .option('--publish <selector>', 'publish grant (repeatable)', collect)
  .option('--permission <name>', 'permission, e.g. to see redacted fields (repeatable)', collect)
  .option('--admin', 'every right in every tenant')
  .option('--subject <sub>', 'subject (sub claim)')
  .option('--ttl <duration>', 'lifetime, e.g. 15m or 1h', '1h')
  .option('--audience <aud>', 'audience (aud claim)')
  .option('--issuer <iss>', 'issuer (iss claim)')
  .action(async (options) => {
    if (!options.secret) throw new Error('a secret is required: --secret or HERALD_JWT_SECRET');
    console.log(await mintToken({ ...options, ttlMs: parseDuration(options.ttl) }));
  });

program
  .command('publish')
  .description('publish one event to a running hub; prints its id')
  .requiredOption('--topic <topic>', 'topic (repeat for alternates; the first is canonical)', collect)
  .requiredOption('--data <json>', 'event data: JSON, or a plain string when it is not JSON')
  .option('--type <type>', 'event type (the SSE event: field)')
  .option('--id <id>', 'event id (default: assigned by the hub)')
  .option('--key <key>', 'latest-value key, for conflation')
  .option('--priority <priority>', 'normal or high')
  .option('--tag <name=value>', 'tag (repeatable)', collect)
  .option('--private', 'only subscribers granted the topic may see it')
  .option('--url <url>', `hub URL [env: HERALD_URL]`, DEFAULT_URL)
  .option('--token <jwt>', 'bearer token [env: HERALD_TOKEN]', process.env.HERALD_TOKEN)
  .action(async (options) => {
    console.log(await publishCommand(options));
  });

program
  .command('listen')
  .description('print events as JSON lines, resuming after disconnects')
  .requiredOption('--topic <selector>', 'topic, * or URI template (repeatable)', collect)
  .option('--type <type>', 'only events of this type (repeatable)', collect)
  .option('--tag <name=value>', 'only events with this tag (repeatable)', collect)
  .option('--last-event-id <id>', 'resume after this event id')
  .option('--count <n>', 'exit after n events', (value) => Number.parseInt(value, 10))
  .option('--url <url>', `hub URL [env: HERALD_URL]`, DEFAULT_URL)
  .option('--token <jwt>', 'bearer token [env: HERALD_TOKEN]', process.env.HERALD_TOKEN)
  .action(async (options) => {
    const stop = new AbortController();
    process.once('SIGINT', () => stop.abort());
    process.once('SIGTERM', () => stop.abort());
    await listenCommand({ ...options, signal: stop.signal });
  });

program.parseAsync().catch((error: unknown) => {
  console.error(`herald: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
