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

describe('herald/client as a browser bundle', () => {
  test('builds for the browser with no Node built-in and no dependency, within 6 KiB min+gzip', async () => {
    const code = await bundle('src/client/index.ts');
    assert.doesNotMatch(code, /\bfrom\s*["']|\bimport\s*\(|\brequire\(/, 'imports nothing');
    assert.doesNotMatch(code, /\bprocess\.|\bBuffer\b|setImmediate/, 'no Node global');
    const size = gzipSync(code, { level: 9 }).length;
    assert.ok(size <= 6144, `${size} B`);
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
