// The size budget of `herald/client`: src/client/index.ts bundled as a browser app would bundle it
// (esbuild, minified, ESM, browser platform, with code splitting), gzipped. What is counted is what
// a page loads at start: the entry and the chunks it imports statically. Tab sharing
// (tab-share.ts and the shared stream, mux.ts) is a dynamic import, loaded only by a window with
// Web Locks and BroadcastChannel once it connects: it has a budget of its own, and is printed apart.
// Prints the sizes; exits 1 above either budget.
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';

const BUDGET = 6 * 1024;
const LAZY_BUDGET = 4 * 1024;

const result = await build({
  entryPoints: ['src/client/index.ts'],
  bundle: true,
  minify: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  splitting: true,
  outdir: 'out',
  metafile: true,
  write: false,
  logLevel: 'silent',
});
const files = new Map(result.outputFiles.map((file) => [file.path.slice(file.path.indexOf('out/')), file]));
const outputs = result.metafile.outputs;
/** `path` and the chunks it imports statically, transitively. */
const closure = (path, into = new Set()) => {
  into.add(path);
  for (const { path: next, kind } of outputs[path].imports) {
    if (kind === 'import-statement' && !into.has(next)) closure(next, into);
  }
  return into;
};
const entry = Object.keys(outputs).find((path) => outputs[path].entryPoint === 'src/client/index.ts');
const startup = closure(entry);
const lazy = new Set();
for (const path of startup) {
  for (const { path: next, kind } of outputs[path].imports) {
    if (kind === 'dynamic-import')
      for (const chunk of closure(next)) if (!startup.has(chunk)) lazy.add(chunk);
  }
}
const measure = (paths) => {
  // One gzip stream per file, as a server sends them.
  let bytes = 0;
  let gzipped = 0;
  for (const path of paths) {
    const contents = files.get(path).contents;
    bytes += contents.length;
    gzipped += gzipSync(contents, { level: 9 }).length;
  }
  return { bytes, gzipped };
};
let over = false;
for (const [what, paths, budget] of [
  ['herald/client', startup, BUDGET],
  ['  + tab sharing, loaded on demand', lazy, LAZY_BUDGET],
]) {
  const { bytes, gzipped } = measure(paths);
  over ||= gzipped > budget;
  const verdict = gzipped <= budget ? 'within' : 'OVER';
  console.log(`${what}: ${bytes} B minified, ${gzipped} B min+gzip (${verdict} the ${budget} B budget)`);
}
if (over) process.exit(1);
