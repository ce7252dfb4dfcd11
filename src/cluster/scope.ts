import { badRequest, HeraldError } from '../core/errors.ts';
import { hasControlCharacter } from '../core/event.ts';
import { ALL_TENANTS, type Principal } from '../core/principal.ts';

/**
 * Which tenants an admin action across the cluster (listing or ending connections) may reach.
 * An admin token of the default tenant (`""`: what `herald token --admin` makes without
 * `--tenant`, open development mode, the in-process API) acts on every tenant; an admin token
 * that names a tenant acts on that tenant only, so a tenant's own operator cannot list or end
 * another tenant's connections. Anything else is `403 admin-required`.
 *
 * Returns the tenant to act on, `*` for every tenant: `requested` when given (and allowed), else
 * every tenant for a cluster admin and its own for a tenant's.
 */
export function adminScope(principal: Principal, requested: string | null | undefined, what: string): string {
  if (!principal.admin) {
    throw new HeraldError(
      403,
      'admin-required',
      `${what} needs admin credentials (a token with "admin": true)`,
    );
  }
  const tenant = requested === null || requested === undefined ? undefined : checkedTenant(requested);
  if (principal.tenant === '') return tenant ?? ALL_TENANTS;
  if (tenant !== undefined && tenant !== principal.tenant) {
    throw new HeraldError(
      403,
      'tenant-forbidden',
      `an admin token of tenant "${principal.tenant}" acts on its own tenant only; ${what} of another ` +
        'tenant needs an admin token of the default tenant (no herald.tenant)',
    );
  }
  return principal.tenant;
}

/** A tenant named in a filter: at most 256 characters, no control character, as in a token. */
export function checkedTenant(tenant: unknown, parameter = 'tenant'): string {
  if (typeof tenant !== 'string' || tenant.length > 256 || hasControlCharacter(tenant)) {
    throw badRequest(
      'invalid-connection-filter',
      `${parameter} must be a tenant's name (at most 256 characters, no control character), or * for every tenant`,
      { parameter },
    );
  }
  return tenant;
}

/** Whether a stream of `tenant` is within `scope` (a tenant, or `*`). */
export const inScope = (scope: string, tenant: string): boolean => scope === ALL_TENANTS || scope === tenant;
