import type { Heartbeat, NodeFigures } from './messages.ts';

/** How often a node says it is alive, ms. */
export const DEFAULT_HEARTBEAT_MS = 5_000;
/** How long a node not heard from stays listed, ms: a node killed outright drops out within it. */
export const DEFAULT_LEASE_MS = 15_000;
/** The longest lease allowed: a dead node's streams stay counted (presence, limits) at most this long. */
export const MAX_LEASE_MS = 30_000;

export interface RosterOptions {
  /** How often this node sends its heartbeat, ms. Default 5 000. */
  readonly heartbeatMs?: number;
  /** How long a node not heard from stays listed, ms: more than twice `heartbeatMs`, at most 30 000. Default 15 000. */
  readonly leaseMs?: number;
}

/** One node of the cluster as `GET /v1/nodes` lists it. */
export interface NodeView {
  readonly id: string;
  /** When the node started, ISO 8601. */
  readonly startedAt: string;
  /** When it was last heard from, ISO 8601 (now for the node answering). */
  readonly seenAt: string;
  readonly degraded?: string;
  readonly self: boolean;
  readonly connections: number;
  readonly published: number;
  readonly delivered: number;
  readonly feedLagMs: number;
  readonly tenants: NodeFigures['tenants'];
}

/** What the roster needs of this node. */
export interface Self {
  readonly id: string;
  readonly startedAt: number;
  /** Why this node is not running as configured (`fallback-local`), now. */
  degraded(): string | undefined;
  /** This node's figures, fresh. */
  figures(): NodeFigures;
  /** The topics this node has presence streams on, for its heartbeat. */
  watching?(): [string, string][];
}

/** Why a node dropped out of the roster: it said it was closing, or its lease ran out unheard. */
export type LeftReason = 'leaving' | 'lease-expired';

interface Entry {
  heartbeat: Heartbeat;
  seenAt: number;
}

/**
 * The live nodes of the cluster: each node broadcasts a heartbeat with its figures every
 * `heartbeatMs`, and a node not heard from for `leaseMs` is dropped (a `kill -9` sends no
 * goodbye). A closing node says `leaving` and is dropped at once. Only timers: nothing here runs
 * per event. This node is always listed, its figures computed when asked.
 */
export class Roster {
  readonly heartbeatMs: number;
  readonly leaseMs: number;
  private readonly self: Self;
  private readonly send: (heartbeat: Heartbeat) => void;
  private readonly others = new Map<string, Entry>();
  private readonly leftListeners: ((node: string, reason: LeftReason) => void)[] = [];
  private readonly joinedListeners: ((node: string) => void)[] = [];
  private timer: ReturnType<typeof setInterval> | undefined;
  private sweeper: ReturnType<typeof setInterval> | undefined;
  private lastSentAt = 0;

  constructor(self: Self, send: (heartbeat: Heartbeat) => void, options: RosterOptions = {}) {
    const { heartbeatMs, leaseMs } = checkedTimes(options);
    this.heartbeatMs = heartbeatMs;
    this.leaseMs = leaseMs;
    this.self = self;
    this.send = send;
  }

  /** Says hello (every node answers with its heartbeat, so this one knows them at once), then beats. */
  start(): void {
    if (this.timer !== undefined) return;
    this.beat(true);
    this.timer = setInterval(() => this.beat(false), this.heartbeatMs);
    // Often enough that a node is dropped at most a quarter lease late.
    this.sweeper = setInterval(() => this.sweep(Date.now()), Math.max(50, Math.floor(this.leaseMs / 4)));
    this.timer.unref?.();
    this.sweeper.unref?.();
  }

  stop(): void {
    clearInterval(this.timer);
    clearInterval(this.sweeper);
    this.timer = undefined;
    this.sweeper = undefined;
  }

  /** A heartbeat heard on the bus (this node's own included, and ignored). */
  heard(heartbeat: Heartbeat, now = Date.now()): void {
    if (heartbeat.from === this.self.id) return;
    const known = this.others.has(heartbeat.from);
    this.others.set(heartbeat.from, { heartbeat, seenAt: now });
    if (!known) for (const listener of this.joinedListeners) listener(heartbeat.from);
    // A newcomer learns of every node now rather than within a heartbeat; not more than once a
    // tenth of a heartbeat, so a storm of hellos costs each node few answers.
    if (heartbeat.hello === true && now - this.lastSentAt > this.heartbeatMs / 10) this.beat(false);
  }

  /** Whether `node` is in the roster now (this node, or one heard from within the lease). */
  knows(node: string): boolean {
    return node === this.self.id || this.others.has(node);
  }

  /** A node said it is closing. */
  left(node: string): void {
    if (node === this.self.id || !this.others.delete(node)) return;
    for (const listener of this.leftListeners) listener(node, 'leaving');
  }

  /** Calls `listener` with each node dropped from the roster, and why (it left, or its lease ran out). */
  onLeft(listener: (node: string, reason: LeftReason) => void): void {
    this.leftListeners.push(listener);
  }

  /** Calls `listener` with each node heard from for the first time (or again after it was dropped). */
  onJoined(listener: (node: string) => void): void {
    this.joinedListeners.push(listener);
  }

  /** The ids of the live nodes, this one first. */
  live(now = Date.now()): string[] {
    this.sweep(now);
    return [this.self.id, ...this.others.keys()];
  }

  /** Every live node with its figures: this node's fresh, the others' from their last heartbeat. */
  nodes(now = Date.now()): NodeView[] {
    this.sweep(now);
    const own = this.self;
    const views: NodeView[] = [
      view({ ...this.heartbeatOf(false) }, now, true),
      ...[...this.others.values()].map((entry) => view(entry.heartbeat, entry.seenAt, false)),
    ];
    views.sort((a, b) => (a.id === own.id ? -1 : b.id === own.id ? 1 : a.id.localeCompare(b.id)));
    return views;
  }

  private beat(hello: boolean): void {
    this.lastSentAt = Date.now();
    this.send(this.heartbeatOf(hello));
  }

  private heartbeatOf(hello: boolean): Heartbeat {
    const { id, startedAt } = this.self;
    const degraded = this.self.degraded();
    return {
      kind: 'heartbeat',
      from: id,
      startedAt,
      ...(degraded === undefined ? {} : { degraded }),
      figures: this.self.figures(),
      ...(hello ? { hello } : {}),
      ...(this.self.watching === undefined ? {} : { watching: this.self.watching() }),
    };
  }

  private sweep(now: number): void {
    for (const [node, entry] of this.others) {
      if (now - entry.seenAt > this.leaseMs) {
        this.others.delete(node);
        for (const listener of this.leftListeners) listener(node, 'lease-expired');
      }
    }
  }
}

function view(heartbeat: Heartbeat, seenAt: number, self: boolean): NodeView {
  return {
    id: heartbeat.from,
    startedAt: new Date(heartbeat.startedAt).toISOString(),
    seenAt: new Date(seenAt).toISOString(),
    ...(heartbeat.degraded === undefined ? {} : { degraded: heartbeat.degraded }),
    self,
    connections: heartbeat.figures.connections,
    published: heartbeat.figures.published,
    delivered: heartbeat.figures.delivered,
    feedLagMs: heartbeat.figures.feedLagMs,
    tenants: heartbeat.figures.tenants,
  };
}

/** The heartbeat and lease, checked: a lease must outlast two heartbeats, and be at most 30 s. */
export function checkedTimes(options: RosterOptions): { heartbeatMs: number; leaseMs: number } {
  const leaseMs = options.leaseMs ?? DEFAULT_LEASE_MS;
  const heartbeatMs = options.heartbeatMs ?? Math.min(DEFAULT_HEARTBEAT_MS, Math.floor(leaseMs / 3));
  if (!Number.isFinite(leaseMs) || leaseMs <= 0 || leaseMs > MAX_LEASE_MS) {
    throw new Error(`the node lease must be more than 0 and at most ${MAX_LEASE_MS} ms; got ${leaseMs}`);
  }
  if (!Number.isFinite(heartbeatMs) || heartbeatMs <= 0 || heartbeatMs * 2 >= leaseMs) {
    throw new Error(
      `the node heartbeat (${heartbeatMs} ms) must be more than 0 and less than half the lease (${leaseMs} ms), ` +
        'so that one lost heartbeat does not drop a live node',
    );
  }
  return { heartbeatMs, leaseMs };
}
