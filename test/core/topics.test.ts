import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { HeraldError } from '../../src/core/errors.ts';
import { EventFilter } from '../../src/core/filters.ts';
import { anyMatch, parseSelector, parseSelectors, selectorMatches } from '../../src/core/topics.ts';

describe('topic selectors', () => {
  test('a selector without { is an exact topic, whatever else it contains', () => {
    const selector = parseSelector('https://example.com/books/1?x=*');
    assert.equal(selector.kind, 'exact');
    assert.equal(selectorMatches(selector, 'https://example.com/books/1?x=*'), true);
    assert.equal(selectorMatches(selector, 'https://example.com/books/2?x=*'), false);
  });

  test('* matches every topic', () => {
    const selector = parseSelector('*');
    assert.equal(selector.kind, 'all');
    assert.equal(selectorMatches(selector, 'anything/at/all'), true);
  });

  test('a URI template matches the topics it can expand to', () => {
    const selector = parseSelector('dealers/{dealerId}/scores');
    assert.equal(selector.kind, 'template');
    assert.equal(selectorMatches(selector, 'dealers/STORE1/scores'), true);
    assert.equal(selectorMatches(selector, 'dealers/STORE1/msrp'), false);
    assert.equal(selectorMatches(selector, 'dealers/a/b/scores'), false);
    // Asked twice: the memoized answer is the same.
    assert.equal(selectorMatches(selector, 'dealers/STORE1/scores'), true);
  });

  test('the same template is compiled once and shared', () => {
    assert.equal(parseSelector('rooms/{id}'), parseSelector('rooms/{id}'));
  });

  test('a malformed template is a 400 that says what is wrong', () => {
    assert.throws(
      () => parseSelector('dealers/{dealerId/scores'),
      (error: unknown) => error instanceof HeraldError && error.status === 400 && /\{/.test(error.detail),
    );
  });

  test('too many selectors are refused with the limit', () => {
    assert.throws(() => parseSelectors(['a', 'b', 'c'], 2), /3 topic selectors given; the limit is 2/);
  });

  test('anyMatch: any selector against any topic, canonical or alternate', () => {
    const selectors = [parseSelector('a'), parseSelector('b/{x}')];
    assert.equal(anyMatch(selectors, ['z', 'b/1']), true);
    assert.equal(anyMatch(selectors, ['z', 'b/1/2']), false);
  });
});

describe('event filters', () => {
  const event = (type: string | undefined, tags?: Record<string, string>) => ({
    topics: ['t'],
    data: '',
    tenant: '',
    priority: 'normal' as const,
    time: 0,
    type,
    tags,
  });

  test('no types and no tags means no filter at all', () => {
    assert.equal(EventFilter.of([], new Map()), undefined);
  });

  test('types are alternatives; an untyped event is a message', () => {
    const filter = EventFilter.of(['ai-score', 'message'], new Map());
    assert.equal(filter?.accepts(event('ai-score')), true);
    assert.equal(filter?.accepts(event(undefined)), true);
    assert.equal(filter?.accepts(event('msrp')), false);
  });

  test('values of one tag are alternatives; different tags must all match', () => {
    const filter = EventFilter.of(
      [],
      new Map([
        ['dealerId', ['S1', 'S2']],
        ['vin', ['1ABC']],
      ]),
    );
    assert.equal(filter?.accepts(event(undefined, { dealerId: 'S2', vin: '1ABC' })), true);
    assert.equal(filter?.accepts(event(undefined, { dealerId: 'S3', vin: '1ABC' })), false);
    assert.equal(filter?.accepts(event(undefined, { dealerId: 'S1' })), false);
    assert.equal(filter?.accepts(event(undefined)), false);
  });
});
