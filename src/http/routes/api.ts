import type { RouteEntry } from '../route-table.ts';
import { channels, withMuxStats } from './channels.ts';
import { poll, subscribe } from './events.ts';
import { health, readiness } from './health.ts';
import { history } from './history.ts';
import { latest } from './latest.ts';
import { publish } from './publish.ts';
import { stats } from './stats.ts';
import { changeSubscriptions } from './subscriptions.ts';

/** The HTTP API v1 and the health checks: the routes the router starts with. */
export const API_ROUTES: readonly RouteEntry[] = [
  { method: 'GET', path: '/v1/events', handle: subscribe, head: false },
  { method: 'GET', path: '/v1/events/poll', handle: poll },
  { method: 'GET', path: '/v1/latest', handle: latest },
  { method: 'GET', path: '/v1/history', handle: history },
  { method: 'POST', path: '/v1/subscriptions', handle: changeSubscriptions },
  { method: 'POST', path: '/v1/channels', handle: channels },
  { method: 'POST', path: '/v1/publish', handle: publish },
  { method: 'GET', path: '/v1/stats', handle: (context, request) => stats(withMuxStats(context), request) },
  { method: 'GET', path: '/healthz', handle: health },
  { method: 'GET', path: '/readyz', handle: readiness },
];
