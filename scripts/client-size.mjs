// The size budget of `herald/client`: src/client/index.ts bundled as a browser app would bundle it
// (esbuild, minified, ESM, browser platform), gzipped. Prints the sizes; exits 1 above the budget.
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';

const BUDGET = 6 * 1024;

const result = await build({
  entryPoints: ['src/client/index.ts'],
  bundle: true,
  minify: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  write: false,
  logLevel: 'silent',
});
const code = result.outputFiles[0].contents;
const gzipped = gzipSync(code, { level: 9 }).length;
const verdict = gzipped <= BUDGET ? 'within' : 'OVER';
console.log(
  `herald/client: ${code.length} B minified, ${gzipped} B min+gzip (${verdict} the ${BUDGET} B budget)`,
);
if (gzipped > BUDGET) process.exit(1);
