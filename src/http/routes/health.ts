import { healthOf, outageDegraded } from '../../core/log.ts';
import type { HttpContext } from '../context.ts';
import { json } from '../replies.ts';
import type { HttpReply } from '../request.ts';

/** `GET /healthz`: the process answers. */
export async function health(): Promise<HttpReply> {
  return json(200, { status: 'ok' });
}

/** `GET /readyz`: the hub started and its broker answers; `degraded` when it runs other than configured. */
export async function readiness(context: HttpContext): Promise<HttpReply> {
  const broker = context.log.kind;
  const started = await context.hub.whenReady().then(
    () => undefined,
    (error: unknown) => (error instanceof Error ? error.message : String(error)),
  );
  const health = started === undefined ? await healthOf(context.log) : { ok: false, detail: started };
  if (!health.ok) return json(503, { status: 'degraded', broker, detail: health.detail });
  // Serving, but not as configured (or riding out a broker outage): ready for traffic, and saying so.
  const degraded = context.degraded ?? outageDegraded(context.log);
  if (degraded !== undefined) return json(200, { status: 'degraded', broker, degraded });
  return json(200, { status: 'ok', broker });
}
