import type { Broadcasting } from '../../core/cluster.ts';
import { HeraldError } from '../../core/errors.ts';
import { BusListeners } from '../bus-listeners.ts';
import type { Link } from './stream.ts';

/** What the bus needs of its broker: the connection it shares, and whether it is up. */
export interface BusNode {
  ready(): Promise<Link>;
  /** Whether the socket is up now. */
  connected(): boolean;
  closed(): boolean;
  /** Where NATS is, for messages. */
  where(): string;
  onError(error: unknown, context: string): void;
}

/**
 * The cluster bus on a core NATS subject, `<stream in lower case>.bus` (beside the log's
 * `<stream>.events`, so two Herald clusters with different stream names do not hear each other),
 * on the broker's own connection: no connection of its own, and a node that never listens
 * subscribes to nothing. At most once, as core NATS is; the client subscribes again by itself
 * after a reconnection, and a connection that ended for good is replaced by the broker's next one.
 */
export class NatsBus implements Broadcasting {
  readonly subject: string;
  private readonly node: BusNode;
  private readonly listeners: BusListeners;

  constructor(stream: string, node: BusNode) {
    this.subject = `${stream.toLowerCase()}.bus`;
    this.node = node;
    this.listeners = new BusListeners(
      () => this.subscribe(),
      (error, context) => node.onError(error, context),
    );
  }

  async broadcast(message: string): Promise<void> {
    if (typeof message !== 'string') throw new TypeError('a cluster bus message must be a string');
    const link = await this.node.ready();
    // While the client reconnects a publish would only wait in its buffer, and arrive late.
    if (!this.node.connected() || link.nc.isClosed()) {
      throw new HeraldError(
        503,
        'broker-unavailable',
        `nats unreachable: connection to ${this.node.where()} lost, reconnecting; the broadcast was not sent`,
      );
    }
    link.nc.publish(this.subject, message);
  }

  listen(listener: (message: string) => void): () => void {
    return this.listeners.listen(listener);
  }

  close(): void {
    this.listeners.close();
  }

  private async subscribe(): Promise<void> {
    const link = await this.node.ready();
    if (this.node.closed()) return;
    link.nc.subscribe(this.subject, {
      callback: (error, message) => {
        if (error === null) this.listeners.deliver(message.string());
        else this.node.onError(error, 'the cluster bus subscription');
      },
    });
    link.nc.closed().then(() => {
      if (!this.node.closed()) this.listeners.resubscribe();
    });
  }
}
