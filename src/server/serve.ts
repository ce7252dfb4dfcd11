import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { hostname } from 'node:os';
import type { Duplex } from 'node:stream';
import type { JwtOptions } from '../auth/jwt.ts';
import { startBridges } from '../bridges/index.ts';
import type { Broker } from '../brokers/broker.ts';
import { brokerFor } from '../brokers/connect.ts';
import { redactUrl } from '../brokers/redact-url.ts';
import { HeraldError } from '../core/errors.ts';
import { createHerald, type Herald, type HeraldOptions } from '../herald.ts';
import { nodeHandler } from '../http/node.ts';
import type { ServeConfig } from './config.ts';
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
}

/** Starts the standalone hub: its broker behind a node:http server. */
export async function serve(
  config: ServeConfig,
  log: (line: string) => void = () => {},
  overrides: ServeOverrides = {},
): Promise<RunningServer> {
  // A bad certificate stops the start before a broker connection is made for nothing.
  const tls = loadTls(config);
  const herald = await startHerald(config, log, overrides);
  const bridges = await startBridgesOf(config, herald, log);
  // Without a key anyone who can reach the hub may publish anything: only this machine may.
  if (herald.open && !config.insecure && !isLoopback(config.host)) {
    throw new Error(
      `refusing to listen on ${config.host} in open development mode (no JWT key configured): anyone who ` +
        'can reach it could publish. Configure --jwt-secret, --jwt-public-key or --jwks-url, ' +
        'or pass --insecure if this network is yours alone',
    );
  }
  // Room for a full subscription in the URL: 100 selectors of up to 1 024 characters.
  const server = createHeraldServer(nodeHandler(herald), tls, MAX_HEADER_BYTES);
  server.on('clientError', answerClientError);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port: config.port, host: config.host, reusePort: overrides.reusePort ?? false }, () => {
      server.off('error', reject);
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

/** Requests Node refuses before Herald sees them still get problem+json, not a bare status line. */
function answerClientError(error: Error & { code?: string }, socket: Duplex): void {
  if (!socket.writable) return;
  const [status, detail] =
    error.code === 'HPE_HEADER_OVERFLOW'
      ? [
          431,
          `the request line and headers are over ${MAX_HEADER_BYTES / 1024} KiB; subscribe to fewer or shorter topics`,
        ]
      : [400, 'the request is not valid HTTP/1.1'];
  const body = JSON.stringify(new HeraldError(status, 'bad-http', detail).toProblem());
  socket.end(
    `HTTP/1.1 ${status} ${status === 431 ? 'Request Header Fields Too Large' : 'Bad Request'}\r\n` +
      `content-type: application/problem+json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\n` +
      `connection: close\r\n\r\n${body}`,
  );
}

/**
 * A hub on the configured broker. An unreachable broker stops the start (`--on-broker-down fail`,
 * the default: nodes that cannot share a log must not pretend to) or leaves this node on its own
 * memory log, saying so in `/readyz` (`local`).
 */
async function startHerald(
  config: ServeConfig,
  log: (line: string) => void,
  overrides: ServeOverrides,
): Promise<Herald> {
  const options = heraldOptions(config);
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
    onError: (error, context) =>
      log(`herald: broker: ${context}: ${error instanceof Error ? error.message : error}`),
  });
  const herald = createHerald({ ...options, broker });
  try {
    await herald.hub.whenReady();
    return herald;
  } catch (error) {
    await herald.close().catch(() => {});
    const reason = `the ${broker.kind} broker at ${redactUrl(config.broker)} is unreachable: ${(error as Error).message}`;
    if (config.onBrokerDown === 'fail') {
      throw new Error(`${reason}. Start it, or pass --on-broker-down local to run this node alone on memory`);
    }
    log(`herald: ${reason}; running alone on the memory broker (--on-broker-down local)`);
    const local = createHerald({ ...options, degraded: 'fallback-local' });
    await local.hub.whenReady();
    return local;
  }
}

async function startBridgesOf(config: ServeConfig, herald: Herald, log: (line: string) => void) {
  if (config.bridge.length === 0) return undefined;
  const bridges = await startBridges(herald, config.bridge, {
    redisUrl:
      config.bridgeRedis ?? (/^rediss?:/i.test(config.broker) ? config.broker : 'redis://127.0.0.1:6379'),
    natsUrl: config.bridgeNats ?? (/^nats:/i.test(config.broker) ? config.broker : 'nats://127.0.0.1:4222'),
    onError: (error) => log(`herald: ${error.message}`),
  });
  herald.addStats('bridges', () => bridges.stats());
  log(`herald: bridging ${config.bridge.length} source${config.bridge.length === 1 ? '' : 's'}`);
  return bridges;
}

export function heraldOptions(config: ServeConfig): HeraldOptions {
  const jwt = jwtOptions(config);
  return {
    nodeId: `${hostname()}:${process.pid}`,
    history: { maxEvents: config.historySize, maxAgeMs: config.historyMaxAge },
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
    reauthLeadMs: config.reauthLead,
    corsOrigins: config.corsOrigin,
    limits: {
      connectionsPerSecondPerIp: config.ipConnectionRate,
      connectionBurstPerIp: config.ipConnectionBurst,
      streamsPerIp: config.maxStreamsPerIp,
      streamsPerSubject: config.maxStreamsPerSubject,
      streamsPerTenant: config.maxStreamsPerTenant,
      publishesPerSecondPerSubject: config.publishRate,
      publishBurstPerSubject: config.publishBurst,
    },
    ...(jwt === undefined
      ? {}
      : { auth: { jwt, anonymous: config.anonymous, cookieName: config.cookieName } }),
  };
}

function jwtOptions(config: ServeConfig): JwtOptions | undefined {
  if (config.jwtSecret === undefined && config.jwtPublicKey === undefined && config.jwksUrl === undefined) {
    return undefined;
  }
  const options: { -readonly [K in keyof JwtOptions]: JwtOptions[K] } = {
    clockToleranceSec: config.jwtLeeway / 1000,
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
    throw new Error(`--jwt-public-key: cannot read ${value}: ${(error as Error).message}`);
  }
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127(\.\d{1,3}){3}$/.test(host);
}
