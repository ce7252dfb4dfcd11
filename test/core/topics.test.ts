import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { HeraldError } from '../../src/core/errors.ts';
import { EventFilter } from '../../src/core/filters.ts';
import {
  anyMatch,
  anyMatchWithin,
  checkTemplateCount,
  MAX_TEMPLATES_PER_STREAM,
  MatchBudget,
  parseSelector,
  parseSelectors,
  selectorMatches,
  templateMatching,
} from '../../src/core/topics.ts';

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

  test('a subscription holds at most 32 URI templates; exact topics and * do not count', () => {
    assert.equal(MAX_TEMPLATES_PER_STREAM, 32);
    const templates = (n: number, tag: string) => Array.from({ length: n }, (_, i) => `${tag}/${i}/{x}`);
    const exact = Array.from({ length: 60 }, (_, i) => `exact/${i}`);
    assert.equal(parseSelectors([...templates(32, 'a'), ...exact, '*'], 100).length, 93);
    assert.throws(
      () => parseSelectors(templates(33, 'b'), 100),
      (error: unknown) => {
        assert.ok(error instanceof HeraldError);
        assert.equal(error.status, 400);
        assert.equal(error.code, 'too-many-templates');
        assert.match(error.detail, /^33 URI templates in one subscription; the limit is 32 /);
        assert.deepEqual(error.toProblem().limit, 32);
        assert.deepEqual(error.toProblem().parameter, 'topic');
        return true;
      },
    );
    // What a stream would hold after adding to it is checked the same way.
    const held = templates(30, 'c').map(parseSelector);
    checkTemplateCount([...held, ...templates(2, 'd').map(parseSelector)]);
    assert.throws(
      () => checkTemplateCount([...held, ...templates(3, 'e').map(parseSelector)]),
      /33 URI templates/,
    );
  });

  test('the matcher runs are counted, and a memo hit or a literal mismatch runs nothing', () => {
    const selector = parseSelector('counted/{id}/x');
    const runs = templateMatching.runs;
    const work = templateMatching.work;
    assert.equal(selectorMatches(selector, 'counted/1/x'), true);
    assert.equal(templateMatching.runs, runs + 1);
    assert.ok(templateMatching.work > work);
    assert.equal(selectorMatches(selector, 'counted/1/x'), true);
    assert.equal(selectorMatches(selector, 'other/1/x'), false);
    assert.equal(selectorMatches(selector, 'counted/x'), false);
    assert.equal(templateMatching.runs, runs + 1);
  });

  test('anyMatch: any selector against any topic, canonical or alternate', () => {
    const selectors = [parseSelector('a'), parseSelector('b/{x}')];
    assert.equal(anyMatch(selectors, ['z', 'b/1']), true);
    assert.equal(anyMatch(selectors, ['z', 'b/1/2']), false);
  });
});

describe('anyMatch within a budget', () => {
  test('answers as anyMatch does when the budget lasts', () => {
    const selectors = ['a', 'b/{x}', 'c/{x}/d'].map(parseSelector);
    const budget = new MatchBudget(Number.POSITIVE_INFINITY);
    for (const topics of [['z', 'b/1'], ['z', 'b/1/2'], ['c/1/d'], [], ['a']]) {
      assert.equal(anyMatchWithin(selectors, topics, budget), anyMatch(selectors, topics), topics.join());
    }
    assert.equal(anyMatchWithin([parseSelector('*')], ['anything'], budget), true);
  });

  test('stops when its time is up and goes on from where it stopped', () => {
    // A clock that moves 1 ms each time it is read, read once per 20 000 units of work: every
    // few matches of these long topics.
    let now = 0;
    const clock = () => now++;
    const selectors = Array.from({ length: 32 }, (_, i) => parseSelector(`{?a:${i + 1},b,c,d}{x}`));
    const topics = Array.from({ length: 32 }, (_, i) => `?a=1&b=${'x'.repeat(900)}${i}!`);
    const runs = templateMatching.runs;
    let turns = 0;
    let answer: boolean | number = 0;
    do {
      answer = anyMatchWithin(selectors, topics, new MatchBudget(2, clock), answer as number);
      turns++;
    } while (typeof answer === 'number');
    assert.equal(answer, false);
    assert.ok(turns > 2, `${turns} turns`);
    // Each pair once, over all the turns.
    assert.equal(templateMatching.runs - runs, 32 * 32);
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
