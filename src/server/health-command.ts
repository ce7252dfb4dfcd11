import { maskUrl } from './masking.ts';
import { unreachable } from './messages.ts';

/**
 * `herald health --url <hub>`: one request to the hub's `/readyz`, for container health checks
 * (Docker's HEALTHCHECK, a Kubernetes exec probe) where no curl is installed.
 *
 * - `ok` (200): healthy, exit 0.
 * - `degraded` with 200: the hub serves, but not as configured: `--on-broker-down local` has it
 *   riding out a broker outage on its own (`fallback-local`), or handing what it held back to the
 *   broker (`rejoining`). That is the state the operator asked for, so it counts as healthy (exit
 *   0) and the line says so; `--strict` counts it as unhealthy (exit 1), e.g. to take the node out
 *   of a load balancer until it has rejoined the shared log (it does so by itself).
 * - 503 (the broker is unusable), any other answer, or no answer within `--timeout`: exit 1.
 *
 * Exit 1, never 2, for an unhealthy hub: Docker reserves 2.
 */

/** `herald health --timeout` unless told. */
export const DEFAULT_HEALTH_TIMEOUT = '5s';

export interface HealthOptions {
  readonly url: string;
  /** ms. */
  readonly timeoutMs: number;
  readonly strict?: boolean;
}

export interface HealthResult {
  readonly healthy: boolean;
  /** One line for the check's output. */
  readonly line: string;
}

export async function healthCommand(options: HealthOptions): Promise<HealthResult> {
  const url = new URL('/readyz', options.url);
  const at = maskUrl(String(url));
  let response: Response;
  let body: { status?: unknown; broker?: unknown; degraded?: unknown; detail?: unknown } | undefined;
  try {
    response = await fetch(url, {
      headers: { accept: 'application/json' },
      signal: AbortSignal.timeout(options.timeoutMs),
    });
    body = (await response.json().catch(() => undefined)) as typeof body;
  } catch (error) {
    return { healthy: false, line: `unhealthy: ${unreachable(url, error).message}` };
  }
  const broker = typeof body?.broker === 'string' ? `broker: ${body.broker}` : 'broker: ?';
  if (response.status === 200 && body?.status === 'ok') {
    return { healthy: true, line: `ok: ${at} (${broker})` };
  }
  if (response.status === 200 && body?.status === 'degraded') {
    const why = typeof body.degraded === 'string' ? body.degraded : 'degraded';
    return options.strict
      ? { healthy: false, line: `unhealthy (--strict): ${at} is degraded (${broker}, ${why})` }
      : {
          healthy: true,
          line: `degraded but serving: ${at} (${broker}, ${why}); --strict counts this as unhealthy`,
        };
  }
  if (body?.status === 'degraded') {
    const detail = typeof body.detail === 'string' ? `: ${body.detail}` : '';
    return { healthy: false, line: `unhealthy: ${at} answered ${response.status} (${broker}${detail})` };
  }
  return {
    healthy: false,
    line: `unhealthy: ${at} answered ${response.status} ${response.statusText}, not a Herald readiness report. Is --url (HERALD_URL) the hub's address?`,
  };
}
