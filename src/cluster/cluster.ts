import type { Broadcasting } from '../core/cluster.ts';
import type { Hub } from '../core/hub.ts';
import type { RouteEntry } from '../http/route-table.ts';
import {
  DISCONNECT_QUESTION,
  disconnectConnections,
  disconnectLocal,
  filterFromBus,
  LIST_QUESTION,
  listConnections,
  localConnections,
  MAX_CONNECTIONS_LIMIT,
} from './connections.ts';
import { DEFAULT_GATHER_TIMEOUT_MS, Gather } from './gather.ts';
import {
  type ClusterMessage,
  decodeMessage,
  encodeMessage,
  type NodeFigures,
  type TenantFigures,
} from './messages.ts';
import { listNodes } from './nodes.ts';
import { localPresence, PRESENCE_QUESTION, presence, presenceArgsFromBus } from './presence.ts';
import { PresenceFeed } from './presence-feed.ts';
import { Roster, type RosterOptions } from './roster.ts';

export interface ClusterOptions extends RosterOptions {
  /** How long a question to every node (connections, presence, disconnect) waits for answers, ms. Default 2 000. */
  readonly gatherTimeoutMs?: number;
}

/** The most tenants a heartbeat carries figures of (those with the most streams): it stays small. */
const MAX_TENANTS_PER_HEARTBEAT = 1_000;

/**
 * The cluster layer: this node's place among the nodes that share its log, over the log's bus
 * (`Broadcasting`; a log without one is a cluster of one). It keeps the roster (heartbeats and
 * leases), answers and asks questions of every node (gather), and serves `/v1/nodes`,
 * `/v1/connections`, `/v1/connections/disconnect` and `/v1/presence`. Nothing here is on the path
 * of an event: timers, and work when an operator or a page asks.
 */
export class Cluster {
  readonly nodeId: string;
  readonly roster: Roster;
  readonly gather: Gather;
  /** `herald.presence` notices; also the hub's stream lifecycle (see `lifecycle`). */
  readonly presence: PresenceFeed;
  private readonly hub: Hub;
  private readonly bus: Broadcasting;
  private readonly onError: (error: unknown, context: string) => void;
  private stopListening: (() => void) | undefined;
  /** A failing bus is reported once, until it works again. */
  private busFailing = false;

  constructor(
    hub: Hub,
    bus: Broadcasting | undefined,
    self: {
      readonly nodeId: string;
      /** Why the node is not running as configured, now (it may change: a broker outage). */
      readonly degraded: string | undefined | (() => string | undefined);
    },
    options: ClusterOptions = {},
    onError: (error: unknown, context: string) => void = hub.options.onError,
  ) {
    this.hub = hub;
    this.nodeId = self.nodeId;
    this.bus = bus ?? loopback();
    this.onError = onError;
    const startedAt = Date.now();
    this.roster = new Roster(
      {
        id: self.nodeId,
        startedAt,
        degraded:
          typeof self.degraded === 'function' ? self.degraded : () => self.degraded as string | undefined,
        figures: () => this.figures(),
        watching: () => this.presence.watching(),
      },
      (heartbeat) => this.send(heartbeat),
      options,
    );
    this.gather = new Gather(
      self.nodeId,
      (message) => this.send(message),
      () => this.roster.live(),
      options.gatherTimeoutMs ?? DEFAULT_GATHER_TIMEOUT_MS,
    );
    this.gather.answer(LIST_QUESTION, (args) => {
      const { filter, limit } = args as { filter: unknown; limit: unknown };
      const rows = typeof limit === 'number' ? Math.min(Math.max(1, limit), MAX_CONNECTIONS_LIMIT) : 100;
      return localConnections(hub, self.nodeId, filterFromBus(filter), rows);
    });
    this.gather.answer(DISCONNECT_QUESTION, (args) => {
      const { filter, reason, reconnect } = args as { filter: unknown; reason: unknown; reconnect: unknown };
      return disconnectLocal(
        hub,
        filterFromBus(filter),
        typeof reason === 'string' ? reason.slice(0, 256) : '',
        reconnect !== false,
      );
    });
    this.presence = new PresenceFeed(hub, self.nodeId, (message) => this.send(message), this.gather);
    this.gather.answer(PRESENCE_QUESTION, (args) => {
      const { tenant, topic } = presenceArgsFromBus(args);
      return { ...localPresence(hub, tenant, topic), sequence: this.presence.snapshotSequence() };
    });
    this.roster.onLeft((node) => this.presence.nodeLeft(node));
  }

  /** Joins the cluster: listens to the bus and starts the heartbeats. */
  start(): void {
    if (this.stopListening !== undefined) return;
    this.stopListening = this.bus.listen((text) => this.heard(text));
    // The hello goes out once the broker runs: said earlier, on a bus still connecting, it is lost.
    // A broker that fails to start leaves this node alone; its figures are still served.
    this.hub.whenReady().then(
      () => {
        if (this.stopListening !== undefined) this.roster.start();
      },
      () => {},
    );
  }

  /** The routes of the cluster's API, for the route table. */
  routes(): RouteEntry[] {
    const gather = this.gather;
    return [
      {
        method: 'GET',
        path: '/v1/nodes',
        handle: (context, request) => listNodes(context, request, this.roster),
      },
      {
        method: 'GET',
        path: '/v1/connections',
        handle: (context, request) => listConnections(context, request, gather),
      },
      {
        method: 'POST',
        path: '/v1/connections/disconnect',
        handle: (context, request) => disconnectConnections(context, request, gather),
      },
      {
        method: 'GET',
        path: '/v1/presence',
        handle: (context, request) => presence(context, request, gather),
      },
    ];
  }

  /** Leaves the cluster: the other nodes drop this one at once rather than after the lease. */
  async close(): Promise<void> {
    this.roster.stop();
    this.presence.stop();
    if (this.stopListening === undefined) return;
    this.stopListening();
    this.stopListening = undefined;
    // A bus that does not answer (its broker is gone) does not hold the close up: the lease drops this node.
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      this.bus.broadcast(encodeMessage({ kind: 'leaving', from: this.nodeId })).catch(() => {}),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, 1_000);
      }),
    ]);
    clearTimeout(timer);
  }

  /** This node's figures for its heartbeat and `/v1/nodes`: computed per heartbeat, not kept per event. */
  figures(): NodeFigures {
    let connections = 0;
    const streams = new Map<string, number>();
    for (const subscriber of this.hub.streams()) {
      connections++;
      streams.set(subscriber.tenant, (streams.get(subscriber.tenant) ?? 0) + 1);
    }
    const totals = this.hub.tenantTotals();
    const tenants = new Set([...streams.keys(), ...totals.keys()]);
    const figures: [string, TenantFigures][] = [...tenants].map((tenant) => [
      tenant,
      {
        streams: streams.get(tenant) ?? 0,
        published: totals.get(tenant)?.published ?? 0,
        delivered: totals.get(tenant)?.delivered ?? 0,
      },
    ]);
    if (figures.length > MAX_TENANTS_PER_HEARTBEAT) {
      figures.sort((a, b) => b[1].streams - a[1].streams || b[1].published - a[1].published);
      figures.length = MAX_TENANTS_PER_HEARTBEAT;
    }
    const { published, delivered } = this.hub.counters;
    return {
      connections,
      published,
      delivered,
      feedLagMs: this.hub.feedLagMs,
      tenants: Object.fromEntries(figures),
    };
  }

  private heard(text: string): void {
    const message = decodeMessage(text);
    if (message === undefined) return;
    switch (message.kind) {
      case 'heartbeat':
        this.roster.heard(message);
        if (message.from !== this.nodeId)
          this.presence.heardWatching(message.from, message.watching ?? [], true);
        return;
      case 'watching':
        // Only from a node in the roster: what a node no one knows watches would never be dropped
        // (a node's topics go when it leaves). A node's hello comes before any of its watches,
        // and its next heartbeat lists them all anyway.
        if (message.from !== this.nodeId && this.roster.knows(message.from))
          this.presence.heardWatching(message.from, message.topics, false);
        return;
      case 'presence':
        this.presence.heardChanges(message);
        return;
      case 'leaving':
        this.roster.left(message.from);
        return;
      case 'ask':
        this.gather
          .heardQuestion(message)
          .catch((error: unknown) => this.onError(error, 'answering a cluster question failed'));
        return;
      case 'answer':
        this.gather.heardAnswer(message);
        return;
    }
  }

  private send(message: ClusterMessage): void {
    if (this.stopListening === undefined) return;
    this.bus.broadcast(encodeMessage(message)).then(
      () => {
        this.busFailing = false;
      },
      (error: unknown) => {
        if (this.busFailing) return;
        this.busFailing = true;
        this.onError(error, 'the cluster bus failed (reported once until it works again)');
      },
    );
  }
}

/** The bus of a node alone: what it broadcasts, it hears. */
function loopback(): Broadcasting {
  const listeners = new Set<(message: string) => void>();
  return {
    async broadcast(message) {
      for (const listener of [...listeners]) queueMicrotask(() => listener(message));
    },
    listen(listener) {
      const own = (message: string) => listener(message);
      listeners.add(own);
      return () => listeners.delete(own);
    },
  };
}
