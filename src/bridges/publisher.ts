import type { PublishInput } from '../core/event.ts';

/**
 * What bridges need of the hub they feed: publishing, the error sink, the node's name, and two
 * facts about its hub. `Herald` is one (`herald serve` passes it); an embedding app may pass
 * anything shaped so.
 */
export interface BridgePublisher {
  /** Publishes a batch, all accepted or all refused (a `HeraldError`; 503: not now, try again). */
  publish(inputs: readonly PublishInput[]): Promise<unknown>;
  /** Where bridge errors go when the bridge options name no `onError`. */
  readonly onError: (error: unknown, context: string) => void;
  /** This node's name: runners on it are named after it in Redis leases. */
  readonly nodeId: string;
  readonly hub: {
    /** Shutting down: a 503 then means "never", not "not now". */
    readonly isClosing: boolean;
    /** Events one publish may hold. */
    readonly options: { readonly maxBatch: number };
  };
}
