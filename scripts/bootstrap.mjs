// Makes a fresh clone runnable: installs dependencies when node_modules is missing or does not
// match package-lock.json, then builds. Runs on whatever Node is on the PATH (the system's may be
// old), so it is plain JavaScript with no dependencies.
//
// It installs with `npm ci`, which installs exactly what package-lock.json lists and never writes
// it: `npm start` and `npm test` leave the work tree as they found it. (A package.json that no
// longer matches the lockfile makes `npm ci` stop and say so; `npm install <package>` is how a
// dependency is added, and it updates both.)
import { execSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';

const readJson = (path) => {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    return undefined;
  }
};

/**
 * Why node_modules needs `npm ci`, or undefined when it holds what the lockfile lists. Compares
 * contents, not times: editing package.json's scripts, or a checkout that touches the lockfile
 * without changing it, does not wipe and reinstall node_modules.
 */
function installNeeded() {
  // npm's record of what it installed (written by npm ci and npm install).
  const installed = readJson('node_modules/.package-lock.json');
  if (installed?.packages === undefined) return 'node_modules is missing';
  const lock = readJson('package-lock.json');
  const manifest = readJson('package.json');
  if (lock?.packages === undefined || manifest === undefined) return 'package-lock.json is unreadable';
  const root = lock.packages[''] ?? {};
  // In any order: npm keeps them sorted, a hand-edited package.json may not.
  const sorted = (ranges = {}) => JSON.stringify(Object.entries(ranges).sort(([a], [b]) => (a < b ? -1 : 1)));
  for (const field of ['dependencies', 'devDependencies', 'optionalDependencies', 'peerDependencies']) {
    if (sorted(manifest[field]) !== sorted(root[field])) {
      return `package.json's ${field} differ from package-lock.json's`;
    }
  }
  for (const [path, entry] of Object.entries(lock.packages)) {
    if (path === '' || !path.startsWith('node_modules/')) continue;
    const have = installed.packages[path];
    // Optional packages for other platforms (Biome's, esbuild's) are never installed here.
    if (have === undefined && entry.optional === true) continue;
    if (have === undefined) return `${path.slice('node_modules/'.length)} is not installed`;
    if (have.version !== entry.version) {
      return `${path.slice('node_modules/'.length)} is ${have.version}; the lockfile has ${entry.version}`;
    }
  }
  for (const path of Object.keys(installed.packages)) {
    if (lock.packages[path] === undefined)
      return `${path.slice('node_modules/'.length)} is not in the lockfile`;
  }
  return undefined;
}

const reason = installNeeded();
if (reason !== undefined) {
  console.error(`bootstrap: ${reason}: npm ci`);
  execSync('npm ci --no-audit --no-fund', { stdio: 'inherit' });
}

// Build unless the last build here is newer than everything it is made from: the example
// commands run this too, and rewriting dist/ under a test suite that is reading it would break it.
// The stamp lives in node_modules/.cache, not in dist/: dist/ is what the package ships.
const stamp = 'node_modules/.cache/herald/bootstrap-built';
const mtime = (path) => (existsSync(path) ? statSync(path).mtimeMs : 0);
const newest = (path) => {
  if (!existsSync(path)) return 0;
  const stat = statSync(path);
  if (!stat.isDirectory()) return stat.mtimeMs;
  return readdirSync(path).reduce(
    (latest, name) => Math.max(latest, newest(`${path}/${name}`)),
    stat.mtimeMs,
  );
};
const sources = [
  'src',
  'scripts/build-dashboard.mjs',
  'package.json',
  'package-lock.json',
  'tsconfig.json',
  'tsconfig.build.json',
];
const built = existsSync('dist/index.js') && existsSync('dist/server/cli.js');
if (!built || mtime(stamp) <= Math.max(...sources.map(newest))) {
  // Stamped with the time the build began: a file saved while it ran makes the next run build again.
  const began = new Date();
  execSync('npm run --silent build', { stdio: 'inherit' });
  mkdirSync('node_modules/.cache/herald', { recursive: true });
  writeFileSync(stamp, `${began.toISOString()}\n`);
  utimesSync(stamp, began, began);
}
// Where the stamp used to be: it would end up in the package.
rmSync('dist/.bootstrap-built', { force: true });
