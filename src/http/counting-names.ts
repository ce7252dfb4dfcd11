/**
 * The names nodes count under on the broker (src/core/cluster.ts `SharedCounting`): a node's id
 * and when it started. A node restarted under the same id (a container restarted in its pod keeps
 * its hostname, and pid 1) is then another name: the counts its previous run held are dropped
 * once that run is out of the roster, rather than taken for the new run's and kept for ever.
 */

/** What is needed of the roster (src/cluster/roster.ts): the live nodes, this one included. */
export interface LiveNodes {
  nodes(): readonly { readonly id: string; readonly startedAt: string; readonly self: boolean }[];
}

export interface CountingNames {
  /** This node's name. */
  readonly node: string;
  /** The live nodes' names, this node's included. */
  live(): readonly string[];
}

const nameOf = (node: { readonly id: string; readonly startedAt: string }) =>
  `${node.id}@${Date.parse(node.startedAt)}`;

/**
 * `reuseMs`: how long a list of live names is reused, because the roster computes this node's
 * figures as it lists it, which streams opening by the thousand should not repeat each time. Keep
 * it within a heartbeat: a node that joins counts nothing for a heartbeat after it starts
 * (src/http/shared-counter-guard.ts `settleMs`), so every list is fresh enough to name it by
 * then; one that drops out is noticed this much later, against a lease of seconds.
 */
export function countingNames(
  roster: LiveNodes,
  reuseMs: number,
  now: () => number = Date.now,
): CountingNames {
  let listed = roster.nodes();
  let listedAt = now();
  const self = listed.find((node) => node.self);
  if (self === undefined) throw new Error('the roster does not list this node');
  let names = listed.map(nameOf);
  return {
    node: nameOf(self),
    live() {
      if (now() - listedAt >= reuseMs) {
        listed = roster.nodes();
        listedAt = now();
        names = listed.map(nameOf);
      }
      return names;
    },
  };
}
