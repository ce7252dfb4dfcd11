// Makes a fresh clone runnable: installs dependencies when they are missing or older than
// package.json, then builds. Runs on whatever Node is on the PATH (the system's may be old),
// so it is plain JavaScript with no dependencies.
import { execSync } from 'node:child_process';
import { existsSync, statSync, utimesSync } from 'node:fs';

const marker = 'node_modules/.package-lock.json';
const mtime = (path) => (existsSync(path) ? statSync(path).mtimeMs : 0);
const installed = mtime(marker);
if (installed === 0 || installed < mtime('package.json') || installed < mtime('package-lock.json')) {
  execSync('npm install --no-audit --no-fund', { stdio: 'inherit' });
  // npm leaves the marker alone when nothing changed; touch it so the next run skips the install.
  const now = new Date();
  utimesSync(marker, now, now);
}
execSync('npm run --silent build', { stdio: 'inherit' });
