import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { redactUrl } from '../brokers/redact-url.ts';
import { withTimeout } from '../brokers/with-timeout.ts';
import { BridgeError, type Pump } from './pump.ts';

// The client is an optional peer dependency, loaded at run time by Node from the app's
// node_modules: the comments keep app bundlers (Next.js) from resolving it at build time, where
// an app on the memory broker does not have it.
const { connect } = await import(
  /* webpackIgnore: true */ /* turbopackIgnore: true */ '@nats-io/transport-node'
);

/*
 * NATS core subjects → Herald.
 *
 * Delivery: core NATS is at-most-once. A message published while no bridge is subscribed (every
 * node down, or disconnected and not yet reconnected) is dropped by the server; that is the gap
 * Herald's own log closes for its clients, but a bridge can only carry what reaches it. When the
 * publisher writes to a subject that a JetStream stream captures, the bridge could instead
 * consume that stream with a durable consumer (ack after `herald.publish` resolves) and lose
 * nothing across restarts; that mode is not implemented yet.
 *
 * One event per message across nodes: every node subscribes in the same queue group, and the
 * server hands each message to one member only. The group is named after the spec's hash, so two
 * different bridges on the same subject each still get every message.
 *
 * Reconnection is the client's: it retries forever and re-subscribes by itself.
 */

export interface NatsBridgeOptions {
  /** `nats://host:port`, several separated by commas. */
  readonly url: string;
  readonly nodeId: string;
  /** Queue group prefix. Default `herald-bridge`. */
  readonly queueGroup: string;
  /** How long the first connection may take before `start` fails, ms. */
  readonly connectTimeoutMs: number;
  readonly report: (error: BridgeError) => void;
}

export class NatsBridge {
  private readonly connection: NatsConnection;
  private readonly subscriptions: Subscription[] = [];
  private up = true;
  private closing = false;
  private closed = false;

  private constructor(connection: NatsConnection) {
    this.connection = connection;
  }

  static async start(
    pumps: readonly { readonly pump: Pump; readonly hash: string }[],
    options: NatsBridgeOptions,
  ): Promise<NatsBridge> {
    const servers = options.url.split(',').map((server) => server.trim());
    let connection: NatsConnection;
    try {
      connection = await connect({
        servers,
        name: `herald-bridge ${options.nodeId}`,
        timeout: options.connectTimeoutMs,
        maxReconnectAttempts: -1,
        reconnectTimeWait: 1_000,
      });
    } catch (error) {
      throw new Error(
        `NATS bridges: cannot reach NATS at ${servers.map(redactUrl).join(', ')}: ${error instanceof Error ? error.message : String(error)}`,
        { cause: error },
      );
    }
    const bridge = new NatsBridge(connection);
    void bridge.watch(options);
    for (const { pump, hash } of pumps) {
      const { source, pattern } = pump.spec;
      bridge.subscriptions.push(
        connection.subscribe(pattern, {
          queue: `${options.queueGroup}-${hash}`,
          callback: (error, message) => {
            if (error !== null) {
              // e.g. a permissions violation on the subject: the subscription is over.
              options.report(
                new BridgeError(source, `subscription failed: ${error.message}`, undefined, error),
              );
              return;
            }
            if (!bridge.closed) pump.push(message.subject, message.string());
          },
        }),
      );
    }
    try {
      // The server has the subscriptions once it answers a ping sent after them.
      await connection.flush();
    } catch (error) {
      await connection.close();
      throw new Error(`NATS bridges: subscribing failed: ${(error as Error).message}`, { cause: error });
    }
    return bridge;
  }

  get connected(): boolean {
    return this.up && !this.connection.isClosed();
  }

  /** Stops the subscriptions, lets the client deliver what it already holds, and disconnects. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    try {
      await withTimeout(this.connection.drain(), 2_000, 'drain');
    } catch {
      // Unreachable server or slow drain: close without waiting.
    }
    this.closed = true;
    if (!this.connection.isClosed()) await this.connection.close();
  }

  private async watch(options: NatsBridgeOptions): Promise<void> {
    for await (const status of this.connection.status()) {
      if (status.type === 'disconnect') {
        this.up = false;
        if (this.closing) continue;
        options.report(
          new BridgeError('nats', `connection to ${redactUrl(status.server)} lost; reconnecting`),
        );
      } else if (status.type === 'reconnect') {
        this.up = true;
      }
    }
  }
}
