import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The dashboard's built files by name, as `npm run build` made them.
 *
 * This is the checkout's version of the module, for code that runs from `src/` (the tests, with
 * Node's type stripping): it reads them from `dist/dashboard/`. The package does not ship it:
 * scripts/build-dashboard.mjs replaces `dist/dashboard/assets.js` with a module that holds the
 * three files as strings, so the package reads no file at run time and an app bundler (Next.js,
 * with Turbopack or webpack) has no file reference to resolve in it.
 */
export type DashboardFile = 'index.html' | 'app.js' | 'app.css';

/** The file's text, or undefined while the dashboard is not built. */
export function dashboardAsset(file: DashboardFile): string | undefined {
  // `dist/dashboard/` of the checkout, seen from `src/dashboard/` (and from `dist/dashboard/`
  // itself, if this version is ever left there by a build that stopped after tsc). A path, not
  // `new URL('…', import.meta.url)`: bundlers take that for a file to bundle, and fail on it.
  const path = join(dirname(fileURLToPath(import.meta.url)), '../../dist/dashboard', file);
  return existsSync(path) ? readFileSync(path, 'utf8') : undefined;
}
