import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** Where the source tree is drawn (it left the README, a front page, for the architecture page). */
const PAGE = 'docs/architecture.md';

/**
 * The page's `src/` block, folder by folder: a line that starts (after its indent) with `name/`
 * opens a folder, nested under the folder opened with less indent above it; every word after it,
 * on that line and the next ones, is a module name. Parenthesized text is a comment.
 */
export function listedModules(block: string): Map<string, Set<string>> {
  const listed = new Map<string, Set<string>>();
  const open: { indent: number; path: string }[] = [];
  let folder = '';
  for (const line of block.split('\n')) {
    const start = /^( +)([a-z-]+)\/(\s|$)/.exec(line);
    let rest = line;
    if (start) {
      const indent = (start[1] as string).length;
      while (open.length > 0 && (open.at(-1)?.indent ?? 0) >= indent) open.pop();
      folder = [...open.map((each) => each.path), start[2]].join('/');
      open.push({ indent, path: start[2] as string });
      rest = line.slice(start[0].length);
    }
    const words = rest.replace(/\([^)]*\)?/g, ' ').match(/[a-z][\w-]*/g) ?? [];
    const names = listed.get(folder) ?? new Set<string>();
    for (const word of words) names.add(word);
    listed.set(folder, names);
  }
  return listed;
}

/** Every module under `src/<folder>/…`, as [folder path, module name]. */
function modules(dir: string, folder: string): [string, string][] {
  const found: [string, string][] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.isDirectory()) found.push(...modules(`${dir}/${entry.name}`, `${folder}/${entry.name}`));
    else if (entry.name.endsWith('.ts')) found.push([folder, entry.name.replace(/\.ts$/, '')]);
  }
  return found;
}

describe("docs/architecture.md's source tree", () => {
  test('names every module under src/, folder by folder, nested folders too', () => {
    const page = readFileSync(`${ROOT}${PAGE}`, 'utf8');
    const block = /```\nsrc\/\n([\s\S]*?)```/.exec(page)?.[1];
    assert.ok(block, `${PAGE} has the src/ tree`);
    const listed = listedModules(block);
    const missing: string[] = [];
    for (const entry of readdirSync(`${ROOT}src`, { withFileTypes: true })) {
      if (!entry.isDirectory()) continue;
      for (const [folder, name] of modules(`${ROOT}src/${entry.name}`, entry.name)) {
        if (!listed.get(folder)?.has(name)) missing.push(`${folder}/${name}.ts`);
      }
    }
    assert.deepEqual(missing, [], `modules ${PAGE} does not name`);
  });

  test('reads nested folders under the folder above them, so a module listed in the wrong folder is missing', () => {
    const listed = listedModules(
      ['  core/      hub  event', '    protocol/ fields (the table)', '  http/      router'].join('\n'),
    );
    assert.deepEqual([...(listed.get('core') ?? [])], ['hub', 'event']);
    assert.deepEqual([...(listed.get('core/protocol') ?? [])], ['fields']);
    assert.deepEqual([...(listed.get('http') ?? [])], ['router']);
    assert.equal(listed.get('core')?.has('fields'), false);
  });
});
