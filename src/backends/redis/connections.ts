import { HeraldError } from '../../core/errors.ts';
import { redactUrl } from '../redact-url.ts';
import { ErrorReply, type RedisClient, redisClient } from './client.ts';
import type { Script } from './scripts.ts';

/** How long a `XREAD BLOCK` waits: bounds how long `close()` or a silent dead link can go unnoticed. */
export const BLOCK_MS = 1000;
/** A healthy Redis answers in milliseconds; past this a command fails (the append gets a 503). */
export const COMMAND_TIMEOUT_MS = 3000;
/** Bounds the first connection: `start()` fails with a clear message rather than hanging. */
const CONNECT_TIMEOUT_MS = 2000;
/** How long a command waits for a reconnection under way before it fails (the append's 503). */
const RECONNECT_GRACE_MS = 500;
const ERROR_REPORT_INTERVAL_MS = 5000;

/**
 * The Redis broker's connections: one for commands, one for the feed's blocking reads (a
 * `XREAD BLOCK` holds its connection), and, made at its first use only, one for the cluster bus's
 * SUBSCRIBE (a subscribed connection runs nothing else). Every failure to get an answer becomes
 * the 503 callers act on, and connection trouble reaches the operator throttled.
 */
export class RedisConnections {
  readonly client: RedisClient;
  readonly blocking: RedisClient;
  /** Whether the command connection has ever been up (the age sweep waits for it). */
  clientReady = false;
  /** Set by `close()`: nothing is opened or reported any more. */
  closed = false;
  /** Told when the feed connection is back after being lost. */
  feedReconnected: (() => void) | undefined;
  private readonly url: string;
  private readonly onError: (error: unknown, context: string) => void;
  private blockingReady = false;
  private opening: Promise<unknown> | undefined;
  private reconnecting: Promise<void> | undefined;
  private blockingOpening: Promise<unknown> | undefined;
  private readonly lastReport = new Map<string, number>();
  private subscriberClient: RedisClient | undefined;

  constructor(url: string, onError: (error: unknown, context: string) => void) {
    this.url = url;
    this.onError = onError;
    this.client = newClient(url, 0);
    this.blocking = newClient(url, BLOCK_MS);
    // node-redis emits 'error' on every failed (re)connection; unlistened, it would crash the process.
    this.client.on('error', (error: unknown) => this.report(error, 'redis connection'));
    this.client.on('ready', () => {
      this.clientReady = true;
      this.lastReport.delete('redis connection');
    });
    this.blocking.on('error', (error: unknown) => this.report(error, 'redis feed connection'));
    this.blocking.on('ready', () => {
      // Back after a lost connection: Redis may have restarted meanwhile, empty or from a snapshot.
      if (this.blockingReady) this.feedReconnected?.();
      this.blockingReady = true;
      this.lastReport.delete('redis feed connection');
      this.lastReport.delete('feed');
    });
  }

  /**
   * The bus's connection, made (not yet opened) at first use, with the same reconnect policy as
   * the others; after a reconnection node-redis subscribes it again by itself.
   */
  get subscriber(): RedisClient {
    if (this.subscriberClient === undefined) {
      const client = newClient(this.url, 0);
      client.on('error', (error: unknown) => this.report(error, 'redis bus connection'));
      client.on('ready', () => this.lastReport.delete('redis bus connection'));
      this.subscriberClient = client;
    }
    return this.subscriberClient;
  }

  /** The bus's connection if it was ever made: `close()` ends it. */
  get madeSubscriber(): RedisClient | undefined {
    return this.subscriberClient;
  }

  /** Where Redis is, its password masked: for messages. */
  get where(): string {
    return redactUrl(this.url);
  }

  /** EVALSHA, and EVAL when the server does not have the script yet (first use, or after a restart). */
  run(script: Script, keys: readonly string[], args: readonly string[], what: string): Promise<unknown> {
    return this.call(what, async () => {
      const tail = [String(keys.length), ...keys, ...args];
      try {
        return await this.client.sendCommand(['EVALSHA', script.sha, ...tail]);
      } catch (error) {
        if (!(error instanceof ErrorReply && error.message.startsWith('NOSCRIPT'))) throw error;
        return await this.client.sendCommand(['EVAL', script.source, ...tail]);
      }
    });
  }

  /** Runs a command; any failure to get an answer from Redis is a 503 the caller can act on. */
  async call<T>(what: string, command: () => Promise<T>): Promise<T> {
    try {
      if (!this.client.isOpen) await this.connect();
      else if (!this.client.isReady) await this.reconnected(RECONNECT_GRACE_MS);
      return await command();
    } catch (error) {
      if (error instanceof HeraldError) throw error;
      const detail =
        error instanceof ErrorReply
          ? `redis refused the ${what}: ${error.message}`
          : `redis unreachable at ${redactUrl(this.url)} (${what}): ${message(error)}`;
      throw new HeraldError(503, 'broker-unavailable', detail);
    }
  }

  /**
   * Waits a little for a reconnection under way: a blip (a killed connection, a failover) costs
   * the caller a few milliseconds instead of a 503, and a real outage still fails fast.
   */
  private async reconnected(ms: number): Promise<void> {
    this.reconnecting ??= new Promise<void>((resolve) => this.client.once('ready', resolve)).finally(() => {
      this.reconnecting = undefined;
    });
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([this.reconnecting, new Promise((resolve) => (timer = setTimeout(resolve, ms)))]);
    clearTimeout(timer);
  }

  /**
   * Opens the command connection, or waits for the opening under way. Once it has been up,
   * node-redis reconnects by itself; a first connection that fails is tried again on next use.
   */
  async connect(): Promise<void> {
    if (this.closed) throw new HeraldError(503, 'broker-unavailable', 'the Redis broker is closed');
    if (!this.client.isOpen) {
      this.opening = this.client.connect().finally(() => {
        this.opening = undefined;
      });
    }
    try {
      await this.opening;
    } catch (error) {
      throw new HeraldError(
        503,
        'broker-unavailable',
        `redis unreachable at ${redactUrl(this.url)}: ${message(error)}`,
      );
    }
  }

  async connectBlocking(): Promise<void> {
    if (this.closed) return;
    if (!this.blocking.isOpen) {
      this.blockingOpening = this.blocking.connect().finally(() => {
        this.blockingOpening = undefined;
      });
    }
    try {
      await this.blockingOpening;
    } catch (error) {
      throw new HeraldError(
        503,
        'broker-unavailable',
        `redis unreachable at ${redactUrl(this.url)} (feed): ${message(error)}`,
      );
    }
  }

  /** Reports trouble no caller waits for: the first of an outage, then at most one per context every few seconds. */
  report(error: unknown, context: string): void {
    if (this.closed) return;
    const now = Date.now();
    const last = this.lastReport.get(context);
    if (last !== undefined && now - last < ERROR_REPORT_INTERVAL_MS) return;
    this.lastReport.set(context, now);
    this.onError(error, context);
  }
}

function newClient(url: string, blockMs: number): RedisClient {
  return redisClient({
    url,
    resp2: true,
    // While disconnected, fail at once (the append answers 503) instead of queueing commands
    // that would run minutes later, after the publisher was told nothing.
    failFast: true,
    commandTimeoutMs: blockMs + COMMAND_TIMEOUT_MS,
    connectTimeoutMs: CONNECT_TIMEOUT_MS,
    // The first connection fails fast (start() reports it); once up, retry forever.
    firstConnectMs: 0,
  });
}

export function message(error: unknown): string {
  if (error instanceof AggregateError && error.errors.length > 0) return message(error.errors[0]);
  if (error instanceof Error) return error.message || error.name;
  return String(error);
}
