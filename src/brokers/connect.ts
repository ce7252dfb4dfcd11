import type { Broker } from '../core/log.ts';
import { MemoryBroker } from './memory.ts';
import { loadOptionalPeer } from './optional-peer.ts';

/** What `npm install` needs for each backend: optional peer dependencies of herald. */
const REDIS_PACKAGES: readonly string[] = ['redis'];
const NATS_PACKAGES: readonly string[] = ['@nats-io/transport-node', '@nats-io/jetstream', '@nats-io/kv'];

export interface BrokerSettings {
  /** `memory`, `redis://host:port[/db]` (or `rediss://`), or `nats://host:port[,host:port…]`. */
  readonly url: string;
  /** The log's name on the backend: Redis key prefix, JetStream stream name. Default `herald`. */
  readonly stream?: string;
  readonly maxEvents?: number;
  readonly maxAgeMs?: number;
  readonly onError?: (error: unknown, context: string) => void;
}

/**
 * The broker a URL names. Client libraries are loaded only for the backend in use, so a hub on
 * the memory broker never loads a Redis or NATS client. They are optional peer dependencies of
 * herald: when the one a URL needs is not installed, the error says what to install.
 */
export async function brokerFor(settings: BrokerSettings): Promise<Broker> {
  const { url, stream = 'herald', ...history } = settings;
  if (url === 'memory') return new MemoryBroker(history);
  const scheme = /^([a-z]+):\/\//i.exec(url)?.[1]?.toLowerCase();
  if (scheme === 'redis' || scheme === 'rediss') {
    const { RedisBroker } = await loadOptionalPeer(
      () => import('./redis.ts'),
      'the Redis broker',
      REDIS_PACKAGES,
    );
    return new RedisBroker({ url, stream, ...history });
  }
  if (scheme === 'nats') {
    const { NatsBroker } = await loadOptionalPeer(
      () => import('./nats.ts'),
      'the NATS broker',
      NATS_PACKAGES,
    );
    return new NatsBroker({ servers: url.split(','), stream: stream.toUpperCase(), ...history });
  }
  throw new Error(
    `broker "${url}" is not one Herald knows: use memory, redis://host:port[/db] or nats://host:port`,
  );
}
