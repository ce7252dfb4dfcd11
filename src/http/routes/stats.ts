import type { HttpContext } from '../context.ts';
import { json } from '../replies.ts';
import type { HttpReply, HttpRequest } from '../request.ts';

/** `GET /v1/stats`: every figure for an admin, a tenant's own figures for anyone else. */
export async function stats(context: HttpContext, request: HttpRequest): Promise<HttpReply> {
  return json(200, await context.stats(await context.authenticate(request, 'stats')));
}
