import type { Broker } from './broker.ts';
import { MemoryBroker } from './memory.ts';

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
 * the memory broker never loads a Redis or NATS client.
 */
export async function brokerFor(settings: BrokerSettings): Promise<Broker> {
  const { url, stream = 'herald', ...history } = settings;
  if (url === 'memory') return new MemoryBroker(history);
  const scheme = /^([a-z]+):\/\//i.exec(url)?.[1]?.toLowerCase();
  if (scheme === 'redis' || scheme === 'rediss') {
    const { RedisBroker } = await import('./redis.ts');
    return new RedisBroker({ url, stream, ...history });
  }
  if (scheme === 'nats') {
    const { NatsBroker } = await import('./nats.ts');
    return new NatsBroker({ servers: url.split(','), stream: stream.toUpperCase(), ...history });
  }
  throw new Error(
    `broker "${url}" is not one Herald knows: use memory, redis://host:port[/db] or nats://host:port`,
  );
}
