import type { HttpContext } from '../http/context.ts';
import { json } from '../http/replies.ts';
import type { HttpReply, HttpRequest } from '../http/request.ts';
import type { Roster } from './roster.ts';
import { adminScope } from './scope.ts';

/**
 * `GET /v1/nodes`: every live node of the cluster with its figures in one answer, this node's
 * fresh, the others' from their last heartbeat (at most a heartbeat old). Admin credentials only;
 * a tenant's admin sees every node but only its own tenant's figures.
 */
export async function listNodes(
  context: HttpContext,
  request: HttpRequest,
  roster: Roster,
): Promise<HttpReply> {
  const principal = await context.authenticate(request, 'stats');
  const scope = adminScope(principal, undefined, 'listing nodes');
  const nodes = roster
    .nodes()
    .map((node) =>
      scope === '*'
        ? node
        : { ...node, tenants: scope in node.tenants ? { [scope]: node.tenants[scope] } : {} },
    );
  return json(200, { nodes, heartbeatMs: roster.heartbeatMs, leaseMs: roster.leaseMs });
}
