import { DEFAULT_AUTH_URL } from '../auth/auth-url.ts';
import { DEFAULT_OUTAGE_BUFFER, DEFAULT_PROBE_INTERVAL_MS } from '../backends/failover/log.ts';
import { DEFAULT_HISTORY_MAX_AGE_MS, DEFAULT_HISTORY_SIZE } from '../backends/history.ts';
import { DEFAULT_LATEST_MAX_KEYS } from '../backends/latest.ts';
import { brokerUrlHint } from '../backends/registry.ts';
import { DEFAULT_HEARTBEAT_MS, DEFAULT_LEASE_MS } from '../cluster/roster.ts';
import { MAX_TOPIC_LENGTH } from '../core/event.ts';
import { DEFAULT_HUB_OPTIONS } from '../core/hub.ts';
import { DEFAULT_LIMITS } from '../http/limits.ts';
import { LOG_LEVELS } from '../observability/logger.ts';
import { DEFAULT_BATCH_DELAY_MS } from '../observability/webhooks.ts';
import type { SettingKey } from './settings-schema.ts';

/**
 * `herald serve` settings. Each has a flag and a `HERALD_…` environment variable named after it,
 * and may be set in a `--config` file (flags win over variables, which win over the file). One
 * table (`SETTINGS`) drives the parser, `--help`, `herald config check` and the configuration
 * table of docs/configuration.md (`herald config table`; test/server/defaults-doc.test.ts checks
 * the page against it), so they cannot drift apart.
 *
 * The file is long because the table is: one entry per setting, read down a group at a time, is
 * what a reader looks for here, and splitting it by group would only scatter it.
 */

/** The headings `serve --help`, `config check` and docs/configuration.md group the settings under. */
export const GROUPS = [
  'Server',
  'Broker and history',
  'Streams',
  'Auth',
  'App hooks',
  'Limits',
  'Mercure',
  'Observability',
  'Tests only',
] as const;
export type Group = (typeof GROUPS)[number];

export interface Setting {
  readonly key: SettingKey;
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
  /** How its value is written, for `--help`, `config check` and docs/configuration.md. */
  readonly kind: 'duration' | 'size' | 'switch' | 'on-off' | 'list' | 'value';
}

interface SettingOptions {
  readonly aliases?: string[];
  readonly repeatable?: boolean;
  readonly secret?: boolean;
}

function setting(
  group: Group,
  key: SettingKey,
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
    'broker unreachable: fail (exit at start; 503 to publishes later) or local (ride the outage out alone, /readyz degraded, and rejoin by itself)',
  ),
  setting(
    'Broker and history',
    'outageBuffer',
    '--outage-buffer <events>',
    DEFAULT_OUTAGE_BUFFER,
    'with --on-broker-down local: events a node holds while its broker is down; past it publishes get 503 (nothing accepted is dropped)',
  ),
  setting(
    'Broker and history',
    'outageProbe',
    '--outage-probe <duration>',
    DEFAULT_PROBE_INTERVAL_MS,
    'with --on-broker-down local: how often the broker is probed (while down: backing off up to 5×)',
  ),
  setting(
    'Broker and history',
    'nodeHeartbeat',
    '--node-heartbeat <duration>',
    DEFAULT_HEARTBEAT_MS,
    'how often this node tells the others sharing its broker that it is alive, with its figures (/v1/nodes); less than half --node-lease',
  ),
  setting(
    'Broker and history',
    'nodeLease',
    '--node-lease <duration>',
    DEFAULT_LEASE_MS,
    'how long a node not heard from stays listed (/v1/nodes, connections, presence): a node killed outright drops out within it (at most 30s)',
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
    "how long events are kept for replay (also how far back a stream's since= may reach)",
  ),
  setting(
    'Broker and history',
    'latestMaxKeys',
    '--latest-max-keys <n>',
    DEFAULT_LATEST_MAX_KEYS,
    'latest values kept per (tenant, topic, key) for snapshot=latest and /v1/latest, across tenants; past it the slot updated longest ago goes (0: none kept)',
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
  setting(
    'Streams',
    'compression',
    '--compression <codings>',
    'off',
    'compress streams for clients that accept it (Accept-Encoding): off, on (gzip, deflate, br, in that order) or a list in the order to prefer (gzip,br); a busy gzip or deflate stream holds ~100 KiB more, a br stream ~700 KiB',
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
  // App hooks
  setting(
    'App hooks',
    'authUrl',
    '--auth-url <url>',
    undefined,
    "the app's endpoint that decides who a stream or publish without a Herald token comes from (docs/hooks.md)",
  ),
  setting(
    'App hooks',
    'authForwardHeaders',
    '--auth-forward-headers <names>',
    [...DEFAULT_AUTH_URL.forwardHeaders],
    'request headers sent on to --auth-url, and that its answers are cached under (repeatable, or comma-separated)',
    { repeatable: true },
  ),
  setting(
    'App hooks',
    'authTimeout',
    '--auth-timeout <duration>',
    DEFAULT_AUTH_URL.timeoutMs,
    'time --auth-url has to answer before the request gets a 503 with Retry-After',
  ),
  setting(
    'App hooks',
    'webhookUrl',
    '--webhook-url <url>',
    undefined,
    "the app's endpoint told of every stream opened and closed and of presence changes, in signed batches, retried with backoff (docs/hooks.md)",
  ),
  setting(
    'App hooks',
    'webhookSecret',
    '--webhook-secret <secret>',
    undefined,
    'HMAC-SHA256 key that signs webhook deliveries (Herald-Signature); required with --webhook-url',
    { secret: true },
  ),
  setting(
    'App hooks',
    'webhookBatchDelay',
    '--webhook-batch-delay <duration>',
    DEFAULT_BATCH_DELAY_MS,
    'longest the first notice of a webhook batch waits for others (a full batch of 100 goes at once); 0: no wait',
  ),
  // Limits
  setting('Limits', 'maxDataSize', '--max-data-size <size>', H.maxDataBytes, 'largest event data'),
  setting('Limits', 'maxBodySize', '--max-body-size <size>', 4 * 1024 * 1024, 'largest publish request body'),
  setting('Limits', 'maxBatch', '--max-batch <events>', H.maxBatch, 'events in one publish request'),
  setting('Limits', 'maxTopics', '--max-topics <n>', 100, 'topic selectors in one subscription'),
  setting(
    'Limits',
    'maxRewind',
    '--max-rewind <events>',
    H.rewind.maxEvents,
    'events a new stream or poll may start with (rewind=N; since= alone gets at most this many)',
  ),
  setting(
    'Limits',
    'maxSnapshot',
    '--max-snapshot <events>',
    H.snapshot.maxEvents,
    'latest values a snapshot=latest stream or poll, or /v1/latest, is sent at most (the newest)',
  ),
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
  setting(
    'Limits',
    'limitsScope',
    '--limits-scope <scope>',
    L.scope,
    'where streams per subject and tenant and publish rates are counted: cluster (across every node, on a broker that counts: redis, nats, --workers) or node (each on its own); per-IP limits are always per node',
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
