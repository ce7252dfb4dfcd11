import { AuthUrl, type AuthUrlOptions } from './auth/auth-url.ts';
import { createJwtVerifier, type JwtOptions } from './auth/jwt.ts';
import { openModeAuthenticator } from './auth/open-mode.ts';
import { type Authenticator, tokenAuthenticator } from './auth/token-authenticator.ts';
import { MemoryBroker } from './backends/memory/broker.ts';
import type { EventMap, PublishInputOf } from './client/event-map.ts';
import { MAX_TOPIC_LENGTH } from './core/event.ts';
import { EventFilter } from './core/filters.ts';
import {
  DEFAULT_HUB_OPTIONS,
  Hub,
  type HubSettings,
  type LatestResult,
  type TenantStats,
} from './core/hub.ts';
import type { Log } from './core/log.ts';
import { OPEN_PRINCIPAL, type Principal } from './core/principal.ts';
import { parseSelectors } from './core/topics.ts';
import { DASHBOARD_ROUTES } from './dashboard/routes.ts';
import { StatsFeed } from './dashboard/stats-feed.ts';
import type { HttpContext } from './http/context.ts';
import { Cors } from './http/cors.ts';
import { type LimitOptions, Limits } from './http/limits.ts';
import { RouteTable } from './http/route-table.ts';
import { Router } from './http/router.ts';
import { API_ROUTES } from './http/routes/api.ts';
import { TrustedProxies } from './http/trust-proxy.ts';
import { Mercure, type MercureOptions } from './mercure/mercure.ts';
import { connectionLog } from './observability/connection-log.ts';
import type { HeraldLogger } from './observability/logger.ts';
import { metricsOf } from './observability/metrics.ts';
import { metricsRoutes } from './observability/metrics-route.ts';
import { type HeraldStats, NodeStats } from './observability/node-stats.ts';
import { chainLifecycles, type WebhookOptions, Webhooks } from './observability/webhooks.ts';

export interface HeraldOptions extends HubSettings {
  /** Where events are logged and fanned out from. Default: an in-memory broker. */
  readonly broker?: Log;
  /**
   * History of the default memory broker, and how many latest values per key it keeps
   * (`latestMaxKeys`, default 10 000, 0: none). `maxAgeMs` also bounds how far back a stream's
   * `since` may reach, unless `rewind.maxAgeMs` says otherwise.
   */
  readonly history?: {
    readonly maxEvents?: number;
    readonly maxAgeMs?: number;
    readonly latestMaxKeys?: number;
  };
  /** Largest request body, bytes. Default 4 MiB (a batch of events). */
  readonly maxBodyBytes?: number;
  /** Selectors in one subscription. Default 100. */
  readonly maxTopicsPerSubscription?: number;
  /** Characters in one selector. Default (and most) 1 024. */
  readonly maxSelectorLength?: number;
  /**
   * JWT authentication. Without it (and without `authenticate`) the hub is in open mode: every
   * request is the admin of the single tenant `""`.
   */
  readonly auth?: {
    /**
     * The keys tokens are verified with. Several key sets, each with its `uses`, make one
     * verifier: e.g. Mercure's publisher key (`uses: ['publish']`) and subscriber key
     * (`uses: ['subscribe']`) on the native API, each token capped to its key's role.
     */
    readonly jwt: JwtOptions | readonly JwtOptions[];
    /** Requests without a token may subscribe, to public events only. Default false. */
    readonly anonymous?: boolean;
    /** Default `herald_token`. */
    readonly cookieName?: string;
  };
  /** Your own authentication instead of `auth`: from the request to a Principal. */
  readonly authenticate?: Authenticator;
  /** Ask the app who a stream or publish without a token comes from (docs/hooks.md); not with `authenticate`. */
  readonly authUrl?: AuthUrlOptions;
  /** Tell the app of every stream opened and closed, in signed batches (docs/hooks.md). */
  readonly webhook?: WebhookOptions;
  /**
   * The Mercure protocol at `/.well-known/mercure`, on the same hub, broker and auth. On by
   * default; `false` turns it off.
   */
  readonly mercure?: MercureOptions | false;
  /** Origins allowed to call the hub from a browser (CORS) and to publish with a cookie. */
  readonly corsOrigins?: readonly string[];
  /** Per-node admission limits: connections and streams per IP, subject and tenant, publish rates. */
  readonly limits?: LimitOptions;
  /**
   * Reverse proxies (load balancers) whose forwarded header tells the client's address, for
   * per-IP limits and logs: IP addresses, CIDRs (`10.0.0.0/8`, `fd00::/8`) and the names
   * `loopback`, `linklocal`, `uniquelocal`. A request from one of them is attributed to the
   * address its `Forwarded` (RFC 7239) or `X-Forwarded-For` header gives, read right to left
   * past the trusted hops. Default: none, and those headers are ignored, because any client can
   * send them: believed from anyone, they would let a client pick the address its limits are
   * counted under. Behind a proxy and without this, every client counts as the proxy.
   */
  readonly trustProxy?: string | readonly string[];
  /** This node's name in stats and logs. Default: a random one. */
  readonly nodeId?: string;
  /**
   * Set when the hub runs other than configured, e.g. `fallback-local` (on memory because the
   * configured broker was unreachable at start): `/readyz` then reports `degraded`.
   */
  readonly degraded?: string;
  /**
   * Where stream opens and closes, refused and failed requests are logged (pino, or anything
   * with its `info`/`warn`/`error`/`debug`). Default: none, and unexpected failures go to
   * `onError` as before, so embedding Herald does not make a host app's tests noisy.
   */
  readonly logger?: HeraldLogger;
  /**
   * Without `auth` or `authenticate`, who may publish over HTTP, change streams, read `/v1/stats`
   * and `/metrics` and open the dashboard: by default only clients on this machine (loopback),
   * and Herald says so once. `true` lets every client do all of it, as `herald serve --insecure`
   * does: only for a network that is yours alone. Subscribing is open to all either way.
   */
  readonly open?: boolean;
  /** Serve the operations page at `/dashboard`. Default true. */
  readonly dashboard?: boolean;
  /**
   * `/metrics`: open to anyone who can reach it (`public`), else admin credentials only; `false`
   * serves no `/metrics` at all.
   */
  readonly metrics?:
    | false
    | {
        readonly public?: boolean;
        /** Tenants with a label of their own on `herald_connections`. Default 20. */
        readonly tenantLabels?: number;
        /** Labels on every series, e.g. `{ worker: '2' }`. */
        readonly labels?: Record<string, string>;
      };
}

/**
 * A hub with its broker, ready to be mounted: `nodeHandler(herald)`, `webHandler(herald)`,
 * the Fastify plugin, or `herald serve`. Publishing in-process is `await herald.publish(...)`.
 * `Events` (see src/client/event-map.ts) types what `publish` accepts; untyped, anything goes.
 */
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
  private readonly nodeStats: NodeStats;
  /** The dashboard's live figures, sent to admin streams of `herald/stats` while any watch. */
  private readonly statsFeed: StatsFeed;

  constructor(options: HeraldOptions = {}) {
    const {
      broker,
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
      limits,
      trustProxy,
      nodeId,
      degraded,
      logger,
      metrics,
      open,
      dashboard,
      ...hub
    } = options;
    if (authUrl !== undefined && authenticate !== undefined) {
      throw new Error('authUrl and authenticate both decide who a request comes from: configure one of them');
    }
    this.nodeId = nodeId ?? globalThis.crypto.randomUUID().slice(0, 8);
    this.degraded = degraded;
    this.broker = broker ?? new MemoryBroker(history);
    this.logger = logger;
    // Options that can be refused are read before the hub starts.
    const verifier = auth === undefined ? undefined : createJwtVerifier(auth.jwt);
    const tokens = verifier === undefined ? undefined : tokenAuthenticator({ ...auth, verifier });
    this.authUrl =
      authUrl === undefined
        ? undefined
        : new AuthUrl(authUrl, { tokens, cookieName: auth?.cookieName ?? 'herald_token', logger });
    this.webhooks = webhook === undefined ? undefined : new Webhooks(webhook, this.nodeId, logger);
    // Webhooks are told of streams after the connection log (or the app's own lifecycle): both
    // only at open and close, so a hub without either does no more per stream than before.
    const lifecycle = chainLifecycles(
      hub.lifecycle ?? (logger === undefined ? undefined : connectionLog(logger)),
      this.webhooks?.lifecycle(),
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
          });
    this.onError = this.hub.options.onError;
    this.nodeStats = new NodeStats(this.hub, this.nodeId, this.degraded);
    const { authUrl: asking, webhooks } = this;
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
    try {
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
  return async (request, action) => {
    try {
      return await authenticate(request, action);
    } catch (error) {
      if (action === 'publish') limits.chargeRefusedCredential(request, error);
      throw error;
    }
  };
}

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

/** What `herald.latest()` is asked for: the query of `GET /v1/latest`, in-process. */
export interface LatestQuery {
  /** Topics or URI templates, as `topic=` takes them. */
  readonly topics: string | readonly string[];
  readonly types?: readonly string[];
  readonly tags?: Readonly<Record<string, string | readonly string[]>>;
  /** Default: the principal's. */
  readonly tenant?: string;
  /** Whose grants and permissions apply. Default: every grant, no permission. */
  readonly principal?: Principal;
  /** The most events, the newest. Default: `snapshot.maxEvents` (10 000). */
  readonly limit?: number;
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
