import { createJwtVerifier, type JwtOptions } from './auth/jwt.ts';
import { type Authenticator, tokenAuthenticator } from './auth/token-authenticator.ts';
import type { Broker } from './brokers/broker.ts';
import { MemoryBroker } from './brokers/memory.ts';
import { MAX_TOPIC_LENGTH, type PublishInput } from './core/event.ts';
import { DEFAULT_HUB_OPTIONS, Hub, type HubOptions, type HubStats, type TenantStats } from './core/hub.ts';
import { OPEN_PRINCIPAL, type Principal } from './core/principal.ts';
import { Cors } from './http/cors.ts';
import { type LimitOptions, Limits } from './http/limits.ts';

export interface HeraldOptions extends Partial<HubOptions> {
  /** Where events are logged and fanned out from. Default: an in-memory broker. */
  readonly broker?: Broker;
  /** History of the default memory broker. */
  readonly history?: { readonly maxEvents?: number; readonly maxAgeMs?: number };
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
    readonly jwt: JwtOptions;
    /** Requests without a token may subscribe, to public events only. Default false. */
    readonly anonymous?: boolean;
    /** Default `herald_token`. */
    readonly cookieName?: string;
  };
  /** Your own authentication instead of `auth`: from the request to a Principal. */
  readonly authenticate?: Authenticator;
  /** Origins allowed to call the hub from a browser (CORS) and to publish with a cookie. */
  readonly corsOrigins?: readonly string[];
  /** Per-node admission limits: connections and streams per IP, subject and tenant, publish rates. */
  readonly limits?: LimitOptions;
  /** This node's name in stats and logs. Default: a random one. */
  readonly nodeId?: string;
  /**
   * Set when the hub runs other than configured, e.g. `fallback-local` (on memory because the
   * configured broker was unreachable at start): `/readyz` then reports `degraded`.
   */
  readonly degraded?: string;
}

export interface HeraldStats extends HubStats {
  /** Which node answered: the figures are this node's, the history is the shared log's. */
  readonly node: string;
  /** Why the hub is not running as configured, e.g. `fallback-local`. */
  readonly degraded?: string;
  readonly uptimeMs: number;
  readonly timestamp: string;
}

/**
 * A hub with its broker, ready to be mounted: `nodeHandler(herald)`, `webHandler(herald)`,
 * the Fastify plugin, or `herald serve`. Publishing in-process is `await herald.publish(...)`.
 */
export class Herald {
  readonly hub: Hub;
  readonly broker: Broker;
  readonly authenticate: Authenticator;
  readonly maxBodyBytes: number;
  readonly maxTopicsPerSubscription: number;
  readonly maxSelectorLength: number;
  readonly cors: Cors;
  readonly limits: Limits;
  /** True when requests are not authenticated (no `auth`, no `authenticate`). */
  readonly open: boolean;
  readonly nodeId: string;
  readonly degraded: string | undefined;
  readonly onError: (error: unknown, context: string) => void;
  private readonly startedAt = Date.now();
  private readonly statsSources = new Map<string, () => unknown>();

  constructor(options: HeraldOptions = {}) {
    const {
      broker,
      history,
      maxBodyBytes,
      maxTopicsPerSubscription,
      maxSelectorLength,
      auth,
      authenticate,
      corsOrigins,
      limits,
      nodeId,
      degraded,
      ...hub
    } = options;
    this.nodeId = nodeId ?? globalThis.crypto.randomUUID().slice(0, 8);
    this.degraded = degraded;
    this.broker = broker ?? new MemoryBroker(history);
    this.hub = new Hub(this.broker, definedOnly(hub));
    this.open = authenticate === undefined && auth === undefined;
    this.authenticate =
      authenticate ??
      (auth === undefined
        ? () => OPEN_PRINCIPAL
        : tokenAuthenticator({ ...auth, verifier: createJwtVerifier(auth.jwt) }));
    this.maxBodyBytes = maxBodyBytes ?? 4 * 1024 * 1024;
    this.maxTopicsPerSubscription = maxTopicsPerSubscription ?? 100;
    this.maxSelectorLength = Math.min(maxSelectorLength ?? MAX_TOPIC_LENGTH, MAX_TOPIC_LENGTH);
    this.cors = new Cors({ origins: corsOrigins ?? [] });
    this.limits = new Limits(limits);
    this.onError = this.hub.options.onError;
  }

  /**
   * Publishes one event (resolves with its id) or a batch (resolves with the ids, in order),
   * with every right of the tenant given in the event (default `""`).
   */
  publish(input: PublishInput): Promise<string>;
  publish(inputs: readonly PublishInput[]): Promise<string[]>;
  async publish(input: PublishInput | readonly PublishInput[]): Promise<string | string[]> {
    if (Array.isArray(input)) {
      const events = await this.hub.publish(input, OPEN_PRINCIPAL);
      return events.map((event) => event.id);
    }
    const [event] = await this.hub.publish([input], OPEN_PRINCIPAL);
    return (event as { id: string }).id;
  }

  /** Every figure for an admin (the default); a tenant's own figures for anyone else. */
  stats(): Promise<HeraldStats>;
  stats(principal: Principal): Promise<HeraldStats | TenantStats>;
  async stats(principal: Principal = OPEN_PRINCIPAL): Promise<HeraldStats | TenantStats> {
    if (!principal.admin) return this.hub.tenantStats(principal.tenant);
    return {
      node: this.nodeId,
      ...(this.degraded === undefined ? {} : { degraded: this.degraded }),
      ...(await this.hub.stats()),
      ...Object.fromEntries([...this.statsSources].map(([name, source]) => [name, source()])),
      uptimeMs: Date.now() - this.startedAt,
      timestamp: new Date().toISOString(),
    };
  }

  /** Adds figures of a part running beside the hub (bridges) to the admin view of `/v1/stats`. */
  addStats(name: string, source: () => unknown): void {
    this.statsSources.set(name, source);
  }

  /** Ends every stream with a retry hint and closes the broker. */
  close(): Promise<void> {
    return this.hub.close();
  }
}

export function createHerald(options: HeraldOptions = {}): Herald {
  return new Herald(options);
}

export const DEFAULTS = DEFAULT_HUB_OPTIONS;

function definedOnly<T extends object>(object: T): Partial<T> {
  return Object.fromEntries(Object.entries(object).filter(([, value]) => value !== undefined)) as Partial<T>;
}
