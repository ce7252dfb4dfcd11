// Makes a fresh clone runnable: installs dependencies when they are missing or older than
// package.json, then builds. Runs on whatever Node is on the PATH (the system's may be old),
// so it is plain JavaScript with no dependencies.
import { execSync } from 'node:child_process';
import { existsSync, readdirSync, statSync, utimesSync, writeFileSync } from 'node:fs';

const marker = 'node_modules/.package-lock.json';
const mtime = (path) => (existsSync(path) ? statSync(path).mtimeMs : 0);
const installed = mtime(marker);
if (installed === 0 || installed < mtime('package.json') || installed < mtime('package-lock.json')) {
  execSync('npm install --no-audit --no-fund', { stdio: 'inherit' });
  // npm leaves the marker alone when nothing changed; touch it so the next run skips the install.
  const now = new Date();
  utimesSync(marker, now, now);
}
// Build unless the last build here is newer than everything it is made from: the example
// commands run this too, and rewriting dist/ under a test suite that is reading it would break it.
const stamp = 'dist/.bootstrap-built';
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
  'scripts',
  'package.json',
  'package-lock.json',
  'tsconfig.json',
  'tsconfig.build.json',
];
if (mtime(stamp) <= Math.max(...sources.map(newest))) {
  // Stamped with the time the build began: a file saved while it ran makes the next run build again.
  const began = new Date();
  execSync('npm run --silent build', { stdio: 'inherit' });
  writeFileSync(stamp, `${began.toISOString()}\n`);
  utimesSync(stamp, began, began);
}
