import type { AuthUrlOptions } from './auth/auth-url.ts';
import type { JwtOptions } from './auth/jwt.ts';
import type { Authenticator } from './auth/token-authenticator.ts';
import type { FailoverOptions } from './backends/failover/log.ts';
import type { ClusterOptions } from './cluster/cluster.ts';
import type { HubSettings } from './core/hub.ts';
import type { Log } from './core/log.ts';
import type { Principal } from './core/principal.ts';
import type { CompressionOption } from './http/compression.ts';
import type { LimitOptions } from './http/limits.ts';
import type { MercureOptions } from './mercure/mercure.ts';
import type { HeraldLogger } from './observability/logger.ts';
import type { WebhookOptions } from './observability/webhooks.ts';

/**
 * What `createHerald` takes, each option with its default: the hub's settings, the log, auth,
 * limits, the protocols and routes it serves. Apart from the `Herald` class, so that the class
 * reads as what it does and this as what it can be told.
 */
export interface HeraldOptions extends HubSettings {
  /** Where events are logged and fanned out from. Default: an in-memory broker. */
  readonly broker?: Log;
  /**
   * Ride out outages of `broker` (`herald serve --on-broker-down local`): while it is down this
   * node accepts and delivers on its own, holding up to `outageBuffer` events (default 10 000;
   * past it publishes get 503), probes it every `probeIntervalMs` (default 1 000), and hands what
   * it held over when it is back (src/backends/failover/log.ts). Default: off, a broker that fails
   * fails publishes with 503. Not for the default memory broker, which cannot be lost.
   */
  readonly failover?: FailoverOptions | boolean;
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
  /**
   * Compress event streams for clients that accept it (`Accept-Encoding`): `true` offers gzip,
   * deflate and br in that order, a list offers those codings in its order. A compressed stream
   * holds a compressor of its own (~100 KiB for gzip or deflate while the stream is busy, ~700 KiB
   * for br while it is open) and costs more CPU per event, so it is off by default (`false`); an
   * adapter's own `compression` option wins over this one.
   */
  readonly compression?: CompressionOption;
  /**
   * Admission limits: requests and streams per IP (per node), streams per subject and tenant and
   * publish rates per credential (across every node sharing a broker that can count, unless
   * `scope: 'node'`; see src/http/limits.ts).
   */
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
   * Set when the hub runs other than configured (a worker of `--workers` says so for its primary):
   * `/readyz` then reports `degraded`. A `failover` log reports its own state (`fallback-local`,
   * `rejoining`) without it.
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
   * The cluster layer (`/v1/nodes`, `/v1/connections`, presence): how often this node's heartbeat
   * goes out (`heartbeatMs`, default 5 000), how long a silent node stays listed (`leaseMs`,
   * default 15 000, at most 30 000) and how long a question to every node waits
   * (`gatherTimeoutMs`, default 2 000).
   */
  readonly cluster?: ClusterOptions;
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
