import { createRequire } from 'node:module';
import type { DestinationStream, Logger, LoggerOptions } from 'pino';

type Pino = typeof import('pino');
const require = createRequire(import.meta.url);
let loaded: Pino | undefined;

/**
 * pino, loaded by the first `createLogger` call (`herald serve` makes one as it starts), so that
 * `import 'herald'` does not load it. Loaded with `require` so that `createLogger` stays
 * synchronous (pino is a CommonJS package; bundlers follow `createRequire`).
 */
function loadPino(): Pino {
  loaded ??= require('pino') as Pino;
  return loaded;
}

/**
 * What Herald logs through: pino's shape, so a pino logger (or a child of the host app's) fits
 * as it is, and so does anything else with these four methods.
 */
export interface HeraldLogger {
  debug(fields: object, message?: string): void;
  info(fields: object, message?: string): void;
  warn(fields: object, message?: string): void;
  error(fields: object, message?: string): void;
}

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * Field names that may hold a credential, at any depth of a logged object (`session.cookie`,
 * `upstream.headers.Authorization`, `config.mercurePublisherJwtKey`): their values are censored
 * however the line was built. pino's own `redact` takes fixed paths (a `*` stands for one level),
 * so nesting one level deeper than foreseen would print a secret; a walk by name has no such gap.
 * Query parameters in URLs are handled by `url` serialization below.
 */
export const SECRET_FIELD =
  /authori[sz]ation|cookie|token|secret|passw(?:or)?d|credential|jwt.?key|private.?key|api.?key/i;

/** How deep a logged object is searched; deeper parts are replaced, never printed unsearched. */
const MAX_DEPTH = 8;

const CENSOR = '[redacted]';

/** Query parameters that carry a credential (EventSource cannot send a header, so they exist). */
const SECRET_PARAMETERS = /([?&](?:access_token|authorization|token|jwt)=)[^&#\s"]*/gi;
/** Three base64url parts, the first a JSON header: a JWT, wherever it ended up in a message. */
const JWT_SHAPE = /\beyJ[\w-]*\.[\w-]+\.[\w-]*/g;

/** A message or URL with credentials masked: tokens in query parameters and JWT-shaped strings. */
export function maskSecrets(text: string): string {
  return text.replace(SECRET_PARAMETERS, `$1${CENSOR}`).replace(JWT_SHAPE, CENSOR);
}

export interface HeraldLoggerOptions {
  /** Default `info`. */
  readonly level?: LogLevel;
  /** Where the JSON lines go. Default: stdout. */
  readonly destination?: DestinationStream;
  /** Fields on every line, e.g. `{ node: 'host:1234' }`. */
  readonly base?: Record<string, unknown>;
}

/**
 * A pino logger that writes one JSON object per line, with credentials censored: fields named
 * like `SECRET_FIELD` at any depth, secrets in any `url` or `path` field, and JWT-shaped text in
 * messages and error messages.
 */
export function createLogger(options: HeraldLoggerOptions = {}): Logger {
  const { pino } = loadPino();
  const settings: LoggerOptions = {
    level: options.level ?? 'info',
    base: { pid: process.pid, ...options.base },
    serializers: {
      url: (value: unknown) => (typeof value === 'string' ? maskSecrets(value) : value),
      path: (value: unknown) => (typeof value === 'string' ? maskSecrets(value) : value),
      err: (error: unknown) => {
        const serialized = pino.stdSerializers.err(error as Error);
        return {
          ...serialized,
          message: maskSecrets(String(serialized.message)),
          stack: maskSecrets(String(serialized.stack)),
        };
      },
    },
    hooks: {
      logMethod(args, method) {
        // pino's `(fields, message)` and `(message)` forms: the message is the first string.
        const at = typeof args[0] === 'string' ? 0 : 1;
        const message = args[at];
        if (typeof message === 'string') args[at] = maskSecrets(message);
        method.apply(this, args);
      },
    },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: {
      // "level":"warn", not "level":40: read by people and by log shippers alike.
      level: (label) => ({ level: label }),
      log: (object) => censor(object, 0) as Record<string, unknown>,
    },
  };
  return options.destination === undefined ? pino(settings) : pino(settings, options.destination);
}

/**
 * A copy of `value` with every field named like a credential censored, and JWT-shaped strings
 * masked. Objects without such a field are copied anyway: log lines are few (stream opened and
 * closed, refused requests), never per event.
 */
function censor(value: unknown, depth: number): unknown {
  if (typeof value === 'string') return maskSecrets(value);
  if (typeof value !== 'object' || value === null) return value;
  if (depth >= MAX_DEPTH) return '[too deep]';
  if (value instanceof Error) return value; // the `err` serializer masks it
  if (Array.isArray(value)) return value.map((item) => censor(item, depth + 1));
  const copy: Record<string, unknown> = {};
  for (const [name, field] of Object.entries(value)) {
    copy[name] = SECRET_FIELD.test(name) ? CENSOR : censor(field, depth + 1);
  }
  return copy;
}
