/** How long a node waits before trying again to subscribe to a bus it could not reach. */
const RESUBSCRIBE_DELAY_MS = 1000;

/**
 * One node's listeners on its cluster bus (`Broadcasting` in core/cluster.ts), and the
 * subscription that feeds them: made at the first `listen` (a node that never listens opens
 * nothing), tried again every second until it holds, and kept until `close` (the brokers'
 * clients re-subscribe by themselves after a reconnection). Every backend's bus shares it.
 */
export class BusListeners {
  private readonly listeners = new Set<(message: string) => void>();
  private readonly subscribe: (() => Promise<void>) | undefined;
  private readonly onError: (error: unknown, context: string) => void;
  private subscribing: Promise<void> | undefined;
  private retry: ReturnType<typeof setTimeout> | undefined;
  private closed = false;

  /**
   * `subscribe` starts the flow of messages into `deliver`; none for a bus that needs no
   * subscription (a direct call). `onError` hears a failed attempt (then another follows) and a
   * listener that threw (the others still get the message). Default: ignored.
   */
  constructor(
    subscribe?: () => Promise<void>,
    onError: (error: unknown, context: string) => void = () => {},
  ) {
    this.subscribe = subscribe;
    this.onError = onError;
  }

  listen(listener: (message: string) => void): () => void {
    if (this.closed) return () => {};
    // A wrapper, so that one function listening twice is two listeners, each stopped alone.
    const own = (message: string) => listener(message);
    this.listeners.add(own);
    if (this.subscribe !== undefined) this.subscribing ??= this.attempt(this.subscribe);
    return () => {
      this.listeners.delete(own);
    };
  }

  /** Hands `message` to every listener of now. */
  deliver(message: string): void {
    this.each([...this.listeners], message);
  }

  /**
   * Hands `message`, on a later turn as a broker's bus would, to the listeners of now: one that
   * starts listening meanwhile does not get it.
   */
  deliverSoon(message: string): void {
    const listeners = [...this.listeners];
    queueMicrotask(() => this.each(listeners, message));
  }

  private each(listeners: readonly ((message: string) => void)[], message: string): void {
    for (const listener of listeners) {
      try {
        listener(message);
      } catch (error) {
        this.onError(error, 'a cluster bus listener');
      }
    }
  }

  /** The subscription is gone for good (its connection ended): made anew, on a new one. */
  resubscribe(): void {
    if (this.closed || this.subscribe === undefined) return;
    clearTimeout(this.retry);
    this.subscribing = this.attempt(this.subscribe);
  }

  /** Stops every listener and any attempt to subscribe still to come. */
  close(): void {
    this.closed = true;
    clearTimeout(this.retry);
    this.listeners.clear();
  }

  private async attempt(subscribe: () => Promise<void>): Promise<void> {
    try {
      await subscribe();
    } catch (error) {
      if (this.closed) return;
      this.onError(error, 'subscribing to the cluster bus');
      this.retry = setTimeout(() => {
        this.subscribing = this.closed ? undefined : this.attempt(subscribe);
      }, RESUBSCRIBE_DELAY_MS);
      this.retry.unref?.();
    }
  }
}
