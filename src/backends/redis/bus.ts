import type { Broadcasting } from '../../core/cluster.ts';
import { BusListeners } from '../bus-listeners.ts';
import type { RedisConnections } from './connections.ts';

/**
 * The cluster bus on Redis pub/sub: PUBLISH on the broker's command connection, SUBSCRIBE on a
 * connection of its own opened at the first `listen` (a node that never listens opens none).
 * At most once, as pub/sub is: a message published while a node's subscriber is down (Redis
 * restarting, the node reconnecting) is not kept for it.
 *
 * The channel is `<stream>:bus:<database>`: named from the stream, so that two Herald clusters
 * on one Redis with different `stream` names do not hear each other, and from the database of
 * the URL, because pub/sub ignores databases (two clusters on databases 0 and 1 would otherwise
 * share it).
 */
export class RedisBus implements Broadcasting {
  readonly channel: string;
  private readonly connections: RedisConnections;
  private readonly listeners: BusListeners;

  constructor(stream: string, url: string, connections: RedisConnections) {
    this.channel = `${stream}:bus:${databaseOf(url)}`;
    this.connections = connections;
    this.listeners = new BusListeners(
      () => this.subscribe(),
      (error, context) => connections.report(error, context),
    );
  }

  async broadcast(message: string): Promise<void> {
    if (typeof message !== 'string') throw new TypeError('a cluster bus message must be a string');
    await this.connections.call('broadcast', () => this.connections.client.publish(this.channel, message));
  }

  listen(listener: (message: string) => void): () => void {
    return this.listeners.listen(listener);
  }

  /** Stops the listeners and ends the subscriber connection, if one was made. */
  close(): void {
    this.listeners.close();
    const subscriber = this.connections.madeSubscriber;
    if (subscriber?.isOpen === true) subscriber.destroy();
  }

  private async subscribe(): Promise<void> {
    if (this.connections.closed) return;
    const subscriber = this.connections.subscriber;
    if (!subscriber.isOpen) await subscriber.connect();
    // Closed while connecting: close() found nothing open to end.
    if (this.connections.closed) {
      subscriber.destroy();
      return;
    }
    // The same function each attempt: node-redis keeps one per channel, so a retry after a
    // subscribe that did land delivers nothing twice.
    await subscriber.subscribe(this.channel, this.receive);
  }

  private readonly receive = (message: string): void => this.listeners.deliver(message);
}

/** The database a Redis URL selects (`redis://host:6379/2` → 2); 0 when it names none. */
export function databaseOf(url: string): number {
  try {
    const db = Number(new URL(url).pathname.slice(1) || '0');
    return Number.isSafeInteger(db) && db >= 0 ? db : 0;
  } catch {
    return 0;
  }
}
