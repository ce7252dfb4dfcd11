import { AuthUrl } from './auth/auth-url.ts';
import { createJwtVerifier } from './auth/jwt.ts';
import { openModeAuthenticator } from './auth/open-mode.ts';
import { type Authenticator, tokenAuthenticator } from './auth/token-authenticator.ts';
import { FailoverLog } from './backends/failover/log.ts';
import { MemoryBroker } from './backends/memory/broker.ts';
import type { EventMap, PublishInputOf } from './client/event-map.ts';
import { Cluster } from './cluster/cluster.ts';
import { broadcasterOf, sharedCounterOf } from './core/cluster.ts';
import { MAX_TOPIC_LENGTH } from './core/event.ts';
import { EventFilter } from './core/filters.ts';
import { DEFAULT_HUB_OPTIONS, Hub, type LatestResult, type TenantStats } from './core/hub.ts';
import { type Log, outageDegraded, outageOf } from './core/log.ts';
import { OPEN_PRINCIPAL, type Principal } from './core/principal.ts';
import { parseSelectors } from './core/topics.ts';
import { DASHBOARD_ROUTES } from './dashboard/routes.ts';
import { StatsFeed } from './dashboard/stats-feed.ts';
import type { HeraldOptions, LatestQuery } from './herald-options.ts';
import { compressionOf, type StreamCompression } from './http/compression.ts';
import type { HttpContext } from './http/context.ts';
import { Cors } from './http/cors.ts';
import { countingNames } from './http/counting-names.ts';
import { Limits } from './http/limits.ts';
import { RouteTable } from './http/route-table.ts';
import { Router } from './http/router.ts';
import { API_ROUTES } from './http/routes/api.ts';
import { TrustedProxies } from './http/trust-proxy.ts';
import { Mercure } from './mercure/mercure.ts';
import { connectionLog } from './observability/connection-log.ts';
import type { HeraldLogger } from './observability/logger.ts';
import { metricsOf } from './observability/metrics.ts';
import { metricsRoutes } from './observability/metrics-route.ts';
import { type HeraldStats, NodeStats } from './observability/node-stats.ts';
import { PresenceNotices } from './observability/presence-notices.ts';
import { chainLifecycles, Webhooks } from './observability/webhooks.ts';

export type { HeraldOptions, LatestQuery } from './herald-options.ts';

export class Herald<Events extends EventMap = EventMap> {
  readonly hub: Hub;
  readonly broker: Log;
  readonly authenticate: Authenticator;
  readonly maxBodyBytes: number;
  readonly maxTopicsPerSubscription: number;
  readonly maxSelectorLength: number;
  readonly cors: Cors;
  readonly limits: Limits;
  /** Which peers may tell the client's address (`trustProxy`). */
  readonly trustedProxies: TrustedProxies;
  /** True when requests are not authenticated (no `auth`, no `authenticate`). */
  readonly open: boolean;
  readonly nodeId: string;
  readonly degraded: string | undefined;
  readonly onError: (error: unknown, context: string) => void;
  /** Undefined when Mercure is turned off. */
  readonly mercure: Mercure | undefined;
  readonly logger: HeraldLogger | undefined;
  /** The HTTP API on this hub: the adapters (`nodeHandler`, `webHandler`, Fastify) hand it their requests. */
  readonly http: Router;
  /** The app's auth endpoint (`authUrl`), when there is one. */
  readonly authUrl: AuthUrl | undefined;
  /** Deliveries to the app's webhook endpoint (`webhook`), when there is one. */
  readonly webhooks: Webhooks | undefined;
  /** This node among the nodes sharing its log: roster, questions to every node, their routes. */
  readonly cluster: Cluster;
  /** How the adapters compress streams (`compression`); undefined when it is off. */
  readonly compression: StreamCompression | undefined;
  private readonly nodeStats: NodeStats;
  /** Presence changes for the webhook, when there is one. */
  private readonly presenceNotices: PresenceNotices | undefined;
  /** The dashboard's live figures, sent to admin streams of `herald/stats` while any watch. */
  private readonly statsFeed: StatsFeed;

  constructor(options: HeraldOptions = {}) {
    const {
      broker,
      failover,
      history,
      maxBodyBytes,
      maxTopicsPerSubscription,
      maxSelectorLength,
      auth,
      authenticate,
      authUrl,
      webhook,
      mercure,
      corsOrigins,
      compression,
      limits,
      trustProxy,
      nodeId,
      degraded,
      logger,
      metrics,
      open,
      dashboard,
      cluster,
      ...hub
    } = options;
    if (authUrl !== undefined && authenticate !== undefined) {
      throw new Error('authUrl and authenticate both decide who a request comes from: configure one of them');
    }
    this.nodeId = nodeId ?? globalThis.crypto.randomUUID().slice(0, 8);
    this.degraded = degraded;
    this.broker =
      broker === undefined
        ? new MemoryBroker(history)
        : failover === undefined || failover === false
          ? broker
          : new FailoverLog(broker, failover === true ? {} : failover);
    this.logger = logger;
    // Options that can be refused are read before the hub starts.
    const verifier = auth === undefined ? undefined : createJwtVerifier(auth.jwt);
    const tokens = verifier === undefined ? undefined : tokenAuthenticator({ ...auth, verifier });
    this.compression = compressionOf(compression);
    this.authUrl =
      authUrl === undefined
        ? undefined
        : new AuthUrl(authUrl, { tokens, cookieName: auth?.cookieName ?? 'herald_token', logger });
    this.webhooks = webhook === undefined ? undefined : new Webhooks(webhook, this.nodeId, logger);
    const webhooks = this.webhooks;
    this.presenceNotices =
      webhooks === undefined
        ? undefined
        : new PresenceNotices((notice) => webhooks.enqueue(notice), this.nodeId);
    // Webhooks are told of streams after the connection log (or the app's own lifecycle): both
    // only at open and close, so a hub without either does no more per stream than before; so is
    // the webhook's presence counting (src/observability/presence-notices.ts), only with a webhook.
    const lifecycle = chainLifecycles(
      hub.lifecycle ?? (logger === undefined ? undefined : connectionLog(logger)),
      this.webhooks?.lifecycle(),
      this.presenceNotices,
      // `herald.presence` notices (src/cluster/presence-feed.ts): a few compares per stream when no one watches.
      {
        opened: (subscriber) => this.cluster.presence.opened(subscriber),
        closed: (subscriber) => this.cluster.presence.closed(subscriber),
        changed: (subscriber, before) => this.cluster.presence.changed(subscriber, before),
      },
    );
    this.hub = new Hub(this.broker, {
      ...(logger === undefined
        ? {}
        : { onError: (error: unknown, context: string) => logger.error({ err: error }, context) }),
      ...definedOnly(hub),
      ...(lifecycle === undefined ? {} : { lifecycle }),
      ...(history?.maxAgeMs === undefined
        ? {}
        : { rewind: { ...DEFAULT_HUB_OPTIONS.rewind, maxAgeMs: history.maxAgeMs, ...hub.rewind } }),
    });
    this.open = authenticate === undefined && auth === undefined && authUrl === undefined;
    this.limits = new Limits(limits);
    this.trustedProxies = new TrustedProxies(trustProxy);
    this.authenticate = chargingRefusedPublishes(
      authenticate ?? this.authUrl?.authenticate ?? tokens ?? openModeAuthenticator(open === true),
      this.limits,
    );
    this.maxBodyBytes = maxBodyBytes ?? 4 * 1024 * 1024;
    this.maxTopicsPerSubscription = maxTopicsPerSubscription ?? 100;
    this.maxSelectorLength = Math.min(maxSelectorLength ?? MAX_TOPIC_LENGTH, MAX_TOPIC_LENGTH);
    this.cors = new Cors({ origins: corsOrigins ?? [] });
    this.mercure =
      mercure === false
        ? undefined
        : new Mercure(this.hub, mercure ?? {}, {
            // A custom `authenticate` decides for Mercure too, unless Mercure has keys of its own.
            verifier: authenticate === undefined ? verifier : undefined,
            // Not the app's endpoint: a cookie it accepts could forge Mercure's form publishes,
            // which no Origin check guards.
            authenticate:
              this.authUrl === undefined
                ? this.authenticate
                : chargingRefusedPublishes(this.authUrl.tokensOnly, this.limits),
            anonymous: auth?.anonymous ?? false,
            corsOrigins: corsOrigins ?? [],
            limits: this.limits,
            nodeId: this.nodeId,
          });
    this.onError = this.hub.options.onError;
    this.cluster = new Cluster(
      this.hub,
      broadcasterOf(this.broker),
      { nodeId: this.nodeId, degraded: () => this.degraded ?? outageDegraded(this.broker) },
      cluster,
      this.onError,
    );
    // Mercure subscriptions a dead node announced end when it drops out: one node (the first
    // live one by id) publishes their ends, every node forgets them.
    const subscriptions = this.mercure?.subscriptions;
    if (subscriptions !== undefined) {
      const { roster } = this.cluster;
      roster.onLeft((node) => subscriptions.nodeLeft(node, [...roster.live()].sort()[0] === this.nodeId));
    }
    // The webhook's `node.left`: one node tells the app of a node that dropped out of the roster.
    const presenceNotices = this.presenceNotices;
    if (presenceNotices !== undefined) {
      const { roster } = this.cluster;
      roster.onLeft((node, reason) => presenceNotices.nodeLeft(node, reason, roster.live()));
    }
    this.nodeStats = new NodeStats(this.hub, this.nodeId, () => this.degraded ?? outageDegraded(this.broker));
    const outage = outageOf(this.broker);
    if (outage !== undefined) this.nodeStats.add('outage', () => outage.outage());
    const asking = this.authUrl;
    if (asking !== undefined) this.nodeStats.add('authUrl', () => asking.stats());
    if (webhooks !== undefined) this.nodeStats.add('webhooks', () => webhooks.stats());
    this.http = new Router(this.httpContext(), this.routes(metrics, dashboard !== false));
    if (this.open) warnOpenOnce(open === true, logger);
    this.statsFeed = new StatsFeed({
      hub: this.hub,
      log: this.broker,
      stats: () => this.nodeStats.all(),
      onError: this.onError,
    });
    this.statsFeed.start();
    this.cluster.start();
    this.countLimitsAcrossNodes();
  }

  /**
   * Streams per tenant and subject, and publish rates, counted on the broker for every node that
   * shares it, when it can count and `limits.scope` is not `node` (src/http/limits.ts). Not on the
   * memory broker: one process, whose own counts are the whole cluster's, and cost no promise.
   */
  private countLimitsAcrossNodes(): void {
    const counter = sharedCounterOf(this.broker);
    if (counter === undefined || this.broker instanceof MemoryBroker) return;
    const roster = this.cluster.roster;
    const names = countingNames(roster, Math.min(MAX_NAMES_REUSE_MS, roster.heartbeatMs));
    this.limits.countAcrossNodes(counter, {
      node: names.node,
      live: () => names.live(),
      // A heartbeat, and some slack for the bus: by then the roster has heard every live node.
      settleMs: roster.heartbeatMs + ROSTER_SLACK_MS,
      logger: this.logger,
      onError: this.onError,
    });
  }

  /** What the routes may use of this hub. */
  private httpContext(): HttpContext {
    return {
      hub: this.hub,
      log: this.broker,
      authenticate: this.authenticate,
      limits: this.limits,
      cors: this.cors,
      settings: {
        maxBodyBytes: this.maxBodyBytes,
        maxTopicsPerSubscription: this.maxTopicsPerSubscription,
        maxSelectorLength: this.maxSelectorLength,
      },
      open: this.open,
      degraded: this.degraded,
      stats: (principal) => this.nodeStats.of(principal),
      logger: this.logger,
      onError: this.onError,
    };
  }

  /** The API's routes and those of each part that is on: metrics, the dashboard, Mercure. */
  private routes(metrics: HeraldOptions['metrics'], dashboard: boolean): RouteTable {
    const routes = new RouteTable(API_ROUTES);
    if (metrics !== false) {
      const options = metrics ?? {};
      routes.add(metricsRoutes({ public: options.public === true, metrics: () => metricsOf(this, options) }));
    }
    routes.add(this.cluster.routes());
    if (dashboard) routes.add(DASHBOARD_ROUTES);
    if (this.mercure !== undefined) routes.add(this.mercure.routes());
    return routes;
  }

  /**
   * Publishes one event (resolves with its id) or a batch (resolves with the ids, in order),
   * with every right of the tenant given in the event (default `""`).
   */
  publish(input: PublishInputOf<Events>): Promise<string>;
  publish(inputs: readonly PublishInputOf<Events>[]): Promise<string[]>;
  async publish(
    input: PublishInputOf<Events> | readonly PublishInputOf<Events>[],
  ): Promise<string | string[]> {
    if (Array.isArray(input)) {
      const events = await this.hub.publish(input, OPEN_PRINCIPAL);
      return events.map((event) => event.id);
    }
    const [event] = await this.hub.publish([input], OPEN_PRINCIPAL);
    return (event as { id: string }).id;
  }

  /**
   * The latest event of every key that `query.topics` match (with its types and tags), for a page
   * rendered on the server: what `GET /v1/latest` answers, in-process. Seen as `principal` sees it
   * (its grants, its permissions for redacted fields), by default with every grant and no
   * permission; of `tenant`, by default the principal's. Hand `lastEventId` to the page's client
   * (`lastEventId`, with no `snapshot`) and its stream goes on from there with no gap and no
   * duplicate.
   */
  latest(query: LatestQuery): Promise<LatestResult> {
    const principal = query.principal ?? OPEN_PRINCIPAL;
    const topics = typeof query.topics === 'string' ? [query.topics] : query.topics;
    const tags = new Map(
      Object.entries(query.tags ?? {}).map(([name, value]) => [
        name,
        typeof value === 'string' ? [value] : [...value],
      ]),
    );
    return this.hub.latest(
      {
        tenant: query.tenant ?? principal.tenant,
        selectors: parseSelectors(topics, this.maxTopicsPerSubscription),
        filter: EventFilter.of(query.types ?? [], tags),
        grants: principal.subscribe,
        permissions: principal.permissions,
      },
      query.limit ?? this.hub.options.snapshot.maxEvents,
    );
  }

  /** Every figure for an admin (the default); a tenant's own figures for anyone else. */
  stats(): Promise<HeraldStats>;
  stats(principal: Principal): Promise<HeraldStats | TenantStats>;
  stats(principal: Principal = OPEN_PRINCIPAL): Promise<HeraldStats | TenantStats> {
    return this.nodeStats.of(principal);
  }

  /**
   * The client's address for a request whose TCP peer is `peer` (`trustProxy`): adapters call it
   * with the socket's address and the request's headers.
   */
  clientAddress(peer: string | undefined, header: (name: string) => string | undefined): string | undefined {
    return this.trustedProxies.clientAddress(peer, header);
  }

  /** Adds figures of a part running beside the hub (bridges) to the admin view of `/v1/stats`. */
  addStats(name: string, source: () => unknown): void {
    this.nodeStats.add(name, source);
  }

  /** Ends every stream with a retry hint and closes the broker, then sends their webhook notices (≤ 2 s). */
  async close(): Promise<void> {
    this.statsFeed.stop();
    // Queued before the streams' closes: the app drops this node's members in one notice.
    this.presenceNotices?.leaving();
    try {
      // Before the broker closes: the other nodes hear that this one leaves.
      await this.cluster.close();
      await this.hub.close();
    } finally {
      await this.webhooks?.close();
    }
  }
}

/**
 * Publishes are not counted against their IP's request rate (src/http/limits.ts): a publish whose
 * credential is refused is, so that a flood of forged or stolen-and-revoked tokens from one
 * address is cut off (429, before its tokens are verified) as any other flood is.
 */
function chargingRefusedPublishes(authenticate: Authenticator, limits: Limits): Authenticator {
  // No wrapper promise for what needs no charge: streams are most requests, and may be synchronous.
  return (request, action) => {
    if (action !== 'publish') return authenticate(request, action);
    const charge = (error: unknown): never => {
      limits.chargeRefusedCredential(request, error);
      throw error;
    };
    try {
      const principal = authenticate(request, action);
      return principal instanceof Promise ? principal.catch(charge) : principal;
    } catch (error) {
      return charge(error);
    }
  };
}

/** How long past a heartbeat a node's roster is taken to know every live node. */
const ROSTER_SLACK_MS = 500;
/** The longest a list of live nodes' names is reused for counting (src/http/counting-names.ts). */
const MAX_NAMES_REUSE_MS = 1_000;

let warnedOpen = false;

/** An app that embeds Herald without auth hears once what that means, in its log or on stderr. */
function warnOpenOnce(openToEveryone: boolean, logger: HeraldLogger | undefined): void {
  if (warnedOpen) return;
  warnedOpen = true;
  const message = openToEveryone
    ? 'herald: no authentication configured and open: true: every client may publish, change streams and administer the hub'
    : 'herald: no authentication configured: publishing, stream changes, stats, metrics and the dashboard answer ' +
      'only clients on this machine (configure auth, or pass open: true to let everyone)';
  if (logger !== undefined) logger.warn({}, message);
  else process.emitWarning(message, { code: 'HERALD_OPEN_MODE' });
}

export function createHerald<Events extends EventMap = EventMap>(
  options: HeraldOptions = {},
): Herald<Events> {
  return new Herald<Events>(options);
}

export const DEFAULTS = DEFAULT_HUB_OPTIONS;

function definedOnly<T extends object>(object: T): Partial<T> {
  return Object.fromEntries(Object.entries(object).filter(([, value]) => value !== undefined)) as Partial<T>;
}
