import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

describe("the README's source tree", () => {
  test('names every module under src/, folder by folder', () => {
    const readme = readFileSync(`${ROOT}README.md`, 'utf8');
    const block = /```\nsrc\/\n([\s\S]*?)```/.exec(readme)?.[1];
    assert.ok(block, 'the README has the src/ tree');
    // Each folder's entry runs from its "name/" line to the next one; its words are module names.
    const listed = new Map<string, Set<string>>();
    let folder = '';
    for (const line of block.split('\n')) {
      const start = /^ {2}([a-z]+)\/\s/.exec(line);
      if (start) folder = start[1] as string;
      const words = line.replace(/\([^)]*\)?/g, ' ').match(/[a-z][\w-]*/g) ?? [];
      const names = listed.get(folder) ?? new Set<string>();
      for (const word of words) names.add(word);
      listed.set(folder, names);
    }
    const missing: string[] = [];
    for (const entry of readdirSync(`${ROOT}src`, { withFileTypes: true })) {
      if (!entry.isDirectory()) continue;
      for (const file of readdirSync(`${ROOT}src/${entry.name}`)) {
        if (!file.endsWith('.ts')) continue;
        if (!listed.get(entry.name)?.has(file.replace(/\.ts$/, ''))) missing.push(`${entry.name}/${file}`);
      }
    }
    assert.deepEqual(missing, [], 'modules the README does not name');
  });
});
