import { availableParallelism } from 'node:os';
import { z } from 'zod';
import { MIN_SECRET_BYTES, weakSecretProblem } from '../auth/jwt.ts';
import { DEFAULT_HISTORY_MAX_AGE_MS, DEFAULT_HISTORY_SIZE } from '../backends/history.ts';
import {
  backendNamed,
  backendUrlPattern,
  brokerUrlHint,
  brokerUrlHintWithSchemes,
  brokerUrlPattern,
} from '../backends/registry.ts';
import { MAX_TOPIC_LENGTH } from '../core/event.ts';
import { DEFAULT_HUB_OPTIONS } from '../core/hub.ts';
import { DEFAULT_LIMITS } from '../http/limits.ts';
import { TrustedProxies } from '../http/trust-proxy.ts';
import { LOG_LEVELS, maskSecrets } from '../observability/logger.ts';

/**
 * `herald serve` settings. Each has a flag and a `HERALD_…` environment variable named after it,
 * and may be set in a `--config` file (flags win over variables, which win over the file). One
 * table (`SETTINGS`) drives the parser, `--help`, `herald config check` and the README's
 * configuration table (`herald config table`; test/server/defaults-doc.test.ts checks the README
 * against it), so they cannot drift apart.
 *
 * Every message about a value is in plain words and names what is expected; a value is quoted
 * back with any credential in it masked, and a secret's value never.
 */

const UNITS_MS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const UNITS_BYTES: Readonly<Record<string, number>> = {
  b: 1,
  kb: 1024,
  kib: 1024,
  mb: 1024 ** 2,
  mib: 1024 ** 2,
};

/**
 * A value as messages, `--help` and `config check` show it: quoted, with the credentials of a URL
 * (`redis://:password@…`, `nats://token@…`) and token-like query parameters masked.
 */
export function shown(value: unknown): string {
  return JSON.stringify(maskUrl(String(value)));
}

/** A URL with its user info and token-like parameters masked; other text as it is. */
export function maskUrl(text: string): string {
  let masked = text;
  try {
    const url = new URL(text);
    if (url.host !== '' && (url.username !== '' || url.password !== '')) {
      // A user name alone may be a token (nats://token@host); with a password it is only a name.
      if (url.password !== '') url.password = '***';
      else url.username = '***';
      masked = url.toString();
    }
  } catch {
    // Not a URL (`redis//:pw@host`, a typo): whatever sits between // and @ may be a password.
    masked = text.replace(/^([^\s@]*\/\/)[^@/\s]*@/, '$1***@');
  }
  return maskSecrets(masked);
}

const refuse = (ctx: z.RefinementCtx, message: string) => {
  ctx.addIssue({ code: 'custom', message });
  return z.NEVER;
};

function parseMs(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? Math.round(value) : undefined;
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/i.exec(String(value));
  if (match === null) return undefined;
  return Math.round(Number(match[1]) * (UNITS_MS[(match[2] ?? 'ms').toLowerCase()] ?? 1));
}

function parseBytes(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? Math.round(value) : undefined;
  const match = /^\s*(\d+(?:\.\d+)?)\s*(b|kb|kib|mb|mib)?\s*$/i.exec(String(value));
  if (match === null) return undefined;
  return Math.round(Number(match[1]) * (UNITS_BYTES[(match[2] ?? 'b').toLowerCase()] ?? 1));
}

/** `500ms`, `15s`, `5m`, `24h`, `7d`, or a plain number of milliseconds; at least `min` ms. */
const duration = (min = 0) =>
  z.unknown().transform((value, ctx) => {
    const ms = parseMs(value);
    if (ms === undefined)
      return refuse(ctx, `${shown(value)} is not a duration; use e.g. 500ms, 15s, 5m, 24h or 7d`);
    if (ms < min)
      return refuse(
        ctx,
        `${shown(value)} is too short; use ${min <= 1 ? 'more than 0' : `at least ${formatDuration(min)}`}`,
      );
    return ms;
  });

/** `512KiB`, `1MiB`, `4mb`, or a plain number of bytes (kb and mb are binary here too); more than 0. */
const size = z.unknown().transform((value, ctx) => {
  const bytes = parseBytes(value);
  if (bytes === undefined)
    return refuse(ctx, `${shown(value)} is not a size; use e.g. 512KiB, 1MiB or a number of bytes`);
  if (bytes < 1) return refuse(ctx, `${shown(value)} is too small; use more than 0 bytes`);
  return bytes;
});

const wholeNumber = (min: number, max?: number, zero?: string) =>
  z.unknown().transform((value, ctx) => {
    const n =
      typeof value === 'number'
        ? value
        : typeof value === 'string' && /^\s*\d+\s*$/.test(value)
          ? Number(value)
          : Number.NaN;
    if (Number.isInteger(n) && n >= min && (max === undefined || n <= max)) return n;
    const range = max === undefined ? `of ${min} or more` : `from ${min} to ${max}`;
    return refuse(ctx, `${shown(value)} is not a whole number ${range}${zero ? ` (0: ${zero})` : ''}`);
  });
const count = wholeNumber(1);
/** 0 turns the limit off. */
const limit = wholeNumber(0, undefined, 'no limit');

const flag = z.unknown().transform((value, ctx) => {
  if (typeof value === 'boolean') return value;
  if (/^\s*(1|true|yes|on)\s*$/i.test(String(value))) return true;
  if (/^\s*(0|false|no|off|)\s*$/i.test(String(value))) return false;
  return refuse(ctx, `${shown(value)} is not true or false; use on or off (or true/false, yes/no, 1/0)`);
});

/** One of `values`, in any case; a near miss is named. */
const choice = <const T extends readonly string[]>(values: T) =>
  z.unknown().transform((value, ctx): T[number] => {
    const found = values.find((candidate) => candidate.toLowerCase() === String(value).trim().toLowerCase());
    if (found !== undefined) return found;
    const near = closest(String(value), values);
    return refuse(
      ctx,
      `${shown(value)} is not ${orList(values)}${near === undefined ? '' : ` (did you mean ${near}?)`}`,
    );
  });

/** Text that is not empty (a number in a config file is taken as its digits). */
const text = z.unknown().transform((value, ctx) => {
  if ((typeof value === 'string' && value !== '') || typeof value === 'number') return String(value);
  return refuse(ctx, typeof value === 'string' ? 'is empty; give a value' : 'must be text');
});

const pattern = (re: RegExp, hint: string) =>
  z.unknown().transform((value, ctx) => {
    if ((typeof value === 'string' || typeof value === 'number') && re.test(String(value)))
      return String(value);
    return refuse(ctx, `use ${hint}; got ${shown(value)}`);
  });

const httpUrl = z.unknown().transform((value, ctx) => {
  try {
    const url = new URL(String(value));
    if (url.protocol === 'http:' || url.protocol === 'https:') return url.toString();
  } catch {
    // Refused below.
  }
  return refuse(ctx, `${shown(value)} is not an http:// or https:// URL`);
});

const listOf = (separator: RegExp) =>
  z.unknown().transform((value, ctx) => {
    if (typeof value !== 'string' && !Array.isArray(value)) return refuse(ctx, 'must be a list of text');
    return (Array.isArray(value) ? value.map(String) : value.split(separator))
      .map((item) => item.trim())
      .filter((item) => item !== '');
  });
const list = listOf(/,/);

/** A number of processes, or `auto`: one per CPU the process may use. */
const workers = z.unknown().transform((value, ctx) => {
  if (/^\s*auto\s*$/i.test(String(value))) return availableParallelism();
  const n =
    typeof value === 'number' ? value : /^\s*\d+\s*$/.test(String(value)) ? Number(value) : Number.NaN;
  if (!Number.isInteger(n) || n < 1 || n > 1024)
    return refuse(ctx, `${shown(value)} is not a number of processes; use 1 to 1024, or auto`);
  return n;
});

const JWT_ALG = /^(HS|RS|PS|ES)(256|384|512)$|^EdDSA$/;
const JWT_ALG_HINT = 'HS256, HS384, HS512, RS256…, PS256…, ES256… or EdDSA';
const COOKIE_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const COOKIE_HINT = "letters, digits and !#$%&'*+-.^_`|~ for a cookie name";

export const LOG_FORMATS = ['auto', 'pretty', 'json'] as const;

const schema = z.object({
  port: wholeNumber(0, 65_535),
  workers,
  host: text,
  tlsCert: text.optional(),
  tlsKey: text.optional(),
  broker: pattern(brokerUrlPattern(), brokerUrlHintWithSchemes()),
  onBrokerDown: choice(['fail', 'local']),
  stream: pattern(/^[A-Za-z0-9_-]{1,64}$/, '1–64 letters, digits, - and _'),
  // A bridge spec may hold commas: several in the environment are separated by newlines or ;.
  bridge: listOf(/[;\n]/),
  bridgeRedis: pattern(backendUrlPattern('redis'), backendNamed('redis')?.example ?? '').optional(),
  bridgeNats: pattern(backendUrlPattern('nats'), backendNamed('nats')?.example ?? '').optional(),
  historySize: count,
  historyMaxAge: duration(1),
  heartbeat: duration(10),
  retry: duration(),
  idleTimeout: duration(),
  maxLifetime: duration(),
  maxDataSize: size,
  maxBodySize: size,
  maxBatch: count,
  maxTopics: count,
  maxSelectorLength: wholeNumber(1, MAX_TOPIC_LENGTH),
  outboxMaxEvents: count,
  outboxMaxBytes: size,
  overflowPolicy: choice(['disconnect', 'drop-oldest']),
  jwtSecret: text.optional(),
  jwtPublicKey: text.optional(),
  jwksUrl: httpUrl.optional(),
  jwtAudience: text.optional(),
  jwtIssuer: text.optional(),
  jwtLeeway: duration(),
  anonymous: flag,
  cookieName: pattern(COOKIE_NAME, COOKIE_HINT),
  corsOrigin: list,
  mercure: flag,
  mercurePublisherJwtKey: text.optional(),
  mercurePublisherJwtAlg: pattern(JWT_ALG, JWT_ALG_HINT).optional(),
  mercurePublisherJwksUrl: httpUrl.optional(),
  mercureSubscriberJwtKey: text.optional(),
  mercureSubscriberJwtAlg: pattern(JWT_ALG, JWT_ALG_HINT).optional(),
  mercureSubscriberJwksUrl: httpUrl.optional(),
  mercureCookieName: pattern(COOKIE_NAME, COOKIE_HINT),
  mercurePublishOrigin: list,
  mercureSubscriptions: flag,
  privateByDefault: flag,
  reauthLead: duration(),
  insecure: flag,
  ipConnectionRate: limit,
  ipConnectionBurst: limit,
  maxStreamsPerIp: limit,
  maxStreamsPerSubject: limit,
  maxStreamsPerTenant: limit,
  publishRate: limit,
  publishBurst: limit,
  logLevel: choice(LOG_LEVELS),
  logFormat: choice(LOG_FORMATS),
  metricsPublic: flag,
  trustProxy: list,
  headersTimeout: duration(1),
  testOnlyAllowWeakSecrets: flag,
});

/** Every setting, checked together where one depends on another. */
const checked = schema.superRefine((config, ctx) => {
  try {
    new TrustedProxies(config.trustProxy);
  } catch (error) {
    ctx.addIssue({ code: 'custom', path: ['trustProxy'], message: (error as Error).message });
  }
  if (config.testOnlyAllowWeakSecrets) return;
  const secrets: [Key, string | undefined][] = [
    ['jwtSecret', config.jwtSecret],
    ['mercurePublisherJwtKey', hmacOnly(config.mercurePublisherJwtKey, config.mercurePublisherJwtAlg)],
    ['mercureSubscriberJwtKey', hmacOnly(config.mercureSubscriberJwtKey, config.mercureSubscriberJwtAlg)],
  ];
  for (const [key, secret] of secrets) {
    const bytes = secret === undefined ? MIN_SECRET_BYTES : Buffer.byteLength(secret);
    if (bytes < MIN_SECRET_BYTES) {
      ctx.addIssue({
        code: 'custom',
        path: [key],
        message: `the secret is ${weakSecretProblem(bytes)} (tests only: HERALD_TEST_ONLY_ALLOW_WEAK_SECRETS=1)`,
      });
    }
  }
});

/**
 * Whether a Mercure key is an HMAC secret (as the reference hub reads it): not PEM, and its
 * algorithm, if named, HS*. Anything else is a public key, in PEM text or a file.
 */
export function isHmacKey(key: string, alg: string | undefined): boolean {
  return !key.includes('-----BEGIN') && (alg === undefined || alg.startsWith('HS'));
}

const hmacOnly = (key: string | undefined, alg: string | undefined) =>
  key !== undefined && isHmacKey(key, alg) ? key : undefined;

export type ServeConfig = z.output<typeof schema>;
export type SettingKey = keyof ServeConfig;
type Key = SettingKey;

/** The headings `serve --help`, `config check` and the README group the settings under. */
export const GROUPS = [
  'Server',
  'Broker and history',
  'Streams',
  'Auth',
  'Limits',
  'Mercure',
  'Observability',
  'Tests only',
] as const;
export type Group = (typeof GROUPS)[number];

export interface Setting {
  readonly key: Key;
  /** As commander takes it: `--port <port>`, or `--anonymous` for a switch. */
  readonly flag: string;
  /** `--port`: the flag without its value. */
  readonly name: string;
  /** `HERALD_…` from the flag, then any alias (PORT, HOST). */
  readonly env: readonly string[];
  readonly description: string;
  readonly group: Group;
  /** Repeatable flag; comma-separated in the environment. */
  readonly repeatable: boolean;
  readonly defaultValue: unknown;
  /** A credential: its value is never printed (`(set)` instead), in help, messages or `config check`. */
  readonly secret: boolean;
  /** How its value is written, for `--help`, `config check` and the README. */
  readonly kind: 'duration' | 'size' | 'switch' | 'on-off' | 'list' | 'value';
}

interface SettingOptions {
  readonly aliases?: string[];
  readonly repeatable?: boolean;
  readonly secret?: boolean;
}

function setting(
  group: Group,
  key: Key,
  flag: string,
  defaultValue: unknown,
  description: string,
  options: SettingOptions = {},
): Setting {
  const name = flag.split(' ')[0] as string;
  const placeholder = /<([^>]+)>/.exec(flag)?.[1];
  const repeatable = options.repeatable ?? false;
  return {
    key,
    flag,
    name,
    env: [`HERALD_${name.slice(2).replaceAll('-', '_').toUpperCase()}`, ...(options.aliases ?? [])],
    description,
    group,
    repeatable,
    defaultValue,
    secret: options.secret ?? false,
    kind:
      placeholder === undefined
        ? 'switch'
        : placeholder === 'duration'
          ? 'duration'
          : placeholder === 'size'
            ? 'size'
            : placeholder === 'on|off'
              ? 'on-off'
              : repeatable
                ? 'list'
                : 'value',
  };
}

const H = DEFAULT_HUB_OPTIONS;
const L = DEFAULT_LIMITS;

export const SETTINGS: readonly Setting[] = [
  // Server
  setting('Server', 'port', '--port <port>', 8080, 'port to listen on (0: any free port)', {
    aliases: ['PORT'],
  }),
  setting('Server', 'host', '--host <host>', '127.0.0.1', 'address to listen on', { aliases: ['HOST'] }),
  setting(
    'Server',
    'workers',
    '--workers <n>',
    1,
    'processes serving the port (auto: one per CPU); one log, any worker serves any client',
  ),
  setting(
    'Server',
    'tlsCert',
    '--tls-cert <file>',
    undefined,
    'PEM certificate (chain) for HTTPS with HTTP/2 and HTTP/1.1 on the port: a file, or the PEM text itself',
  ),
  setting(
    'Server',
    'tlsKey',
    '--tls-key <file>',
    undefined,
    'PEM private key of --tls-cert: a file, or the PEM text itself',
    { secret: true },
  ),
  setting(
    'Server',
    'corsOrigin',
    '--cors-origin <origin>',
    [],
    'origin allowed to call the hub from a browser (repeatable)',
    { repeatable: true },
  ),
  setting(
    'Server',
    'trustProxy',
    '--trust-proxy <address>',
    [],
    'reverse proxy (IP, CIDR, loopback, linklocal or uniquelocal) whose Forwarded / X-Forwarded-For header names the client, for per-IP limits (repeatable; default none: anyone can send those headers)',
    { repeatable: true },
  ),
  setting(
    'Server',
    'headersTimeout',
    '--headers-timeout <duration>',
    60_000,
    "time a client has to send a request's headers before a 408 (slow-header floods hold sockets)",
  ),
  // Broker and history
  setting(
    'Broker and history',
    'broker',
    '--broker <url>',
    'memory',
    `${brokerUrlHint()}: where the log lives`,
  ),
  setting(
    'Broker and history',
    'onBrokerDown',
    '--on-broker-down <what>',
    'fail',
    'broker unreachable at start: fail (exit) or local (run on memory, /readyz degraded)',
  ),
  setting(
    'Broker and history',
    'stream',
    '--stream <name>',
    'herald',
    'name of the log on the broker (Redis key prefix, JetStream stream)',
  ),
  setting(
    'Broker and history',
    'historySize',
    '--history-size <events>',
    DEFAULT_HISTORY_SIZE,
    'events kept for replay',
  ),
  setting(
    'Broker and history',
    'historyMaxAge',
    '--history-max-age <duration>',
    DEFAULT_HISTORY_MAX_AGE_MS,
    'how long events are kept for replay',
  ),
  setting(
    'Broker and history',
    'bridge',
    '--bridge <spec>',
    [],
    "publish what arrives on Redis channels or NATS subjects, e.g. 'redis:merchant:*:progress -> merchants/{1}/progress tenant={1}' (repeatable)",
    { repeatable: true },
  ),
  setting(
    'Broker and history',
    'bridgeRedis',
    '--bridge-redis <url>',
    undefined,
    'Redis that redis: bridges listen to (default: the broker if it is Redis, else redis://127.0.0.1:6379)',
  ),
  setting(
    'Broker and history',
    'bridgeNats',
    '--bridge-nats <url>',
    undefined,
    'NATS that nats: bridges listen to (default: the broker if it is NATS, else nats://127.0.0.1:4222)',
  ),
  // Streams
  setting(
    'Streams',
    'heartbeat',
    '--heartbeat <duration>',
    H.heartbeatMs,
    'heartbeat comment interval on quiet streams',
  ),
  setting('Streams', 'retry', '--retry <duration>', H.retryMs, 'reconnection delay hint sent to clients'),
  setting(
    'Streams',
    'idleTimeout',
    '--idle-timeout <duration>',
    H.idleTimeoutMs,
    'close streams without an event for this long (0: never)',
  ),
  setting(
    'Streams',
    'maxLifetime',
    '--max-lifetime <duration>',
    H.maxLifetimeMs,
    'close every stream after 90–100 % of this long, never later (0: never); clients resume',
  ),
  setting(
    'Streams',
    'outboxMaxEvents',
    '--outbox-max-events <events>',
    H.outbox.maxEvents,
    'events queued for a slow client before the overflow policy acts',
  ),
  setting(
    'Streams',
    'outboxMaxBytes',
    '--outbox-max-bytes <size>',
    H.outbox.maxBytes,
    'bytes queued for a slow client before the overflow policy acts',
  ),
  setting(
    'Streams',
    'overflowPolicy',
    '--overflow-policy <policy>',
    H.outbox.policy,
    'disconnect (client resumes from history) or drop-oldest (client gets herald.gap)',
  ),
  // Auth
  setting(
    'Auth',
    'jwtSecret',
    '--jwt-secret <secret>',
    undefined,
    'HS256/384/512 secret that tokens are signed with',
    { secret: true },
  ),
  setting(
    'Auth',
    'jwtPublicKey',
    '--jwt-public-key <file>',
    undefined,
    'PEM public key (RS*, PS*, ES*, EdDSA): a file, or the PEM text itself',
  ),
  setting('Auth', 'jwksUrl', '--jwks-url <url>', undefined, 'JWKS URL to fetch verification keys from'),
  setting('Auth', 'jwtAudience', '--jwt-audience <aud>', undefined, 'required token audience (aud)'),
  setting('Auth', 'jwtIssuer', '--jwt-issuer <iss>', undefined, 'required token issuer (iss)'),
  setting('Auth', 'jwtLeeway', '--jwt-leeway <duration>', 5000, 'clock leeway for exp and nbf'),
  setting(
    'Auth',
    'anonymous',
    '--anonymous',
    false,
    'let requests without a token subscribe, to public events only',
  ),
  setting(
    'Auth',
    'cookieName',
    '--cookie-name <name>',
    'herald_token',
    'cookie a browser sends its token in',
  ),
  setting(
    'Auth',
    'privateByDefault',
    '--private-by-default',
    false,
    'treat every event as private: subscribers see only what their grants allow',
  ),
  setting(
    'Auth',
    'reauthLead',
    '--reauth-lead <duration>',
    H.reauthLeadMs,
    "send herald.reauth this long before a stream's token expires",
  ),
  setting(
    'Auth',
    'insecure',
    '--insecure',
    false,
    'allow open development mode (no key) on a non-loopback address',
  ),
  // Limits
  setting('Limits', 'maxDataSize', '--max-data-size <size>', H.maxDataBytes, 'largest event data'),
  setting('Limits', 'maxBodySize', '--max-body-size <size>', 4 * 1024 * 1024, 'largest publish request body'),
  setting('Limits', 'maxBatch', '--max-batch <events>', H.maxBatch, 'events in one publish request'),
  setting('Limits', 'maxTopics', '--max-topics <n>', 100, 'topic selectors in one subscription'),
  setting(
    'Limits',
    'maxSelectorLength',
    '--max-selector-length <n>',
    MAX_TOPIC_LENGTH,
    'characters in one topic selector',
  ),
  setting(
    'Limits',
    'ipConnectionRate',
    '--ip-connection-rate <n>',
    L.connectionsPerSecondPerIp,
    'requests per second per IP (0: no limit)',
  ),
  setting(
    'Limits',
    'ipConnectionBurst',
    '--ip-connection-burst <n>',
    L.connectionBurstPerIp,
    'requests per IP allowed at once',
  ),
  setting(
    'Limits',
    'maxStreamsPerIp',
    '--max-streams-per-ip <n>',
    L.streamsPerIp,
    'open streams per IP (0: no limit)',
  ),
  setting(
    'Limits',
    'maxStreamsPerSubject',
    '--max-streams-per-subject <n>',
    L.streamsPerSubject,
    'open streams per token subject (0: no limit)',
  ),
  setting(
    'Limits',
    'maxStreamsPerTenant',
    '--max-streams-per-tenant <n>',
    L.streamsPerTenant,
    'open streams per tenant (0: no limit)',
  ),
  setting(
    'Limits',
    'publishRate',
    '--publish-rate <n>',
    L.publishesPerSecondPerSubject,
    'events published per second per subject (0: no limit)',
  ),
  setting(
    'Limits',
    'publishBurst',
    '--publish-burst <n>',
    L.publishBurstPerSubject,
    'events a subject may publish at once',
  ),
  // Mercure
  setting(
    'Mercure',
    'mercure',
    '--mercure <on|off>',
    true,
    'the Mercure protocol at /.well-known/mercure, on the same hub, broker and auth',
  ),
  setting(
    'Mercure',
    'mercurePublisherJwtKey',
    '--mercure-publisher-jwt-key <key>',
    undefined,
    "Mercure publishers' key: an HMAC secret, or a PEM public key (text or file) (default: the --jwt-* keys)",
    { aliases: ['MERCURE_PUBLISHER_JWT_KEY'], secret: true },
  ),
  setting(
    'Mercure',
    'mercurePublisherJwtAlg',
    '--mercure-publisher-jwt-alg <alg>',
    undefined,
    "algorithm of the publishers' key, e.g. HS256 or RS256",
    { aliases: ['MERCURE_PUBLISHER_JWT_ALG'] },
  ),
  setting(
    'Mercure',
    'mercurePublisherJwksUrl',
    '--mercure-publisher-jwks-url <url>',
    undefined,
    "JWKS URL of Mercure publishers' keys",
  ),
  setting(
    'Mercure',
    'mercureSubscriberJwtKey',
    '--mercure-subscriber-jwt-key <key>',
    undefined,
    "Mercure subscribers' key: an HMAC secret, or a PEM public key (text or file) (default: the --jwt-* keys)",
    { aliases: ['MERCURE_SUBSCRIBER_JWT_KEY'], secret: true },
  ),
  setting(
    'Mercure',
    'mercureSubscriberJwtAlg',
    '--mercure-subscriber-jwt-alg <alg>',
    undefined,
    "algorithm of the subscribers' key, e.g. HS256 or RS256",
    { aliases: ['MERCURE_SUBSCRIBER_JWT_ALG'] },
  ),
  setting(
    'Mercure',
    'mercureSubscriberJwksUrl',
    '--mercure-subscriber-jwks-url <url>',
    undefined,
    "JWKS URL of Mercure subscribers' keys",
  ),
  setting(
    'Mercure',
    'mercureCookieName',
    '--mercure-cookie-name <name>',
    'mercureAuthorization',
    'cookie a browser sends its Mercure token in',
  ),
  setting(
    'Mercure',
    'mercurePublishOrigin',
    '--mercure-publish-origin <origin>',
    [],
    'origin allowed to publish to Mercure with a cookie; * for any (repeatable; default: the --cors-origin ones)',
    { repeatable: true },
  ),
  setting(
    'Mercure',
    'mercureSubscriptions',
    '--mercure-subscriptions',
    false,
    'Mercure active subscriptions: subscription updates and /.well-known/mercure/subscriptions',
  ),
  // Observability
  setting(
    'Observability',
    'logLevel',
    '--log-level <level>',
    'info',
    `log lines on stdout from this level: ${LOG_LEVELS.join(', ')}`,
  ),
  setting(
    'Observability',
    'logFormat',
    '--log-format <format>',
    'auto',
    'pretty (one line per entry, for people), json (one object per line, for machines), or auto: pretty when stdout is a terminal',
  ),
  setting(
    'Observability',
    'metricsPublic',
    '--metrics-public',
    false,
    'serve /metrics without credentials (default: admin token, like /v1/stats)',
  ),
  // Tests only
  setting(
    'Tests only',
    'testOnlyAllowWeakSecrets',
    '--test-only-allow-weak-secrets',
    false,
    'TESTS ONLY: accept HMAC secrets shorter than 32 bytes, which one token lets anyone guess offline',
  ),
];

/** A duration as the settings take it (`15m`, `1h`), in ms; throws with what is expected. */
export function parseDuration(value: string): number {
  const parsed = duration().safeParse(value);
  if (!parsed.success) throw new Error(parsed.error.issues[0]?.message ?? `"${value}" is not a duration`);
  return parsed.data;
}

/** One setting's value parsed as the configuration parses it (for tests of the documented defaults). */
export function parseSetting(key: Key, value: unknown): unknown {
  const parsed = schema.shape[key].safeParse(value);
  if (!parsed.success) throw new Error(parsed.error.issues[0]?.message ?? `${shown(value)} is not valid`);
  return parsed.data;
}

/** Where a setting's value came from. */
export type Origin =
  | { readonly from: 'flag' }
  | { readonly from: 'env'; readonly name: string }
  | { readonly from: 'file'; readonly path: string }
  | { readonly from: 'default' };

/** The settings of a `--config` file, by key (src/server/config-file.ts reads it). */
export interface ConfigFileValues {
  readonly path: string;
  readonly values: Readonly<Partial<Record<Key, unknown>>>;
}

export interface ResolvedConfig {
  readonly config: ServeConfig;
  readonly origins: Readonly<Record<Key, Origin>>;
}

/** Settings that cannot be used, each problem on a line of its own (`problems`). */
export class ConfigError extends Error {
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super(`invalid configuration:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

/** Flags (as commander gives them, by key) over environment over a config file over defaults. */
export function resolveConfig(
  flags: Readonly<Record<string, unknown>>,
  env: Readonly<Record<string, string | undefined>> = process.env,
  file?: ConfigFileValues,
): ServeConfig {
  return resolveSettings(flags, env, file).config;
}

/** As `resolveConfig`, with where each value came from; throws a `ConfigError` listing every problem. */
export function resolveSettings(
  flags: Readonly<Record<string, unknown>>,
  env: Readonly<Record<string, string | undefined>> = process.env,
  file?: ConfigFileValues,
): ResolvedConfig {
  const raw: Record<string, unknown> = {};
  const origins = {} as Record<Key, Origin>;
  for (const s of SETTINGS) {
    const envName = s.env.find((name) => env[name] !== undefined && env[name] !== '');
    const fromFile = file?.values[s.key];
    if (flags[s.key] !== undefined) {
      raw[s.key] = flags[s.key];
      origins[s.key] = { from: 'flag' };
    } else if (envName !== undefined) {
      raw[s.key] = env[envName];
      origins[s.key] = { from: 'env', name: envName };
    } else if (fromFile !== undefined && file !== undefined) {
      raw[s.key] = fromFile;
      origins[s.key] = { from: 'file', path: file.path };
    } else {
      raw[s.key] = s.defaultValue;
      origins[s.key] = { from: 'default' };
    }
  }
  const parsed = checked.safeParse(raw);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((issue) => {
        const s = SETTINGS.find((candidate) => candidate.key === issue.path[0]);
        if (s === undefined) return maskSecrets(issue.message);
        return `${s.name} (${s.env.join(', ')}): ${hideSecret(s, raw[s.key], issue.message)}${originNote(s, origins[s.key])}`;
      }),
    );
  }
  return { config: parsed.data, origins };
}

/** A secret's value never reaches a message, whatever a check wrote. */
function hideSecret(s: Setting, value: unknown, message: string): string {
  if (!s.secret || typeof value !== 'string' || value.length < 4) return message;
  return message.split(value).join('(hidden)');
}

/** Where the refused value came from, when the names in front do not already say it. */
function originNote(s: Setting, origin: Origin): string {
  switch (origin.from) {
    case 'env':
      return s.env.length > 1 ? ` (set by ${origin.name})` : '';
    case 'file':
      return ` (set in ${origin.path})`;
    default:
      return '';
  }
}

/** Where a value came from, in words: `default`, `--port`, `HERALD_PORT`, `herald.yaml`. */
export function describeOrigin(s: Setting, origin: Origin): string {
  switch (origin.from) {
    case 'flag':
      return s.name;
    case 'env':
      return origin.name;
    case 'file':
      return origin.path;
    default:
      return 'default';
  }
}

/** `15s`, `24h`, `0`: a number of ms as the settings take it. */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0';
  for (const [unit, size] of [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
  ] as const) {
    // 24h rather than 1d; 7d as it is.
    if (ms % size === 0 && (unit !== 'd' || ms >= 2 * size)) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

/** `1MiB`, `512KiB`, `100`: a number of bytes as the settings take it. */
export function formatSize(bytes: number): string {
  if (bytes !== 0 && bytes % 1024 ** 2 === 0) return `${bytes / 1024 ** 2}MiB`;
  if (bytes !== 0 && bytes % 1024 === 0) return `${bytes / 1024}KiB`;
  return String(bytes);
}

/**
 * A setting's value as `--help`, `config check` and the README show it: as it would be typed,
 * `(set)` for a secret, credentials in URLs masked, `none` when there is none.
 */
export function formatValue(s: Setting, value: unknown): string {
  if (value === undefined || (Array.isArray(value) && value.length === 0)) return 'none';
  if (s.secret) return '(set)';
  if (s.kind === 'duration' && typeof value === 'number') return formatDuration(value);
  if (s.kind === 'size' && typeof value === 'number') return formatSize(value);
  if (typeof value === 'boolean') return value ? 'on' : 'off';
  if (Array.isArray(value)) return value.map((item) => maskUrl(String(item))).join(', ');
  return maskUrl(String(value));
}

/** `a, b or c`. */
export function orList(values: readonly string[]): string {
  return values.length <= 1
    ? (values[0] ?? '')
    : `${values.slice(0, -1).join(', ')} or ${values[values.length - 1]}`;
}

/**
 * The candidate nearest to `word` by edit distance (Damerau–Levenshtein), when near enough to be
 * a typo of it, or one that contains it (`--secret` → `--jwt-secret`).
 */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  const w = word.toLowerCase();
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const candidate of candidates) {
    const d = editDistance(w, candidate.toLowerCase());
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  if (best !== undefined && bestDistance <= Math.max(1, Math.min(3, Math.floor(w.length / 3)))) return best;
  const bare = w.replace(/^-+/, '');
  if (bare.length >= 3) return candidates.find((candidate) => candidate.toLowerCase().includes(bare));
  return undefined;
}

function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      const row = d[i] as number[];
      const above = d[i - 1] as number[];
      row[j] = Math.min(
        (above[j] as number) + 1,
        (row[j - 1] as number) + 1,
        (above[j - 1] as number) + cost,
      );
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        row[j] = Math.min(row[j] as number, ((d[i - 2] as number[])[j - 2] as number) + 1);
      }
    }
  }
  return (d[a.length] as number[])[b.length] as number;
}

/**
 * Every setting as Markdown tables, one per group: the README's configuration table
 * (`herald config table` prints it; test/server/defaults-doc.test.ts checks the README against it).
 */
export function settingsMarkdown(): string {
  const cell = (value: string) => value.replaceAll('|', '\\|');
  const parts: string[] = [];
  for (const group of GROUPS) {
    const rows = SETTINGS.filter((s) => s.group === group);
    parts.push(
      `**${group}**`,
      '',
      '| flag | environment | default | |',
      '| --- | --- | --- | --- |',
      ...rows.map(
        (s) =>
          `| \`${cell(s.flag)}\` | ${s.env.map((name) => `\`${name}\``).join(', ')} | ${cell(
            formatValue(s, s.defaultValue),
          )} | ${cell(s.description)} |`,
      ),
      '',
    );
  }
  return parts.join('\n');
}
