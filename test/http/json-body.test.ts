import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { HeraldError } from '../../src/core/errors.ts';
import { checkJsonShape, MAX_JSON_DEPTH, MAX_JSON_ITEMS, parseJsonBody } from '../../src/http/json-body.ts';

const bytes = (text: string) => new TextEncoder().encode(text);
const nested = (levels: number) => '['.repeat(levels) + ']'.repeat(levels);

function refused(text: string | Uint8Array, code: string, detail: RegExp, limits = {}): void {
  assert.throws(
    () => parseJsonBody(typeof text === 'string' ? bytes(text) : text, limits),
    (error: unknown) => {
      assert.ok(error instanceof HeraldError);
      assert.equal(error.status, 400);
      assert.equal(error.code, code);
      assert.match(error.detail, detail);
      return true;
    },
  );
}

describe('JSON request bodies', () => {
  test('parses JSON as JSON.parse does', () => {
    assert.deepEqual(parseJsonBody(bytes('{"topic":"a","data":[1,{"b":null}]}')), {
      topic: 'a',
      data: [1, { b: null }],
    });
    assert.equal(parseJsonBody(bytes('"é😀"')), 'é😀');
    assert.equal(parseJsonBody(bytes(' 42 ')), 42);
  });

  test('64 levels deep is allowed, 65 is refused naming the limit', () => {
    assert.equal(MAX_JSON_DEPTH, 64);
    assert.ok(Array.isArray(parseJsonBody(bytes(nested(64)))));
    refused(nested(65), 'json-too-deep', /more than 64 levels deep \(at byte 64\); the limit is 64$/);
    refused(`${'{"a":'.repeat(65)}1${'}'.repeat(65)}`, 'json-too-deep', /the limit is 64/);
    // Depth counts what is open at once, not how many were opened.
    assert.equal((parseJsonBody(bytes(`[${Array(1000).fill('[[]]').join(',')}]`)) as unknown[]).length, 1000);
  });

  test('a deep body is refused before anything is parsed, in one pass', () => {
    const deep = bytes(nested(2_000_000));
    const started = performance.now();
    refused(deep, 'json-too-deep', /the limit is 64/);
    // Generous: it stops at byte 64; JSON.parse took over a second on this body.
    assert.ok(performance.now() - started < 500);
  });

  test('brackets, quotes and separators inside strings are text', () => {
    const text = JSON.stringify({ a: `${'['.repeat(100)}"\\${'{'.repeat(100)}:,` });
    assert.deepEqual(parseJsonBody(bytes(text)), JSON.parse(text));
    checkJsonShape(bytes(JSON.stringify('[[[[\\"]]]]'.repeat(100))), { maxDepth: 1, maxItems: 1 });
    // An escaped backslash ends its escape: the quote after it closes the string.
    assert.throws(
      () => checkJsonShape(bytes('["\\\\", [[]]]'), { maxDepth: 2 }),
      /json-too-deep|levels deep/,
    );
    // \u005B is a bracket only once parsed.
    checkJsonShape(bytes('"\\u005B\\u005B\\u005B"'), { maxDepth: 0 });
  });

  test('multi-byte characters are never read as structure', () => {
    // Every byte of é, 😀 and 中 is 0x80 or above.
    const text = JSON.stringify({ 'é😀中': ['é😀中'.repeat(1000)] });
    assert.deepEqual(parseJsonBody(bytes(text)), JSON.parse(text));
    checkJsonShape(bytes('é😀中'.repeat(1000)), { maxDepth: 0, maxItems: 0 });
  });

  test('more than 200 000 items is refused naming the limit; an object member counts 6', () => {
    assert.equal(MAX_JSON_ITEMS, 200_000);
    assert.equal(
      (parseJsonBody(bytes(`[${Array(199_999).fill('0').join(',')}]`)) as unknown[]).length,
      199_999,
    );
    refused(`[${Array(200_001).fill('0').join(',')}]`, 'json-too-many-items', /the limit is 200000/);
    // 40 000 members weigh 240 000.
    const members = `{${Array.from({ length: 40_000 }, (_, i) => `"k${i}":0`).join(',')}}`;
    refused(members, 'json-too-many-items', /an object member counts? 6|member 6/);
    // A batch of 1 000 events of 20 fields fits.
    const batch = JSON.stringify(
      Array.from({ length: 1000 }, (_, i) => ({
        topic: `orders/${i}`,
        data: Object.fromEntries(Array.from({ length: 20 }, (_, k) => [`field${k}`, k])),
      })),
    );
    assert.equal((parseJsonBody(bytes(batch)) as unknown[]).length, 1000);
    assert.equal(
      (
        parseJsonBody(bytes(`[${Array(300_000).fill('0').join(',')}]`), {
          maxItems: Number.POSITIVE_INFINITY,
        }) as unknown[]
      ).length,
      300_000,
    );
  });

  test('malformed JSON and malformed UTF-8 say so', () => {
    refused('{"a":', 'malformed-json', /^the body is not valid JSON: /);
    refused('', 'malformed-json', /^the body is not valid JSON: /);
    refused('"unclosed', 'malformed-json', /^the body is not valid JSON: /);
    refused(new Uint8Array([0x22, 0xc3, 0x28, 0x22]), 'malformed-json', /it is not valid UTF-8$/);
  });
});
