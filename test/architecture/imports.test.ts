import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

/**
 * The import graph of src/: no cycles; the core depends on nothing outside it; and only the
 * package's entry points and src/server/ reach back into src/herald.ts, which puts the parts
 * together (were any part to import it, that part and the root would depend on each other).
 *
 * Type-only imports count: `import type` erases at run time, but it still ties one module to
 * another's shape, and a cycle of types is a cycle a reader has to hold in mind all the same.
 *
 * Specifiers are read with regular expressions, not a parser (TypeScript 7 has no stable
 * JavaScript API yet): static imports and re-exports start a line (Biome formats them so), their
 * specifier is the first quoted string after `from`; dynamic `import('…')` may be anywhere. A comment that
 * quotes an import statement at the start of a line would count; none does, and an extra edge
 * errs on the strict side.
 */

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SRC = join(ROOT, 'src') + sep;
const CORE = join(SRC, 'core') + sep;
const SERVER = join(SRC, 'server') + sep;
const HERALD = join(SRC, 'herald.ts');

/** Static imports and re-exports, type-only or not, on one line or several: `from '…'` ends them. */
const STATIC = /^(?:import|export)\b[^;'"`]*?\bfrom\s*['"]([^'"]+)['"]/gm;
/** `import '…'`, for its side effects. */
const BARE = /^import\s*['"]([^'"]+)['"]/gm;
/** `import('…')` and `typeof import('…')`, across lines. */
const DYNAMIC = /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g;

/** The specifiers a module's text imports from, in the order found. */
function importsOf(source: string): string[] {
  const found: string[] = [];
  for (const pattern of [STATIC, BARE, DYNAMIC]) {
    for (const match of source.matchAll(pattern)) found.push(match[1] as string);
  }
  return found;
}

/**
 * The file a relative specifier names, or undefined for a package, a builtin, or a file that does
 * not exist (the type check reports that one).
 */
function resolveSpecifier(from: string, specifier: string): string | undefined {
  if (!specifier.startsWith('./') && !specifier.startsWith('../')) return undefined;
  const base = resolve(dirname(from), specifier);
  const candidates = [base, base.replace(/\.js$/, '.ts'), `${base}.ts`, join(base, 'index.ts')];
  return candidates.find((candidate) => candidate.endsWith('.ts') && existsSync(candidate));
}

function sourceFiles(directory: string): string[] {
  return readdirSync(directory, { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile() && entry.name.endsWith('.ts'))
    .map((entry) => join(entry.parentPath, entry.name))
    .sort();
}

/** Every module under src/ and the modules under src/ it imports. */
function importGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of sourceFiles(SRC)) {
    const targets = importsOf(readFileSync(file, 'utf8'))
      .map((specifier) => resolveSpecifier(file, specifier))
      .filter((target): target is string => target !== undefined);
    graph.set(file, [...new Set(targets)]);
  }
  return graph;
}

/**
 * Each cycle of the graph, as the files along it (the first repeated at the end): one per
 * strongly connected component of more than one module, or of one that imports itself.
 */
function findCycles(graph: ReadonlyMap<string, readonly string[]>): string[][] {
  return tangles(graph).map((component) => cycleWithin(graph, new Set(component)));
}

/** The modules that reach each other through imports, group by group (Tarjan's algorithm). */
function tangles(graph: ReadonlyMap<string, readonly string[]>): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const components: string[][] = [];
  let next = 0;
  const connect = (node: string): void => {
    index.set(node, next);
    low.set(node, next);
    next++;
    stack.push(node);
    onStack.add(node);
    for (const target of graph.get(node) ?? []) {
      if (!index.has(target)) {
        connect(target);
        low.set(node, Math.min(low.get(node) as number, low.get(target) as number));
      } else if (onStack.has(target)) {
        low.set(node, Math.min(low.get(node) as number, index.get(target) as number));
      }
    }
    if (low.get(node) !== index.get(node)) return;
    const component: string[] = [];
    let member: string;
    do {
      member = stack.pop() as string;
      onStack.delete(member);
      component.push(member);
    } while (member !== node);
    const selfImport = component.length === 1 && (graph.get(node) ?? []).includes(node);
    if (component.length > 1 || selfImport) components.push(component);
  };
  for (const node of graph.keys()) if (!index.has(node)) connect(node);
  return components;
}

/** One path that leaves the component's first module (in sorted order) and comes back to it. */
function cycleWithin(
  graph: ReadonlyMap<string, readonly string[]>,
  component: ReadonlySet<string>,
): string[] {
  const start = [...component].sort()[0] as string;
  const cameFrom = new Map<string, string>();
  const queue = [start];
  while (queue.length > 0) {
    const node = queue.shift() as string;
    for (const target of graph.get(node) ?? []) {
      if (!component.has(target)) continue;
      if (target === start) {
        const path = [start];
        for (let at = node; at !== start; at = cameFrom.get(at) as string) path.splice(1, 0, at);
        return [...path, start];
      }
      if (!cameFrom.has(target)) {
        cameFrom.set(target, node);
        queue.push(target);
      }
    }
  }
  return [start, start];
}

const shown = (file: string) => relative(SRC, file).split(sep).join('/');

describe('the import graph of src/', () => {
  test('reads every kind of import', () => {
    const source = [
      "import { a } from './a.ts';",
      "import type { B } from '../b.ts';",
      'import {',
      '  c,',
      '  type D,',
      "} from './c.ts';",
      "export { e } from './e.ts';",
      "export type * from './f.ts';",
      "import './g.ts';",
      "const h = await import('./h.ts');",
      'const i = await import(',
      "  './i.ts'",
      ');',
      "type J = typeof import('j');",
      ' * not an import: `import k from` in prose, nor from "./k.ts" inside a comment',
      "const l = Array.from('./l.ts');",
    ].join('\n');
    assert.deepEqual(importsOf(source).sort(), [
      '../b.ts',
      './a.ts',
      './c.ts',
      './e.ts',
      './f.ts',
      './g.ts',
      './h.ts',
      './i.ts',
      'j',
    ]);
  });

  test('the cycle finder finds a cycle, and only cycles', () => {
    const graph = new Map([
      ['a', ['b']],
      ['b', ['c']],
      ['c', ['a', 'd']],
      ['d', []],
      ['e', ['a', 'e']],
    ]);
    assert.deepEqual(
      findCycles(graph).sort((x, y) => x.length - y.length),
      [
        ['e', 'e'],
        ['a', 'b', 'c', 'a'],
      ],
    );
    assert.deepEqual(
      findCycles(
        new Map([
          ['a', ['b', 'c']],
          ['b', ['c']],
          ['c', []],
        ]),
      ),
      [],
    );
  });

  test('has no import cycle', () => {
    const graph = importGraph();
    // One cycle of each tangle, and every module of the tangle: all of them take part in some cycle.
    const found = tangles(graph).map((component) => {
      const cycle = cycleWithin(graph, new Set(component)).map(shown).join(' -> ');
      return `${cycle}  (tangled: ${component.map(shown).sort().join(', ')})`;
    });
    assert.deepEqual(found, [], 'modules that import each other, directly or around a cycle');
  });

  test('src/core/ imports nothing outside src/core/', () => {
    const outside: string[] = [];
    for (const [file, targets] of importGraph()) {
      if (!file.startsWith(CORE)) continue;
      for (const target of targets) {
        if (!target.startsWith(CORE)) outside.push(`${shown(file)} -> ${shown(target)}`);
      }
    }
    assert.deepEqual(outside, [], 'imports from the core to the rest of Herald');
  });

  test('only the package entry points and src/server/ import herald.ts, the composition root', () => {
    const exports = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).exports as Record<
      string,
      { default?: string } | string
    >;
    const entryPoints = new Set(
      Object.values(exports)
        .map((target) => (typeof target === 'string' ? target : target.default))
        .filter((target): target is string => target?.startsWith('./dist/') === true)
        .map((target) => join(SRC, target.slice('./dist/'.length).replace(/\.js$/, '.ts'))),
    );
    assert.ok(entryPoints.has(join(SRC, 'index.ts')), 'package.json exports name src/index.ts');
    const importers: string[] = [];
    for (const [file, targets] of importGraph()) {
      if (targets.includes(HERALD) && !entryPoints.has(file) && !file.startsWith(SERVER)) {
        importers.push(shown(file));
      }
    }
    assert.deepEqual(importers, [], 'modules that reach back into the composition root');
  });
});
