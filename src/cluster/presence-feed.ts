import type { Hub, StreamLifecycle } from '../core/hub.ts';
import { PRESENCE_EVENT, type PresencePayload } from '../core/protocol/system-events.ts';
import type { Subscriber } from '../core/subscriber.ts';
import type { Selector } from '../core/topics.ts';
import type { Gather } from './gather.ts';
import type { PresenceChanges, Watching } from './messages.ts';
import { MEMBERS_PERMISSION, PRESENCE_QUESTION } from './presence.ts';

/** How long stream opens and closes are batched before they go on the bus, ms. */
export const PRESENCE_BATCH_MS = 100;
/** The most topics one node watches for presence notices; past it, new ones get none. */
const MAX_WATCHED = 10_000;

/** A watched topic: its tenant and topic, joined by a character no tenant or topic holds. */
const keyOf = (tenant: string, topic: string) => `${tenant}\u0000${topic}`;
const splitKey = (key: string) => key.split('\u0000') as [string, string];

/** What a node watching a topic knows of it: each node's streams per subject. */
interface Watched {
  /** Subject → streams, per node. */
  readonly byNode: Map<string, Map<string, number>>;
  /** Each node's presence sequence its snapshot counted up to: older changes are in it already. */
  readonly counted: Map<string, number>;
  /** Changes heard while the snapshot was being gathered, applied once it is in. */
  pending: [string, number, string, number][] | undefined;
}

/**
 * `herald.presence` notices: streams opened with `presence=1` hear who joins and leaves their
 * exact topics, on every node. Work happens at stream open and close, never per event:
 *
 * - A node with such a stream watches its topics: it says so on the bus (`watching`, and again in
 *   every heartbeat), gathers who is on each from every node (a snapshot, with each node's sequence
 *   number), and from then on applies the changes the nodes announce.
 * - Every node announces, batched per PRESENCE_BATCH_MS, the opens and closes of streams with a
 *   subject on topics some node watches (and only those): each batch carries the node's next
 *   sequence number, so a change the snapshot already counted is not counted twice.
 * - A node that drops out of the roster (killed, or its lease ran out) takes its streams with it:
 *   the watchers emit a leave for each of its members.
 */
export class PresenceFeed implements StreamLifecycle {
  private readonly hub: Hub;
  private readonly self: string;
  private readonly send: (message: PresenceChanges | Watching) => void;
  private readonly gather: Gather;
  /** Who watches what: topic key → the nodes with presence streams on it (this one included). */
  private readonly watchers = new Map<string, Set<string>>();
  /** This node's presence streams per topic key. */
  private readonly ownWatches = new Map<string, number>();
  /** What this node knows of each topic it watches. */
  private readonly watched = new Map<string, Watched>();
  /** Changes waiting for the next batch: [tenant, topic, subject, ±1]. */
  private batch: [string, string, string, number][] = [];
  private timer: ReturnType<typeof setTimeout> | undefined;
  /** The sequence number of this node's last batch. */
  private sequence = 0;
  /** After `stop()`: the streams a closing hub ends are not announced (the node says `leaving`). */
  private stopped = false;

  constructor(hub: Hub, self: string, send: (message: PresenceChanges | Watching) => void, gather: Gather) {
    this.hub = hub;
    this.self = self;
    this.send = send;
    this.gather = gather;
  }

  /**
   * For a snapshot of this node's streams: sends the batch waiting (its changes are in the
   * snapshot, and it goes out before the answer does) and returns the sequence number the
   * snapshot counts up to.
   */
  snapshotSequence(): number {
    clearTimeout(this.timer);
    this.flush();
    return this.sequence;
  }

  /** StreamLifecycle: a stream opened. */
  opened(subscriber: Subscriber): void {
    // Announced before it watches: a stream is not told of its own arrival (its snapshot counts it).
    this.change(subscriber, 1);
    if (subscriber.presence) this.watch(subscriber);
  }

  /** StreamLifecycle: a stream closed. */
  closed(subscriber: Subscriber): void {
    this.change(subscriber, -1);
    if (subscriber.presence) this.unwatch(subscriber);
  }

  /**
   * StreamLifecycle: a stream's selectors changed. It leaves the topics it dropped and joins
   * those it added, as a close and an open would, so that its close later undoes only what is
   * counted: the topics it has then.
   */
  changed(subscriber: Subscriber, before: readonly Selector[]): void {
    const after = subscriber.selectors;
    const removed = before.filter((selector) => !after.some((other) => other.source === selector.source));
    const added = after.filter((selector) => !before.some((other) => other.source === selector.source));
    this.change(subscriber, -1, removed);
    this.change(subscriber, 1, added);
    if (subscriber.presence) {
      this.unwatch(subscriber, removed);
      this.watch(subscriber, added);
    }
  }

  /** The topics this node watches, for its heartbeat. */
  watching(): [string, string][] {
    return [...this.ownWatches.keys()].map(splitKey);
  }

  /**
   * Whether this node watches the topic and has every node's snapshot of it: from then on, every
   * node announces each change, so a stream that opens elsewhere is told as a join. One that opened
   * before is counted in the snapshot instead, without a join (the client's `presence()` asks).
   */
  watchSettled(tenant: string, topic: string): boolean {
    const watched = this.watched.get(keyOf(tenant, topic));
    return watched !== undefined && watched.pending === undefined;
  }

  /** A node says which topics it watches (a `watching` message, or its heartbeat: then all of them). */
  heardWatching(node: string, topics: readonly (readonly [string, string])[], all: boolean): void {
    const keys = new Set<string>();
    for (const entry of topics.slice(0, MAX_WATCHED)) {
      if (Array.isArray(entry) && typeof entry[0] === 'string' && typeof entry[1] === 'string') {
        keys.add(keyOf(entry[0], entry[1]));
      }
    }
    if (all) {
      for (const [key, nodes] of this.watchers) if (!keys.has(key)) this.dropWatcher(key, nodes, node);
    }
    for (const key of keys) {
      let nodes = this.watchers.get(key);
      if (nodes === undefined) {
        nodes = new Set();
        this.watchers.set(key, nodes);
      }
      nodes.add(node);
    }
  }

  /** Changes a node announced. */
  heardChanges(message: PresenceChanges): void {
    const sequence = typeof message.sequence === 'number' ? message.sequence : 0;
    for (const change of message.changes) {
      if (!Array.isArray(change)) continue;
      const [tenant, topic, subject, delta] = change;
      if (typeof tenant !== 'string' || typeof topic !== 'string' || typeof subject !== 'string') continue;
      if (delta !== 1 && delta !== -1) continue;
      const watched = this.watched.get(keyOf(tenant, topic));
      if (watched === undefined) continue;
      if (watched.pending !== undefined) watched.pending.push([message.from, sequence, subject, delta]);
      else this.apply(tenant, topic, watched, message.from, sequence, subject, delta);
    }
  }

  /** A node left the roster: its streams are gone, its members leave. */
  nodeLeft(node: string): void {
    for (const [key, nodes] of this.watchers) this.dropWatcher(key, nodes, node);
    for (const [key, watched] of this.watched) {
      const members = watched.byNode.get(node);
      watched.byNode.delete(node);
      watched.counted.delete(node);
      if (members === undefined) continue;
      const [tenant, topic] = splitKey(key);
      for (const subject of members.keys()) this.tell(tenant, topic, watched, subject, 'leave');
    }
  }

  /** Stops the batch timer. */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private dropWatcher(key: string, nodes: Set<string>, node: string): void {
    nodes.delete(node);
    if (nodes.size === 0 && node !== this.self) this.watchers.delete(key);
  }

  /** A presence stream opened: this node watches its exact topics (a snapshot for each new one). */
  private watch(subscriber: Subscriber, selectors = subscriber.selectors): void {
    const added: [string, string][] = [];
    for (const selector of selectors) {
      if (selector.kind !== 'exact') continue;
      const key = keyOf(subscriber.tenant, selector.source);
      const count = this.ownWatches.get(key);
      if (count !== undefined) {
        this.ownWatches.set(key, count + 1);
        continue;
      }
      if (this.ownWatches.size >= MAX_WATCHED) continue;
      this.ownWatches.set(key, 1);
      this.heardWatching(this.self, [[subscriber.tenant, selector.source]], false);
      added.push([subscriber.tenant, selector.source]);
    }
    if (added.length === 0) return;
    // Said before the snapshot is asked for: the bus keeps one sender's order, so every node
    // watches the topic before it answers, and announces every change its answer does not count.
    this.send({ kind: 'watching', from: this.self, topics: added });
    for (const [tenant, topic] of added) this.snapshot(tenant, topic);
  }

  private unwatch(subscriber: Subscriber, selectors = subscriber.selectors): void {
    for (const selector of selectors) {
      if (selector.kind !== 'exact') continue;
      const key = keyOf(subscriber.tenant, selector.source);
      const count = this.ownWatches.get(key);
      if (count === undefined) continue;
      if (count > 1) {
        this.ownWatches.set(key, count - 1);
        continue;
      }
      // The other nodes stop announcing for it at this node's next heartbeat.
      this.ownWatches.delete(key);
      this.watched.delete(key);
      const nodes = this.watchers.get(key);
      if (nodes !== undefined) {
        nodes.delete(this.self);
        if (nodes.size === 0) this.watchers.delete(key);
      }
    }
  }

  private snapshot(tenant: string, topic: string): void {
    const watched: Watched = { byNode: new Map(), counted: new Map(), pending: [] };
    this.watched.set(keyOf(tenant, topic), watched);
    this.gather
      .ask<{ subjects?: Record<string, number>; sequence?: number }>(PRESENCE_QUESTION, { tenant, topic })
      .then(
        ({ answers }) => {
          for (const [node, answer] of answers) {
            const members = new Map<string, number>();
            for (const [subject, count] of Object.entries(answer.subjects ?? {})) {
              if (typeof count === 'number' && count > 0) members.set(subject, count);
            }
            watched.byNode.set(node, members);
            watched.counted.set(node, typeof answer.sequence === 'number' ? answer.sequence : 0);
          }
        },
        () => {},
      )
      .finally(() => {
        const pending = watched.pending ?? [];
        watched.pending = undefined;
        for (const [node, sequence, subject, delta] of pending) {
          this.apply(tenant, topic, watched, node, sequence, subject, delta);
        }
      });
  }

  /** A stream with a subject opened (+1) or closed (−1): announced for the watched topics it selected. */
  private change(subscriber: Subscriber, delta: number, selectors = subscriber.selectors): void {
    const subject = subscriber.subject;
    if (subject === undefined || this.watchers.size === 0 || this.stopped) return;
    for (const selector of selectors) {
      if (selector.kind !== 'exact' || !this.watchers.has(keyOf(subscriber.tenant, selector.source)))
        continue;
      this.batch.push([subscriber.tenant, selector.source, subject, delta]);
    }
    if (this.batch.length > 0 && this.timer === undefined) {
      this.timer = setTimeout(() => this.flush(), PRESENCE_BATCH_MS);
      this.timer.unref?.();
    }
  }

  private flush(): void {
    this.timer = undefined;
    if (this.batch.length === 0) return;
    const changes = this.batch;
    this.batch = [];
    this.sequence++;
    this.send({ kind: 'presence', from: this.self, sequence: this.sequence, changes });
  }

  private apply(
    tenant: string,
    topic: string,
    watched: Watched,
    node: string,
    sequence: number,
    subject: string,
    delta: number,
  ): void {
    // Counted by the snapshot already.
    if (sequence <= (watched.counted.get(node) ?? 0)) return;
    let members = watched.byNode.get(node);
    if (members === undefined) {
      members = new Map();
      watched.byNode.set(node, members);
    }
    const count = Math.max(0, (members.get(subject) ?? 0) + delta);
    if (count === 0) members.delete(subject);
    else members.set(subject, count);
    this.tell(tenant, topic, watched, subject, delta > 0 ? 'join' : 'leave');
  }

  /** Tells this node's presence streams on the topic that may see who is there. */
  private tell(
    tenant: string,
    topic: string,
    watched: Watched,
    subject: string,
    action: 'join' | 'leave',
  ): void {
    let connections = 0;
    for (const members of watched.byNode.values()) connections += members.get(subject) ?? 0;
    const payload: PresencePayload = { topic, action, subject, connections };
    this.hub.notify(tenant, topic, PRESENCE_EVENT, payload, mayHearPresence);
  }
}

/**
 * A stream hears `herald.presence` when it asked (`presence=1`) and may see who is on the topic:
 * subjects are user ids, so it needs the `presence:members` permission or a `*` subscribe grant
 * (admins hold one).
 */
function mayHearPresence(subscriber: Subscriber): boolean {
  if (!subscriber.presence) return false;
  return (
    subscriber.permissions.has(MEMBERS_PERMISSION) || subscriber.grants.some((grant) => grant.kind === 'all')
  );
}
