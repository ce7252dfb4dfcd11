import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import {
  BridgeError,
  type BridgeInlet,
  type RunningSource,
  type SourceSettings,
} from '../../bridges/source.ts';
import { redactUrl } from '../redact-url.ts';
import { withTimeout } from '../with-timeout.ts';
import { natsConnection } from './client.ts';

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
 * Reconnection is the client's (see client.ts): it retries forever and re-subscribes by itself.
 */

export class NatsBridge implements RunningSource {
  private readonly connection: NatsConnection;
  private readonly subscriptions: Subscription[] = [];
  private up = true;
  private closing = false;
  private closed = false;

  private constructor(connection: NatsConnection) {
    this.connection = connection;
  }

  static async start(
    inlets: readonly { readonly inlet: BridgeInlet; readonly hash: string }[],
    options: SourceSettings,
  ): Promise<NatsBridge> {
    const servers = options.url.split(',').map((server) => server.trim());
    let connection: NatsConnection;
    try {
      connection = await natsConnection({
        servers,
        name: `herald-bridge ${options.nodeId}`,
        connectTimeoutMs: options.connectTimeoutMs,
      });
    } catch (error) {
      throw new Error(
        `NATS bridges: cannot reach NATS at ${servers.map(redactUrl).join(', ')}: ${error instanceof Error ? error.message : String(error)}`,
        { cause: error },
      );
    }
    const bridge = new NatsBridge(connection);
    void bridge.watch(options);
    for (const { inlet, hash } of inlets) {
      const { source, pattern } = inlet.spec;
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
            if (!bridge.closed) inlet.push(message.subject, message.string());
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

  /** No figures of its own: the server's queue group, not the bridge, picks who publishes. */
  stats(): readonly object[] {
    return [];
  }

  private async watch(options: SourceSettings): Promise<void> {
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
