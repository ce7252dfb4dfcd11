import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { PROBLEMS } from '../../src/core/protocol/problems.ts';
import { section } from './snippet-app.ts';

/**
 * docs/http-api.md lists every problem `code` the hub gives, with its status and when. The hub's
 * list is `PROBLEMS` (src/core/protocol/problems.ts): `HeraldError` takes no code that is not in
 * it, nor a status it does not pair with the code. So a new code, one that changes status, or a
 * row deleted from either side fails here until the table and the list say the same.
 */

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** `status code: when` of each row of the table under "### Problem codes". */
function rowsInDocs(): string[] {
  const page = section(readFileSync(join(ROOT, 'docs/http-api.md'), 'utf8'), 'Errors');
  const table = page.slice(page.indexOf('### Problem codes'));
  return [...table.matchAll(/^\|\s*(\d{3})\s*\|\s*`([a-z0-9-]+)`\s*\|\s*(.*?)\s*\|\s*$/gm)].map(
    (match) => `${match[1]} ${match[2]}: ${match[3]}`,
  );
}

const rowsInSource = () => PROBLEMS.map(({ status, code, when }) => `${status} ${code}: ${when}`);

describe('problem codes: docs/http-api.md and src/core/protocol/problems.ts', () => {
  test('the table lists every code of PROBLEMS, with its status and when, and no other', () => {
    const code = rowsInSource();
    const docs = rowsInDocs();
    assert.ok(code.length > 50, `problems listed: ${code.join(', ')}`);
    assert.deepEqual(
      code.filter((row) => !docs.includes(row)),
      [],
      'codes of PROBLEMS missing from the table in docs/http-api.md (or documented otherwise)',
    );
    assert.deepEqual(
      docs.filter((row) => !code.includes(row)),
      [],
      'codes of docs/http-api.md that PROBLEMS does not list (or lists otherwise)',
    );
    assert.equal(docs.length, code.length, 'no row twice');
  });

  test('every code of PROBLEMS is still given somewhere in src/', () => {
    const source = readdirSync(join(ROOT, 'src'), { recursive: true, withFileTypes: true })
      .filter((entry) => entry.isFile() && entry.name.endsWith('.ts') && entry.name !== 'problems.ts')
      .map((entry) => readFileSync(join(entry.parentPath, entry.name), 'utf8'))
      .join('\n');
    // The poll's parameters are refused as `invalid-${name}` (src/http/routes/events.ts).
    const built = new Set(['invalid-wait', 'invalid-limit']);
    const unused = PROBLEMS.filter(({ code }) => !built.has(code) && !source.includes(`'${code}'`));
    assert.deepEqual(
      unused.map(({ code }) => code),
      [],
    );
  });

  test('a code has one row per status it is given with', () => {
    const pairs = PROBLEMS.map(({ status, code }) => `${status} ${code}`);
    assert.equal(new Set(pairs).size, pairs.length);
  });
});
