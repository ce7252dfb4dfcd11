import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { hostname } from 'node:os';
import type { Duplex } from 'node:stream';
import type { JwtOptions } from '../auth/jwt.ts';
import { brokerFor } from '../backends/connect.ts';
import type { OutageState } from '../backends/failover/log.ts';
import { redactUrl } from '../backends/redact-url.ts';
import { backendNamed, backendOf } from '../backends/registry.ts';
import { startBridges } from '../bridges/index.ts';
import { HeraldError, type ProblemCode, type ProblemStatus } from '../core/errors.ts';
import { type Broker, persistenceWarningOf } from '../core/log.ts';
import { createHerald, type Herald, type HeraldOptions } from '../herald.ts';
import { nodeHandler } from '../http/node.ts';
import type { HeraldLogger } from '../observability/logger.ts';
import { REQUEST_ID_HEADER } from '../observability/request-id.ts';
import { listenError } from './messages.ts';
import { isHmacKey, type ServeConfig } from './settings-schema.ts';
import { createHeraldServer, type HeraldServer, loadTls } from './tls.ts';

export interface RunningServer {
  readonly url: string;
  readonly herald: Herald;
  /** node:http, or node:http2 serving HTTP/2 and HTTP/1.1 with `--tls-cert`. */
  readonly server: HeraldServer;
  /** Stops accepting, ends every stream with a retry hint, and resolves once all is closed. */
  close(): Promise<void>;
}

/** How a worker of `herald serve --workers N` differs from a hub on its own (src/server/workers.ts). */
export interface ServeOverrides {
  /** The log, when the primary holds it (the memory broker over IPC). */
  readonly broker?: Broker;
  /** Why the hub runs other than configured, as the primary decided it. */
  readonly degraded?: string;
  /** Share the port with the other workers; the kernel balances connections. */
  readonly reusePort?: boolean;
  /** Labels on every `/metrics` series (the worker's number: each worker answers with its own figures). */
  readonly metricsLabels?: Record<string, string>;
}

/**
 * Starts the standalone hub: its broker behind a node:http server. Without a logger (tests,
 * embedding) nothing is logged; `herald serve` passes pino at `--log-level`.
 */
export async function serve(
  config: ServeConfig,
  logger?: HeraldLogger,
  overrides: ServeOverrides = {},
): Promise<RunningServer> {
  // A bad certificate stops the start before a broker connection is made for nothing.
  const tls = loadTls(config);
  const herald = await startHerald(config, logger, overrides);
  const bridges = await startBridgesOf(config, herald, logger);
  // Without a key anyone who can reach the hub may publish anything: only this machine may.
  if (herald.open && !config.insecure && !isLoopback(config.host)) {
    throw new Error(
      `refusing to listen on ${config.host} in open development mode (no JWT key configured): anyone who ` +
        'can reach it could publish. Configure --jwt-secret, --jwt-public-key, --jwks-url or --auth-url, ' +
        'or pass --insecure if this network is yours alone',
    );
  }
  // Room for a full subscription in the URL: 100 selectors of up to 1 024 characters.
  const server = createHeraldServer(nodeHandler(herald), tls, MAX_HEADER_BYTES);
  if ('headersTimeout' in server) {
    // Checked this often (node:http's default is every 30 s, which would let a slow client hold
    // its socket up to 30 s past the limit); node:http starts the check on 'listening'.
    server.headersTimeout = config.headersTimeout;
    server.requestTimeout = Math.max(server.requestTimeout, config.headersTimeout);
    (server as typeof server & { connectionsCheckingInterval: number }).connectionsCheckingInterval =
      Math.min(30_000, Math.max(100, config.headersTimeout / 4));
  }
  server.on('clientError', (error: Error & { code?: string }, socket: Duplex) =>
    answerClientError(error, socket, config.headersTimeout),
  );
  await new Promise<void>((resolve, reject) => {
    // A port in use says so, and what to do: one message with and without --workers (messages.ts).
    const failed = (error: Error) => reject(listenError(error, config.host, config.port));
    server.once('error', failed);
    server.listen({ port: config.port, host: config.host, reusePort: overrides.reusePort ?? false }, () => {
      server.off('error', failed);
      resolve();
    });
  });
  const { address, port } = server.address() as AddressInfo;
  const host = address.includes(':') ? `[${address}]` : address;
  let closing: Promise<void> | undefined;
  return {
    url: `${tls === undefined ? 'http' : 'https'}://${host}:${port}`,
    herald,
    server,
    close() {
      closing ??= (async () => {
        const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
        // Bridges first: what they still hold is published before the hub stops taking it.
        await bridges?.close();
        await herald.close();
        server.closeIdleConnections();
        await stopped;
      })();
      return closing;
    },
  };
}

const MAX_HEADER_BYTES = 128 * 1024;

const REASONS: Readonly<Record<number, string>> = {
  400: 'Bad Request',
  408: 'Request Timeout',
  431: 'Request Header Fields Too Large',
};

/** Requests Node refuses before Herald sees them still get problem+json, not a bare status line. */
function answerClientError(error: Error & { code?: string }, socket: Duplex, headersTimeoutMs: number): void {
  if (!socket.writable) return;
  const [status, code, detail] = clientProblem(error.code, headersTimeoutMs);
  const body = JSON.stringify(new HeraldError(status, code, detail).toProblem());
  // Node refused the request before it could be read: no id of the client's can be trusted, so a new one.
  socket.end(
    `HTTP/1.1 ${status} ${REASONS[status]}\r\n` +
      `content-type: application/problem+json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\n` +
      `${REQUEST_ID_HEADER}: ${globalThis.crypto.randomUUID()}\r\n` +
      `connection: close\r\n\r\n${body}`,
  );
}

function clientProblem(
  code: string | undefined,
  headersTimeoutMs: number,
): [ProblemStatus, ProblemCode, string] {
  switch (code) {
    case 'HPE_HEADER_OVERFLOW':
      return [
        431,
        'bad-http',
        `the request line and headers are over ${MAX_HEADER_BYTES / 1024} KiB; subscribe to fewer or shorter topics`,
      ];
    // node:http's headersTimeout (or requestTimeout, for a body that trickles in): the client is
    // slow, or holding sockets open on purpose. Not a malformed request, so not a 400.
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return [
        408,
        'request-timeout',
        `the request's headers did not all arrive within ${headersTimeoutMs / 1000} s; send the whole request at once`,
      ];
    default:
      return [400, 'bad-http', 'the request is not valid HTTP/1.1'];
  }
}

/**
 * A hub on the configured broker. An unreachable broker stops the start (`--on-broker-down fail`,
 * the default: nodes that cannot share a log must not pretend to). With `--on-broker-down local`
 * the broker's log rides out outages (backends/failover/): at start, and whenever the broker
 * fails later, this node serves on its own and rejoins the broker by itself when it is back,
 * saying so in `/readyz` (`fallback-local`, then `rejoining`).
 */
async function startHerald(
  config: ServeConfig,
  logger: HeraldLogger | undefined,
  overrides: ServeOverrides,
): Promise<Herald> {
  const options: HeraldOptions = {
    ...heraldOptions(config),
    ...(logger === undefined ? {} : { logger }),
    metrics: {
      public: config.metricsPublic,
      ...(overrides.metricsLabels === undefined ? {} : { labels: overrides.metricsLabels }),
    },
  };
  if (overrides.broker !== undefined) {
    const herald = createHerald({ ...options, broker: overrides.broker, degraded: overrides.degraded });
    await herald.hub.whenReady();
    return herald;
  }
  const broker = await brokerFor({
    url: config.broker,
    stream: config.stream,
    maxEvents: config.historySize,
    maxAgeMs: config.historyMaxAge,
    latestMaxKeys: config.latestMaxKeys,
    onError: (error, context) => logger?.error({ err: error }, `broker: ${context}`),
  });
  // The memory broker lives and dies with the process: there is no outage to ride out.
  const failover = config.onBrokerDown === 'local' && broker.kind !== 'memory';
  const herald = createHerald({
    ...options,
    broker,
    ...(failover ? { failover: failoverOptions(config, broker.kind, logger) } : {}),
  });
  try {
    await herald.hub.whenReady();
    // A broker that can lose what it acknowledged is the operator's choice to make knowingly.
    const warning = await persistenceWarningOf(broker).catch(() => undefined);
    if (warning !== undefined) logger?.warn({ broker: broker.kind }, warning);
    return herald;
  } catch (error) {
    await herald.close().catch(() => {});
    const reason = `the ${broker.kind} broker at ${redactUrl(config.broker)} is unreachable: ${(error as Error).message}`;
    throw new Error(
      `${reason}. Start it, or pass --on-broker-down local to have this node serve on its own until it is back`,
    );
  }
}

/** `--on-broker-down local`: the outage bound and probe, and every change of state in the log. */
function failoverOptions(config: ServeConfig, kind: string, logger: HeraldLogger | undefined) {
  return {
    outageBuffer: config.outageBuffer,
    probeIntervalMs: config.outageProbe,
    onError: (error: unknown, context: string) => logger?.error({ err: error }, `broker: ${context}`),
    onState: (state: OutageState, detail: string) => {
      if (state === 'local') {
        logger?.warn(
          { degraded: 'fallback-local', broker: kind },
          `${detail}; this node serves on its own, holding up to ${config.outageBuffer} events, ` +
            'and rejoins the broker when it is back (--on-broker-down local)',
        );
      } else logger?.info({ outage: state, broker: kind }, detail);
    },
  };
}

async function startBridgesOf(config: ServeConfig, herald: Herald, logger: HeraldLogger | undefined) {
  if (config.bridge.length === 0) return undefined;
  // A bridge listens to the backend its flag names, else the broker when it is of that kind, else
  // the backend's default (a local server).
  const brokerKind = backendOf(config.broker)?.kind;
  const urlOf = (kind: string, flag: string | undefined) =>
    flag ?? (brokerKind === kind ? config.broker : backendNamed(kind)?.bridge?.defaultUrl);
  const bridges = await startBridges(herald, config.bridge, {
    redisUrl: urlOf('redis', config.bridgeRedis),
    natsUrl: urlOf('nats', config.bridgeNats),
    onError: (error) => logger?.error({ err: error }, error.message),
  });
  herald.addStats('bridges', () => bridges.stats());
  logger?.info({}, `bridging ${config.bridge.length} source${config.bridge.length === 1 ? '' : 's'}`);
  return bridges;
}

export function heraldOptions(config: ServeConfig): HeraldOptions {
  const publisherJwt = config.mercure
    ? mercureJwt(
        config,
        config.mercurePublisherJwtKey,
        config.mercurePublisherJwtAlg,
        config.mercurePublisherJwksUrl,
      )
    : undefined;
  const subscriberJwt = config.mercure
    ? mercureJwt(
        config,
        config.mercureSubscriberJwtKey,
        config.mercureSubscriberJwtAlg,
        config.mercureSubscriberJwksUrl,
      )
    : undefined;
  // Mercure keys alone must not leave the native API open: it then accepts the same tokens, each
  // for its key's role only (a subscriber key's token never publishes, neither key's is admin).
  const mercureKeys = [
    ...(publisherJwt === undefined
      ? []
      : [{ ...publisherJwt, uses: ['publish'] as const, name: PUBLISHER_KEY }]),
    ...(subscriberJwt === undefined
      ? []
      : [{ ...subscriberJwt, uses: ['subscribe'] as const, name: SUBSCRIBER_KEY }]),
  ];
  const native = jwtOptions(config) ?? (mercureKeys.length === 0 ? undefined : mercureKeys);
  return {
    nodeId: `${hostname()}:${process.pid}`,
    cluster: { heartbeatMs: config.nodeHeartbeat, leaseMs: config.nodeLease },
    history: {
      maxEvents: config.historySize,
      maxAgeMs: config.historyMaxAge,
      latestMaxKeys: config.latestMaxKeys,
    },
    rewind: { maxEvents: config.maxRewind, maxAgeMs: config.historyMaxAge },
    snapshot: { maxEvents: config.maxSnapshot },
    heartbeatMs: config.heartbeat,
    retryMs: config.retry,
    idleTimeoutMs: config.idleTimeout,
    maxLifetimeMs: config.maxLifetime,
    maxDataBytes: config.maxDataSize,
    maxBodyBytes: config.maxBodySize,
    maxBatch: config.maxBatch,
    maxTopicsPerSubscription: config.maxTopics,
    maxSelectorLength: config.maxSelectorLength,
    outbox: {
      maxEvents: config.outboxMaxEvents,
      maxBytes: config.outboxMaxBytes,
      policy: config.overflowPolicy,
    },
    privateByDefault: config.privateByDefault,
    // --insecure: the operator said this network is theirs; without a key everyone may then publish.
    open: config.insecure,
    trustProxy: config.trustProxy,
    reauthLeadMs: config.reauthLead,
    corsOrigins: config.corsOrigin,
    compression: config.compression,
    limits: {
      scope: config.limitsScope,
      connectionsPerSecondPerIp: config.ipConnectionRate,
      connectionBurstPerIp: config.ipConnectionBurst,
      streamsPerIp: config.maxStreamsPerIp,
      streamsPerSubject: config.maxStreamsPerSubject,
      streamsPerTenant: config.maxStreamsPerTenant,
      publishesPerSecondPerSubject: config.publishRate,
      publishBurstPerSubject: config.publishBurst,
    },
    ...(native === undefined
      ? {}
      : { auth: { jwt: native, anonymous: config.anonymous, cookieName: config.cookieName } }),
    ...(config.authUrl === undefined
      ? {}
      : {
          authUrl: {
            url: config.authUrl,
            forwardHeaders: config.authForwardHeaders,
            timeoutMs: config.authTimeout,
          },
        }),
    ...(config.webhookUrl === undefined || config.webhookSecret === undefined
      ? {}
      : {
          webhook: {
            url: config.webhookUrl,
            secret: config.webhookSecret,
            batchDelayMs: config.webhookBatchDelay,
            testOnlyAllowWeakSecrets: config.testOnlyAllowWeakSecrets,
          },
        }),
    mercure: config.mercure
      ? {
          ...(publisherJwt === undefined ? {} : { publisherJwt }),
          ...(subscriberJwt === undefined ? {} : { subscriberJwt }),
          cookieName: config.mercureCookieName,
          ...(config.mercurePublishOrigin.length === 0
            ? {}
            : { publishOrigins: config.mercurePublishOrigin }),
          subscriptions: config.mercureSubscriptions,
        }
      : false,
  };
}

/**
 * Mercure's keys as the reference hub takes them: a key and its algorithm (HS* take a secret, the
 * others a PEM public key), or a JWKS URL.
 */
function mercureJwt(
  config: ServeConfig,
  key: string | undefined,
  alg: string | undefined,
  jwksUrl: string | undefined,
): JwtOptions | undefined {
  if (key === undefined && jwksUrl === undefined) return undefined;
  const options: { -readonly [K in keyof JwtOptions]: JwtOptions[K] } = {
    clockToleranceSec: config.jwtLeeway / 1000,
    testOnlyAllowWeakSecrets: config.testOnlyAllowWeakSecrets,
  };
  if (key !== undefined) {
    if (isHmacKey(key, alg)) options.secrets = [key];
    else options.publicKeys = [readPem(key)];
  }
  if (jwksUrl !== undefined) options.jwksUrl = jwksUrl;
  if (alg !== undefined) options.algorithms = [alg];
  return options;
}

const PUBLISHER_KEY = "Mercure's publisher key";
const SUBSCRIBER_KEY = "Mercure's subscriber key";

function jwtOptions(config: ServeConfig): JwtOptions | undefined {
  if (config.jwtSecret === undefined && config.jwtPublicKey === undefined && config.jwksUrl === undefined) {
    return undefined;
  }
  const options: { -readonly [K in keyof JwtOptions]: JwtOptions[K] } = {
    clockToleranceSec: config.jwtLeeway / 1000,
    testOnlyAllowWeakSecrets: config.testOnlyAllowWeakSecrets,
  };
  if (config.jwtSecret !== undefined) options.secrets = [config.jwtSecret];
  if (config.jwtPublicKey !== undefined) options.publicKeys = [readPem(config.jwtPublicKey)];
  if (config.jwksUrl !== undefined) options.jwksUrl = config.jwksUrl;
  if (config.jwtAudience !== undefined) options.audience = config.jwtAudience;
  if (config.jwtIssuer !== undefined) options.issuer = config.jwtIssuer;
  return options;
}

/** The PEM text itself (handy in an environment variable), or the file holding it. */
function readPem(value: string): string {
  if (value.includes('-----BEGIN')) return value;
  try {
    return readFileSync(value, 'utf8');
  } catch (error) {
    throw new Error(`cannot read the public key file ${value}: ${(error as Error).message}`);
  }
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127(\.\d{1,3}){3}$/.test(host);
}
