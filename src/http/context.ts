import type { Authenticator } from '../auth/token-authenticator.ts';
import type { Hub } from '../core/hub.ts';
import type { Log } from '../core/log.ts';
import type { Principal } from '../core/principal.ts';
import type { HeraldLogger } from '../observability/logger.ts';
import type { Cors } from './cors.ts';
import type { Limits } from './limits.ts';

/**
 * What a request handler may use of the hub it serves: the routes (native, Mercure, dashboard,
 * metrics) get this and nothing more, so none of them depends on how the hub was put together.
 */
export interface HttpContext {
  readonly hub: Hub;
  /** The hub's log, for its kind and health (`/readyz`) and to locate a resume point. */
  readonly log: Log;
  readonly authenticate: Authenticator;
  readonly limits: Limits;
  readonly cors: Cors;
  readonly settings: RequestSettings;
  /** True when requests are not authenticated (no `auth`, no `authenticate`). */
  readonly open: boolean;
  /** Why the hub is not running as configured (`/readyz` says so), e.g. `fallback-local`. */
  readonly degraded: string | undefined;
  /** `/v1/stats`: every figure for an admin, a tenant's own figures for anyone else. */
  stats(principal: Principal): Promise<unknown>;
  /** Where refused and failed requests are logged; undefined: failures go to `onError`. */
  readonly logger: HeraldLogger | undefined;
  readonly onError: (error: unknown, context: string) => void;
}

/** The sizes a request is held to. */
export interface RequestSettings {
  readonly maxBodyBytes: number;
  readonly maxTopicsPerSubscription: number;
  readonly maxSelectorLength: number;
}
