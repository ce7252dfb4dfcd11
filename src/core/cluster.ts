import type { Log } from './log.ts';

/**
 * What the nodes sharing one log share besides it, for operations across a cluster (presence,
 * listing and ending connections, every node's figures, limits counted over all nodes): a
 * broadcast bus and shared counters. Like the abilities in log.ts, each is a separate small
 * interface a backend may implement and is checked for where it is used (`broadcasterOf`,
 * `sharedCounterOf`); a log without them runs as a cluster of one node.
 *
 * Nothing here is on the path of an event: the bus carries control messages (a node's
 * heartbeat, a question to every node and its answers, a presence change), the counters are
 * touched when a stream opens or closes, and per chunk of publishes, not per event.
 */

/**
 * A bus to every node that shares the log: Redis pub/sub, NATS core subjects, the primary's pipe
 * for workers, a direct call for the memory log.
 */
export interface Broadcasting {
  /**
   * Sends `message` to the listeners of every node sharing the log, this node's included: at
   * most once, in order per sender, kept for no one (a node that is not listening misses it).
   */
  broadcast(message: string): Promise<void>;
  /** Calls `listener` with every message broadcast from now on; returns the function that stops it. */
  listen(listener: (message: string) => void): () => void;
}

/**
 * Counts kept by the broker, for limits over every node: a node counts under its own name, so
 * that what a node that died had counted can be forgotten (`live` names the nodes still alive).
 */
export interface SharedCounting {
  /**
   * Counts one more for `node` under `key` unless the counts of the `live` nodes under it already
   * sum to `limit` or more, atomically across nodes. Counts of nodes not in `live` are dropped;
   * `node` itself always counts as alive (a node not yet in the others' view must not wipe its
   * own counts). Resolves true when it counted, false at the limit.
   */
  acquire(key: string, node: string, limit: number, live: readonly string[]): Promise<boolean>;
  /** Counts one less for `node` under `key`, never below zero. */
  release(key: string, node: string): Promise<void>;
  /**
   * Adds `amount` to the window counter `key`: a window starts at its first use (by the broker's
   * clock where it has one) and lasts `windowMs`. Resolves with the window's total after the add
   * and the ms left in it.
   */
  consume(key: string, amount: number, windowMs: number): Promise<WindowCount>;
}

export interface WindowCount {
  readonly total: number;
  readonly resetMs: number;
}

/** The log's bus to the other nodes, or undefined: it has none, the node is alone. */
export function broadcasterOf(log: Log): Broadcasting | undefined {
  return 'broadcast' in log && typeof log.broadcast === 'function' ? (log as Log & Broadcasting) : undefined;
}

/** The log's shared counters, or undefined: limits are counted on each node. */
export function sharedCounterOf(log: Log): SharedCounting | undefined {
  return 'acquire' in log && typeof log.acquire === 'function' ? (log as Log & SharedCounting) : undefined;
}
