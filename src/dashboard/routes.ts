import { createHash } from 'node:crypto';
import { HeraldError } from '../core/errors.ts';
import type { HttpContext } from '../http/context.ts';
import type { HttpReply, HttpRequest } from '../http/request.ts';
import type { RouteEntry } from '../http/route-table.ts';
import { type DashboardFile, dashboardAsset } from './assets.ts';

/**
 * `/dashboard`: the page and its assets, as `npm run build` bundled them (embedded in the
 * package as strings, see assets.ts: nothing is read from disk, so app bundlers can bundle it).
 * With authentication the shell is public (it holds no data); every figure it shows comes from
 * `/v1/events` and `/v1/publish`, which require admin credentials. Without, it is served to this
 * machine only, unless the app passed `open: true`.
 */

interface Asset {
  readonly file: DashboardFile;
  readonly contentType: string;
}

const ASSETS: Readonly<Record<string, Asset>> = {
  '/dashboard': { file: 'index.html', contentType: 'text/html; charset=utf-8' },
  '/dashboard/app.js': { file: 'app.js', contentType: 'text/javascript; charset=utf-8' },
  '/dashboard/app.css': { file: 'app.css', contentType: 'text/css; charset=utf-8' },
};

/** The page tells the browser to load nothing from elsewhere: it works offline, behind any firewall. */
const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy':
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
};

interface Loaded {
  readonly body: string;
  readonly etag: string;
}

/** Hashed once per process: the assets change only with a new build, which comes with a restart. */
const loaded = new Map<DashboardFile, Loaded>();

function load(file: DashboardFile): Loaded {
  const cached = loaded.get(file);
  if (cached !== undefined) return cached;
  const body = dashboardAsset(file);
  if (body === undefined) {
    throw new HeraldError(
      503,
      'dashboard-not-built',
      'the dashboard is not built: run `npm run build` (it bundles the page into dist/dashboard/)',
    );
  }
  const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`;
  const asset = { body, etag };
  loaded.set(file, asset);
  return asset;
}

async function serveAsset(context: HttpContext, request: HttpRequest): Promise<HttpReply> {
  // Without authentication the page is the operator's, served to this machine only (unless the
  // app opened the hub to everyone): the authenticator of an open hub decides, as for /v1/stats.
  if (context.open) await context.authenticate(request, 'stats');
  const asset = ASSETS[request.path] as Asset;
  const { body, etag } = load(asset.file);
  // Revalidated on every load (names carry no hash), answered with 304 while the build is the same.
  const headers = {
    'content-type': asset.contentType,
    'cache-control': 'no-cache',
    etag,
    ...SECURITY_HEADERS,
  };
  if (request.header('if-none-match') === etag) return { kind: 'response', status: 304, headers, body: '' };
  return { kind: 'response', status: 200, headers, body };
}

/** The dashboard's routes, for the hub's route table. */
export const DASHBOARD_ROUTES: readonly RouteEntry[] = Object.keys(ASSETS).map((path) => ({
  method: 'GET',
  path,
  handle: serveAsset,
}));
