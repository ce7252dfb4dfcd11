import { availableParallelism } from 'node:os';
import { z } from 'zod';
import { MIN_SECRET_BYTES, weakSecretProblem } from '../auth/jwt.ts';
import { DEFAULT_HISTORY_MAX_AGE_MS, DEFAULT_HISTORY_SIZE } from '../brokers/memory.ts';
import { MAX_TOPIC_LENGTH } from '../core/event.ts';
import { DEFAULT_HUB_OPTIONS } from '../core/hub.ts';
import { DEFAULT_LIMITS } from '../http/limits.ts';
import { TrustedProxies } from '../http/trust-proxy.ts';
import { LOG_LEVELS } from '../observability/logger.ts';

/**
 * `herald serve` settings. Each has a flag and a `HERALD_…` environment variable named after it
 * (flags win); one table drives the parser and `--help`, so they cannot drift apart.
 */

const UNITS_MS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const UNITS_BYTES: Readonly<Record<string, number>> = {
  b: 1,
  kb: 1024,
  kib: 1024,
  mb: 1024 ** 2,
  mib: 1024 ** 2,
};

/** `500ms`, `15s`, `5m`, `24h`, `7d`, or a plain number of milliseconds. */
const duration = z.union([z.number(), z.string()]).transform((value, ctx) => {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/i.exec(String(value));
  if (match === null) {
    ctx.addIssue({
      code: 'custom',
      message: `"${value}" is not a duration; use e.g. 500ms, 15s, 5m, 24h or 7d`,
    });
    return z.NEVER;
  }
  return Math.round(Number(match[1]) * (UNITS_MS[(match[2] ?? 'ms').toLowerCase()] ?? 1));
});

/** `512KiB`, `1MiB`, `4mb`, or a plain number of bytes (kb and mb are binary here too). */
const size = z.union([z.number(), z.string()]).transform((value, ctx) => {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(b|kb|kib|mb|mib)?\s*$/i.exec(String(value));
  if (match === null) {
    ctx.addIssue({
      code: 'custom',
      message: `"${value}" is not a size; use e.g. 512KiB, 1MiB or a number of bytes`,
    });
    return z.NEVER;
  }
  return Math.round(Number(match[1]) * (UNITS_BYTES[(match[2] ?? 'b').toLowerCase()] ?? 1));
});

const count = z.coerce.number().int().positive();
/** 0 turns the limit off. */
const limit = z.coerce.number().int().min(0);
const flag = z.union([z.boolean(), z.string()]).transform((value, ctx) => {
  if (typeof value === 'boolean') return value;
  if (/^(1|true|yes|on)$/i.test(value)) return true;
  if (/^(0|false|no|off|)$/i.test(value)) return false;
  ctx.addIssue({ code: 'custom', message: `"${value}" is not true or false` });
  return z.NEVER;
});
const listOf = (separator: RegExp) =>
  z
    .union([z.array(z.string()), z.string()])
    .transform((value) =>
      (Array.isArray(value) ? value : value.split(separator))
        .map((item) => item.trim())
        .filter((item) => item !== ''),
    );
const list = listOf(/,/);

/** A number of processes, or `auto`: one per CPU the process may use. */
const workers = z.union([z.number(), z.string()]).transform((value, ctx) => {
  if (/^\s*auto\s*$/i.test(String(value))) return availableParallelism();
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 1024) {
    ctx.addIssue({
      code: 'custom',
      message: `"${value}" is not a number of processes; use 1 to 1024, or auto`,
    });
    return z.NEVER;
  }
  return n;
});

const JWT_ALG = /^(HS|RS|PS|ES)(256|384|512)$|^EdDSA$/;
const JWT_ALG_HINT = 'use HS256, HS384, HS512, RS256…, PS256…, ES256… or EdDSA';

const schema = z.object({
  port: z.coerce.number().int().min(0).max(65_535),
  workers,
  host: z.string().min(1),
  tlsCert: z.string().min(1).optional(),
  tlsKey: z.string().min(1).optional(),
  broker: z
    .string()
    .regex(
      /^(memory|(redis|rediss|nats):\/\/.+)$/i,
      'use memory, redis://host:port[/db] or nats://host:port',
    ),
  onBrokerDown: z.enum(['fail', 'local']),
  stream: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'use 1–64 letters, digits, - and _'),
  // A bridge spec may hold commas: several in the environment are separated by newlines or ;.
  bridge: listOf(/[;\n]/),
  bridgeRedis: z
    .string()
    .regex(/^rediss?:\/\/.+/i, 'use redis://host:port[/db]')
    .optional(),
  bridgeNats: z
    .string()
    .regex(/^nats:\/\/.+/i, 'use nats://host:port')
    .optional(),
  historySize: count,
  historyMaxAge: duration.pipe(z.number().positive()),
  heartbeat: duration.pipe(z.number().min(10)),
  retry: duration,
  idleTimeout: duration,
  maxLifetime: duration,
  maxDataSize: size.pipe(z.number().positive()),
  maxBodySize: size.pipe(z.number().positive()),
  maxBatch: count,
  maxTopics: count,
  maxSelectorLength: count.max(MAX_TOPIC_LENGTH),
  outboxMaxEvents: count,
  outboxMaxBytes: size.pipe(z.number().positive()),
  overflowPolicy: z.enum(['disconnect', 'drop-oldest']),
  jwtSecret: z.string().min(1).optional(),
  jwtPublicKey: z.string().min(1).optional(),
  jwksUrl: z.url({ protocol: /^https?$/ }).optional(),
  jwtAudience: z.string().min(1).optional(),
  jwtIssuer: z.string().min(1).optional(),
  jwtLeeway: duration,
  anonymous: flag,
  cookieName: z
    .string()
    .regex(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/, "a cookie name is letters, digits and !#$%&'*+-.^_`|~"),
  corsOrigin: list,
  mercure: flag,
  mercurePublisherJwtKey: z.string().min(1).optional(),
  mercurePublisherJwtAlg: z.string().regex(JWT_ALG, JWT_ALG_HINT).optional(),
  mercurePublisherJwksUrl: z.url({ protocol: /^https?$/ }).optional(),
  mercureSubscriberJwtKey: z.string().min(1).optional(),
  mercureSubscriberJwtAlg: z.string().regex(JWT_ALG, JWT_ALG_HINT).optional(),
  mercureSubscriberJwksUrl: z.url({ protocol: /^https?$/ }).optional(),
  mercureCookieName: z
    .string()
    .regex(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/, "a cookie name is letters, digits and !#$%&'*+-.^_`|~"),
  mercurePublishOrigin: list,
  mercureSubscriptions: flag,
  privateByDefault: flag,
  reauthLead: duration,
  insecure: flag,
  ipConnectionRate: limit,
  ipConnectionBurst: limit,
  maxStreamsPerIp: limit,
  maxStreamsPerSubject: limit,
  maxStreamsPerTenant: limit,
  publishRate: limit,
  publishBurst: limit,
  logLevel: z.enum(LOG_LEVELS),
  metricsPublic: flag,
  trustProxy: list,
  headersTimeout: duration.pipe(z.number().min(1)),
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
type Key = keyof ServeConfig;

export interface Setting {
  readonly key: Key;
  /** As commander takes it: `--port <port>`, or `--anonymous` for a switch. */
  readonly flag: string;
  /** `HERALD_…` from the flag, then any alias (PORT, HOST). */
  readonly env: readonly string[];
  readonly description: string;
  /** Repeatable flag; comma-separated in the environment. */
  readonly repeatable: boolean;
  readonly defaultValue: unknown;
}

function setting(
  key: Key,
  flag: string,
  defaultValue: unknown,
  description: string,
  options: { aliases?: string[]; repeatable?: boolean } = {},
): Setting {
  const name = (flag.split(' ')[0] as string).slice(2).replaceAll('-', '_').toUpperCase();
  return {
    key,
    flag,
    env: [`HERALD_${name}`, ...(options.aliases ?? [])],
    description,
    repeatable: options.repeatable ?? false,
    defaultValue,
  };
}

const H = DEFAULT_HUB_OPTIONS;
const L = DEFAULT_LIMITS;

export const SETTINGS: readonly Setting[] = [
  setting('port', '--port <port>', 8080, 'port to listen on (0: any free port)', { aliases: ['PORT'] }),
  setting('host', '--host <host>', '127.0.0.1', 'address to listen on', { aliases: ['HOST'] }),
  setting(
    'workers',
    '--workers <n>',
    1,
    'processes serving the port (auto: one per CPU); one log, any worker serves any client',
  ),
  setting(
    'tlsCert',
    '--tls-cert <file>',
    undefined,
    'PEM certificate (chain) for HTTPS with HTTP/2 and HTTP/1.1 on the port: a file, or the PEM text itself',
  ),
  setting(
    'tlsKey',
    '--tls-key <file>',
    undefined,
    'PEM private key of --tls-cert: a file, or the PEM text itself',
  ),
  setting(
    'broker',
    '--broker <url>',
    'memory',
    'memory, redis://host:port[/db] or nats://host:port: where the log lives',
  ),
  setting(
    'onBrokerDown',
    '--on-broker-down <what>',
    'fail',
    'broker unreachable at start: fail (exit) or local (run on memory, /readyz degraded)',
  ),
  setting(
    'stream',
    '--stream <name>',
    'herald',
    'name of the log on the broker (Redis key prefix, JetStream stream)',
  ),
  setting(
    'bridge',
    '--bridge <spec>',
    [],
    "publish what arrives on Redis channels or NATS subjects, e.g. 'redis:merchant:*:progress -> merchants/{1}/progress tenant={1}' (repeatable)",
    { repeatable: true },
  ),
  setting(
    'bridgeRedis',
    '--bridge-redis <url>',
    undefined,
    'Redis that redis: bridges listen to (default: the broker if it is Redis, else redis://127.0.0.1:6379)',
  ),
  setting(
    'bridgeNats',
    '--bridge-nats <url>',
    undefined,
    'NATS that nats: bridges listen to (default: the broker if it is NATS, else nats://127.0.0.1:4222)',
  ),
  setting('historySize', '--history-size <events>', DEFAULT_HISTORY_SIZE, 'events kept for replay'),
  setting(
    'historyMaxAge',
    '--history-max-age <duration>',
    DEFAULT_HISTORY_MAX_AGE_MS,
    'how long events are kept for replay (e.g. 24h)',
  ),
  setting(
    'heartbeat',
    '--heartbeat <duration>',
    H.heartbeatMs,
    'heartbeat comment interval on quiet streams',
  ),
  setting('retry', '--retry <duration>', H.retryMs, 'reconnection delay hint sent to clients'),
  setting(
    'idleTimeout',
    '--idle-timeout <duration>',
    H.idleTimeoutMs,
    'close streams without an event for this long (0: never)',
  ),
  setting(
    'maxLifetime',
    '--max-lifetime <duration>',
    H.maxLifetimeMs,
    'close every stream after this long, ±10 % (0: never); clients resume',
  ),
  setting('maxDataSize', '--max-data-size <size>', H.maxDataBytes, 'largest event data (e.g. 1MiB)'),
  setting('maxBodySize', '--max-body-size <size>', 4 * 1024 * 1024, 'largest publish request body'),
  setting('maxBatch', '--max-batch <events>', H.maxBatch, 'events in one publish request'),
  setting('maxTopics', '--max-topics <n>', 100, 'topic selectors in one subscription'),
  setting(
    'maxSelectorLength',
    '--max-selector-length <n>',
    MAX_TOPIC_LENGTH,
    'characters in one topic selector',
  ),
  setting(
    'outboxMaxEvents',
    '--outbox-max-events <events>',
    H.outbox.maxEvents,
    'events queued for a slow client before the overflow policy acts',
  ),
  setting(
    'outboxMaxBytes',
    '--outbox-max-bytes <size>',
    H.outbox.maxBytes,
    'bytes queued for a slow client before the overflow policy acts',
  ),
  setting(
    'overflowPolicy',
    '--overflow-policy <policy>',
    H.outbox.policy,
    'disconnect (client resumes from history) or drop-oldest (client gets herald.gap)',
  ),
  setting(
    'jwtSecret',
    '--jwt-secret <secret>',
    undefined,
    'HS256/384/512 secret that tokens are signed with',
  ),
  setting(
    'jwtPublicKey',
    '--jwt-public-key <file>',
    undefined,
    'PEM public key (RS*, PS*, ES*, EdDSA): a file, or the PEM text itself',
  ),
  setting('jwksUrl', '--jwks-url <url>', undefined, 'JWKS URL to fetch verification keys from'),
  setting('jwtAudience', '--jwt-audience <aud>', undefined, 'required token audience (aud)'),
  setting('jwtIssuer', '--jwt-issuer <iss>', undefined, 'required token issuer (iss)'),
  setting('jwtLeeway', '--jwt-leeway <duration>', 5000, 'clock leeway for exp and nbf'),
  setting('anonymous', '--anonymous', false, 'let requests without a token subscribe, to public events only'),
  setting('cookieName', '--cookie-name <name>', 'herald_token', 'cookie a browser sends its token in'),
  setting(
    'corsOrigin',
    '--cors-origin <origin>',
    [],
    'origin allowed to call the hub from a browser (repeatable)',
    { repeatable: true },
  ),
  setting(
    'mercure',
    '--mercure <on|off>',
    true,
    'the Mercure protocol at /.well-known/mercure, on the same hub, broker and auth',
  ),
  setting(
    'mercurePublisherJwtKey',
    '--mercure-publisher-jwt-key <key>',
    undefined,
    "Mercure publishers' key: an HMAC secret, or a PEM public key (text or file) (default: the --jwt-* keys)",
    { aliases: ['MERCURE_PUBLISHER_JWT_KEY'] },
  ),
  setting(
    'mercurePublisherJwtAlg',
    '--mercure-publisher-jwt-alg <alg>',
    undefined,
    "algorithm of the publishers' key, e.g. HS256 or RS256",
    { aliases: ['MERCURE_PUBLISHER_JWT_ALG'] },
  ),
  setting(
    'mercurePublisherJwksUrl',
    '--mercure-publisher-jwks-url <url>',
    undefined,
    "JWKS URL of Mercure publishers' keys",
  ),
  setting(
    'mercureSubscriberJwtKey',
    '--mercure-subscriber-jwt-key <key>',
    undefined,
    "Mercure subscribers' key: an HMAC secret, or a PEM public key (text or file) (default: the --jwt-* keys)",
    { aliases: ['MERCURE_SUBSCRIBER_JWT_KEY'] },
  ),
  setting(
    'mercureSubscriberJwtAlg',
    '--mercure-subscriber-jwt-alg <alg>',
    undefined,
    "algorithm of the subscribers' key, e.g. HS256 or RS256",
    { aliases: ['MERCURE_SUBSCRIBER_JWT_ALG'] },
  ),
  setting(
    'mercureSubscriberJwksUrl',
    '--mercure-subscriber-jwks-url <url>',
    undefined,
    "JWKS URL of Mercure subscribers' keys",
  ),
  setting(
    'mercureCookieName',
    '--mercure-cookie-name <name>',
    'mercureAuthorization',
    'cookie a browser sends its Mercure token in',
  ),
  setting(
    'mercurePublishOrigin',
    '--mercure-publish-origin <origin>',
    [],
    'origin allowed to publish to Mercure with a cookie; * for any (repeatable; default: the --cors-origin ones)',
    { repeatable: true },
  ),
  setting(
    'mercureSubscriptions',
    '--mercure-subscriptions',
    false,
    'Mercure active subscriptions: subscription updates and /.well-known/mercure/subscriptions',
  ),
  setting(
    'privateByDefault',
    '--private-by-default',
    false,
    'treat every event as private: subscribers see only what their grants allow',
  ),
  setting(
    'reauthLead',
    '--reauth-lead <duration>',
    H.reauthLeadMs,
    "send herald.reauth this long before a stream's token expires",
  ),
  setting('insecure', '--insecure', false, 'allow open development mode (no key) on a non-loopback address'),
  setting(
    'ipConnectionRate',
    '--ip-connection-rate <n>',
    L.connectionsPerSecondPerIp,
    'requests per second per IP (0: no limit)',
  ),
  setting(
    'ipConnectionBurst',
    '--ip-connection-burst <n>',
    L.connectionBurstPerIp,
    'requests per IP allowed at once',
  ),
  setting('maxStreamsPerIp', '--max-streams-per-ip <n>', L.streamsPerIp, 'open streams per IP (0: no limit)'),
  setting(
    'maxStreamsPerSubject',
    '--max-streams-per-subject <n>',
    L.streamsPerSubject,
    'open streams per token subject (0: no limit)',
  ),
  setting(
    'maxStreamsPerTenant',
    '--max-streams-per-tenant <n>',
    L.streamsPerTenant,
    'open streams per tenant (0: no limit)',
  ),
  setting(
    'publishRate',
    '--publish-rate <n>',
    L.publishesPerSecondPerSubject,
    'events published per second per subject (0: no limit)',
  ),
  setting(
    'publishBurst',
    '--publish-burst <n>',
    L.publishBurstPerSubject,
    'events a subject may publish at once',
  ),
  setting(
    'logLevel',
    '--log-level <level>',
    'info',
    `JSON log lines on stdout from this level: ${LOG_LEVELS.join(', ')}`,
  ),
  setting(
    'metricsPublic',
    '--metrics-public',
    false,
    'serve /metrics without credentials (default: admin token, like /v1/stats)',
  ),
  setting(
    'trustProxy',
    '--trust-proxy <address>',
    [],
    'reverse proxy (IP, CIDR, loopback, linklocal or uniquelocal) whose Forwarded / X-Forwarded-For header names the client, for per-IP limits (repeatable; default none: anyone can send those headers)',
    { repeatable: true },
  ),
  setting(
    'headersTimeout',
    '--headers-timeout <duration>',
    60_000,
    "time a client has to send a request's headers before a 408 (slow-header floods hold sockets)",
  ),
  setting(
    'testOnlyAllowWeakSecrets',
    '--test-only-allow-weak-secrets',
    false,
    'TESTS ONLY: accept HMAC secrets shorter than 32 bytes, which one token lets anyone guess offline',
  ),
];

/** A duration as the settings take it (`15m`, `1h`), in ms; throws with what is expected. */
export function parseDuration(value: string): number {
  const parsed = duration.safeParse(value);
  if (!parsed.success) throw new Error(parsed.error.issues[0]?.message ?? `"${value}" is not a duration`);
  return parsed.data;
}

/** Flags (as commander gives them, by key) over environment over defaults; throws with every problem listed. */
export function resolveConfig(
  flags: Readonly<Record<string, unknown>>,
  env: Readonly<Record<string, string | undefined>> = process.env,
): ServeConfig {
  const raw: Record<string, unknown> = {};
  for (const s of SETTINGS) {
    const fromEnv = s.env.map((name) => env[name]).find((value) => value !== undefined && value !== '');
    raw[s.key] = flags[s.key] ?? fromEnv ?? s.defaultValue;
  }
  const parsed = checked.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => {
      const s = SETTINGS.find((candidate) => candidate.key === issue.path[0]);
      const name = s ? `${s.flag.split(' ')[0]} (${s.env.join(', ')})` : String(issue.path[0]);
      return `${name}: ${issue.message}`;
    });
    throw new Error(`invalid configuration:\n  ${problems.join('\n  ')}`);
  }
  return parsed.data;
}
