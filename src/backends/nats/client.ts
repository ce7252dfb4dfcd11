import type { NatsConnection } from '@nats-io/transport-node';

// The client is an optional peer dependency, loaded at run time by Node from the app's
// node_modules: the comments keep app bundlers (Next.js) from resolving it at build time, where
// an app on the memory broker does not have it.
const { connect } = await import(
  /* webpackIgnore: true */ /* turbopackIgnore: true */ '@nats-io/transport-node'
);

export interface NatsClientSettings {
  /** `nats://host:port`, or several for a cluster. */
  readonly servers: string | string[];
  /** The connection's name, as the server's monitoring shows it. */
  readonly name: string;
  /** How long the first connection may take before it fails, ms. */
  readonly connectTimeoutMs: number;
}

/**
 * Every NATS connection Herald opens (the broker's, the bridges') is made here, so they all
 * reconnect the same way: once connected, never give up (a node outlives its NATS server's
 * restarts), retrying every half second or so, and a dead peer that never closes the socket is
 * noticed within ~15 s. Only a fatal error (say, revoked credentials) ends such a connection.
 */
export function natsConnection(settings: NatsClientSettings): Promise<NatsConnection> {
  return connect({
    servers: settings.servers,
    name: settings.name,
    timeout: settings.connectTimeoutMs,
    reconnect: true,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 500,
    reconnectJitter: 250,
    pingInterval: 5000,
    maxPingOut: 3,
  });
}
