import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';

const bundle = async (entry: string, external: string[] = []) => {
  const result = await build({
    entryPoints: [entry],
    bundle: true,
    minify: true,
    format: 'esm',
    platform: 'browser',
    write: false,
    logLevel: 'silent',
    external,
  });
  return result.outputFiles[0]?.text ?? '';
};

/**
 * herald/client as a browser app bundles it, with code splitting: what loads at start, and the
 * chunks only a dynamic import loads (tab sharing), each gzipped as a server sends them.
 */
const splitBundle = async () => {
  const result = await build({
    entryPoints: ['src/client/index.ts'],
    bundle: true,
    minify: true,
    format: 'esm',
    platform: 'browser',
    splitting: true,
    outdir: 'out',
    metafile: true,
    write: false,
    logLevel: 'silent',
  });
  const code = new Map(
    result.outputFiles.map((file) => [file.path.slice(file.path.indexOf('out/')), file.text]),
  );
  const outputs = result.metafile.outputs;
  const closure = (path: string, into = new Set<string>()): Set<string> => {
    into.add(path);
    for (const { path: next, kind } of outputs[path]?.imports ?? []) {
      if (kind === 'import-statement' && !into.has(next)) closure(next, into);
    }
    return into;
  };
  const entry = Object.keys(outputs).find((path) => outputs[path]?.entryPoint === 'src/client/index.ts');
  assert.ok(entry, 'the entry is an output');
  const startup = closure(entry);
  const lazy = [...code.keys()].filter((path) => !startup.has(path));
  const gzipped = (paths: Iterable<string>) =>
    [...paths].reduce((sum, path) => sum + gzipSync(code.get(path) ?? '', { level: 9 }).length, 0);
  return { code, startup, lazy, gzipped };
};

describe('herald/client as a browser bundle', () => {
  test('builds for the browser with no Node built-in and no dependency: 6 KiB at start, 4 KiB more for tab sharing', async () => {
    const { code, startup, lazy, gzipped } = await splitBundle();
    for (const [path, text] of code) {
      // Its own chunks only (`./chunk-….js`, `./tab-share-….js`): no package, no Node built-in.
      const imports = [...text.matchAll(/\bfrom\s*["']([^"']+)["']|\bimport\s*\(\s*["']([^"']+)["']/g)].map(
        (match) => match[1] ?? match[2],
      );
      for (const specifier of imports)
        assert.match(specifier ?? '', /^\.\/[\w-]+\.js$/, `${path} imports ${specifier}`);
      assert.doesNotMatch(text, /\brequire\(/, `${path}: no require`);
      assert.doesNotMatch(text, /\bprocess\.|\bBuffer\b|setImmediate/, `${path}: no Node global`);
    }
    assert.ok(gzipped(startup) <= 6144, `${gzipped(startup)} B at start`);
    assert.ok(lazy.length > 0, 'tab sharing is a chunk of its own, loaded on demand');
    assert.ok(gzipped(lazy) <= 4096, `${gzipped(lazy)} B for tab sharing`);
  });

  test('herald/react imports only react', async () => {
    const code = await bundle('src/client/react.ts', ['react']);
    const imports = [...code.matchAll(/from\s*"([^"]+)"/g)].map((match) => match[1]);
    assert.deepEqual([...new Set(imports)], ['react']);
  });
});

describe('the package entry points', () => {
  // By name, through the `exports` map of the built package (npm test builds first).
  test('herald/client and herald/react', async () => {
    const client = await import('herald/client');
    assert.equal(typeof client.createClient, 'function');
    assert.equal(typeof client.memoryStore, 'function');
    const react = await import('herald/react');
    for (const name of ['HeraldProvider', 'useHerald', 'useHeraldEvent', 'useLatest', 'useHeraldStatus']) {
      assert.equal(typeof (react as Record<string, unknown>)[name], 'function', name);
    }
  });
});
