import { ALL, anyMatch, type Selector } from './topics.ts';

/**
 * Who is calling, as established by authentication: the tenant it belongs to and what it may
 * do there. The tenant always comes from here, never from a request parameter.
 */
export interface Principal {
  readonly tenant: string;
  /** A stable name for rate limits and audit (the token's `sub`). */
  readonly subject?: string;
  /** Which private events it may see. */
  readonly subscribe: readonly Selector[];
  /** Which topics it may publish to. */
  readonly publish: readonly Selector[];
  /** Every right in every tenant: publish anywhere, watch any tenant, see every figure. */
  readonly admin: boolean;
  /** Named rights, e.g. to see redacted fields. */
  readonly permissions: readonly string[];
  /** When the credential expires, ms since the epoch; a stream is told before and ends then. */
  readonly expiresAt?: number;
  /** How the credential came: a cookie makes state-changing requests subject to an Origin check. */
  readonly via?: 'header' | 'cookie' | 'query';
}

/** The tenant of an admin stream that watches every tenant. */
export const ALL_TENANTS = '*';

/** Open development mode, and the in-process API: one tenant, every right. */
export const OPEN_PRINCIPAL: Principal = Object.freeze({
  tenant: '',
  subscribe: [ALL],
  publish: [ALL],
  admin: true,
  permissions: [],
});

/** Whether a principal may see an event: public events always, private ones through a grant. */
export const canSee = (
  grants: readonly Selector[],
  event: { private?: boolean; topics: readonly string[] },
) => event.private !== true || anyMatch(grants, event.topics);
