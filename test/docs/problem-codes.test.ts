import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { section } from './snippet-app.ts';

/**
 * docs/http-api.md lists every problem `code` the hub gives, with its status. The codes are read
 * from src/ as they are written there (`new HeraldError(413, 'data-too-large', …)`, the 400 and 401
 * helpers, the status tuples of the server's own refusals, and `invalid-<field>` of the event's
 * optional text fields), so a new code, or one that changes status, fails here until the table says so.
 */

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

function sources(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true }).flatMap((entry) => {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory()) return sources(path);
    return entry.name.endsWith('.ts') ? [path] : [];
  });
}

/** `code status` pairs as the source writes them. */
function codesInSource(): Set<string> {
  const found = new Set<string>();
  const patterns: [RegExp, (match: RegExpMatchArray) => string][] = [
    [/HeraldError\(\s*(\d{3}),\s*'([a-z0-9-]+)'/g, (m) => `${m[2]} ${m[1]}`],
    [/\bbadRequest\(\s*'([a-z0-9-]+)'/g, (m) => `${m[1]} 400`],
    [/\bunauthorized\(\s*'([a-z0-9-]+)'/g, (m) => `${m[1]} 401`],
    [/\[\s*(\d{3}),\s*'([a-z0-9-]+)',/g, (m) => `${m[2]} ${m[1]}`],
    // optionalText(fields.key, 'key', …) refuses with `invalid-${field}`.
    [/\boptionalText\([^,]+,\s*'([a-z]+)'/g, (m) => `invalid-${m[1]} 400`],
  ];
  for (const file of sources('src')) {
    const text = readFileSync(join(ROOT, file), 'utf8');
    for (const [pattern, pair] of patterns)
      for (const match of text.matchAll(pattern)) found.add(pair(match));
  }
  return found;
}

/** `code status` pairs of the table under "### Problem codes". */
function codesInDocs(): Set<string> {
  const page = section(readFileSync(join(ROOT, 'docs/http-api.md'), 'utf8'), 'Errors');
  const table = page.slice(page.indexOf('### Problem codes'));
  const found = new Set<string>();
  for (const match of table.matchAll(/^\|\s*(\d{3})\s*\|\s*`([a-z0-9-]+)`\s*\|/gm))
    found.add(`${match[2]} ${match[1]}`);
  return found;
}

describe('problem codes: docs/http-api.md and src/', () => {
  test('the table lists every code the source gives, with its status, and no other', () => {
    const code = codesInSource();
    const docs = codesInDocs();
    assert.ok(code.size > 50, `codes found in src/: ${[...code].join(', ')}`);
    assert.deepEqual(
      [...code].filter((pair) => !docs.has(pair)).sort(),
      [],
      'codes of src/ missing from the table in docs/http-api.md',
    );
    assert.deepEqual(
      [...docs].filter((pair) => !code.has(pair)).sort(),
      [],
      'codes of docs/http-api.md that src/ no longer gives (or gives with another status)',
    );
  });
});
