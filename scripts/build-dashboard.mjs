// Bundles the dashboard page (src/dashboard/page.ts with herald/client, no UI library) into
// dist/dashboard/: index.html, app.js, app.css, served by the hub at /dashboard. Run by
// `npm run build`, after tsc. Prints the gzipped sizes (the README quotes them).
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';

const out = 'dist/dashboard/';
mkdirSync(out, { recursive: true });

const result = await build({
  entryPoints: ['src/dashboard/page.ts'],
  bundle: true,
  minify: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  write: false,
  logLevel: 'warning',
});
const script = result.outputFiles[0].contents;

/** Written under a temporary name and renamed: a hub reading the directory never sees half a file. */
function writeAtomically(name, contents) {
  const temporary = `${out}.${name}.${process.pid}.tmp`;
  writeFileSync(temporary, contents);
  renameSync(temporary, `${out}${name}`);
}

writeAtomically('app.js', script);
writeAtomically('app.css', readFileSync('src/dashboard/page.css'));
writeAtomically('index.html', readFileSync('src/dashboard/index.html'));

const gzipped = (bytes) => gzipSync(bytes, { level: 9 }).length;
const html = readFileSync(`${out}index.html`);
const css = readFileSync(`${out}app.css`);
const total = gzipped(script) + gzipped(css) + gzipped(html);
console.log(
  `dashboard: app.js ${script.length} B (${gzipped(script)} B gzip), app.css ${css.length} B ` +
    `(${gzipped(css)} B gzip), index.html ${html.length} B (${gzipped(html)} B gzip); ${total} B gzip in all`,
);
