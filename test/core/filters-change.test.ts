import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { HeraldError } from '../../src/core/errors.ts';
import { changeFilter, EventFilter } from '../../src/core/filters.ts';

const tags = (entries: Record<string, string[]>) => new Map(Object.entries(entries));

/** What a filter lets through, in the shape the reply of `POST /v1/subscriptions` gives it. */
const shape = (filter: EventFilter | undefined) => ({
  types: filter?.types ?? 'every',
  tags: Object.fromEntries(filter?.tags ?? []),
});

const refuses = (run: () => unknown, code: string, detail: RegExp) =>
  assert.throws(run, (error: unknown) => {
    assert.ok(error instanceof HeraldError);
    assert.equal(error.status, 400);
    assert.equal(error.code, code);
    assert.match(error.detail, detail);
    return true;
  });

const typed = EventFilter.of(['a'], tags({ d: ['S1'] }));

describe('changing a filter (POST /v1/subscriptions)', () => {
  test('the filter shows its types and tags; every type is undefined', () => {
    assert.deepEqual(shape(typed), { types: ['a'], tags: { d: ['S1'] } });
    assert.deepEqual(EventFilter.of([], tags({ d: ['S1'] }))?.types, undefined);
    assert.deepEqual([...(EventFilter.of(['a'], new Map())?.tags ?? [])], []);
  });

  test('nothing given changes nothing, and gives back the same filter', () => {
    assert.equal(changeFilter(typed, 'subscribe'), typed);
    assert.equal(changeFilter(typed, 'set'), typed);
    assert.equal(changeFilter(undefined, 'unsubscribe'), undefined);
  });

  describe('types', () => {
    test('subscribe adds to the types, once each', () => {
      assert.deepEqual(shape(changeFilter(typed, 'subscribe', ['b', 'a', 'b'])), {
        types: ['a', 'b'],
        tags: { d: ['S1'] },
      });
    });

    test('subscribe on a stream of every type leaves it one', () => {
      assert.equal(changeFilter(undefined, 'subscribe', ['b']), undefined);
      assert.deepEqual(shape(changeFilter(EventFilter.of([], tags({ d: ['S1'] })), 'subscribe', ['b'])), {
        types: 'every',
        tags: { d: ['S1'] },
      });
    });

    test('unsubscribe removes types; types it does not have are ignored', () => {
      const ab = EventFilter.of(['a', 'b'], new Map());
      assert.deepEqual(shape(changeFilter(ab, 'unsubscribe', ['a', 'z'])), { types: ['b'], tags: {} });
    });

    test('unsubscribe is refused on a stream of every type', () => {
      refuses(
        () => changeFilter(undefined, 'unsubscribe', ['a']),
        'invalid-type',
        /every type; use action "set"/,
      );
      refuses(
        () => changeFilter(EventFilter.of([], tags({ d: ['S1'] })), 'unsubscribe', ['a']),
        'invalid-type',
        /every type/,
      );
    });

    test('unsubscribe is refused when it would remove the last type', () => {
      refuses(() => changeFilter(typed, 'unsubscribe', ['a']), 'invalid-type', /last type \(a\)/);
      refuses(
        () => changeFilter(EventFilter.of(['a', 'b'], new Map()), 'unsubscribe', ['a', 'b']),
        'invalid-type',
        /last type/,
      );
    });

    test('subscribe or unsubscribe with no types is refused', () => {
      refuses(() => changeFilter(typed, 'subscribe', []), 'invalid-type', /types is empty/);
      refuses(() => changeFilter(typed, 'unsubscribe', []), 'invalid-type', /types is empty/);
    });

    test('set replaces the types; [] means every type', () => {
      assert.deepEqual(shape(changeFilter(typed, 'set', ['b', 'c', 'b'])), {
        types: ['b', 'c'],
        tags: { d: ['S1'] },
      });
      assert.deepEqual(shape(changeFilter(undefined, 'set', ['b'])), { types: ['b'], tags: {} });
      assert.deepEqual(shape(changeFilter(typed, 'set', [])), { types: 'every', tags: { d: ['S1'] } });
      assert.equal(changeFilter(EventFilter.of(['a'], new Map()), 'set', []), undefined);
    });
  });

  describe('tags', () => {
    test('subscribe adds values to a constrained tag, once each', () => {
      assert.deepEqual(shape(changeFilter(typed, 'subscribe', undefined, tags({ d: ['S2', 'S1'] }))), {
        types: ['a'],
        tags: { d: ['S1', 'S2'] },
      });
    });

    test('subscribe leaves an unconstrained tag unconstrained', () => {
      assert.deepEqual(shape(changeFilter(typed, 'subscribe', undefined, tags({ v: ['1ABC'] }))), {
        types: ['a'],
        tags: { d: ['S1'] },
      });
      assert.equal(changeFilter(undefined, 'subscribe', undefined, tags({ d: ['S1'] })), undefined);
    });

    test('unsubscribe removes values of a tag; values it does not have are ignored', () => {
      const two = EventFilter.of([], tags({ d: ['S1', 'S2'], v: ['x'] }));
      assert.deepEqual(shape(changeFilter(two, 'unsubscribe', undefined, tags({ d: ['S1', 'S9'] }))), {
        types: 'every',
        tags: { d: ['S2'], v: ['x'] },
      });
    });

    test('unsubscribe is refused on a tag the stream does not filter on', () => {
      refuses(
        () => changeFilter(typed, 'unsubscribe', undefined, tags({ v: ['x'] })),
        'invalid-tag',
        /every value of tag "v"/,
      );
      refuses(
        () => changeFilter(undefined, 'unsubscribe', undefined, tags({ d: ['S1'] })),
        'invalid-tag',
        /every value of tag "d"/,
      );
    });

    test('unsubscribe is refused when it would remove the last value of a tag', () => {
      refuses(
        () => changeFilter(typed, 'unsubscribe', undefined, tags({ d: ['S1'] })),
        'invalid-tag',
        /last value of tag "d" \(S1\)/,
      );
    });

    test('an empty list of values is refused, whatever the action', () => {
      for (const action of ['subscribe', 'unsubscribe', 'set'] as const) {
        refuses(
          () => changeFilter(typed, action, undefined, tags({ d: [] })),
          'invalid-tag',
          /tags\.d is empty/,
        );
      }
    });

    test('subscribe or unsubscribe with no tags is refused', () => {
      refuses(() => changeFilter(typed, 'subscribe', undefined, new Map()), 'invalid-tag', /tags is empty/);
      refuses(() => changeFilter(typed, 'unsubscribe', undefined, new Map()), 'invalid-tag', /tags is empty/);
    });

    test('set replaces the whole map; {} means no tag filter', () => {
      assert.deepEqual(shape(changeFilter(typed, 'set', undefined, tags({ v: ['x', 'y', 'x'] }))), {
        types: ['a'],
        tags: { v: ['x', 'y'] },
      });
      assert.deepEqual(shape(changeFilter(typed, 'set', undefined, new Map())), { types: ['a'], tags: {} });
      assert.equal(
        changeFilter(EventFilter.of([], tags({ d: ['S1'] })), 'set', undefined, new Map()),
        undefined,
      );
    });
  });

  test('types and tags change together, and a refusal of either builds nothing', () => {
    assert.deepEqual(shape(changeFilter(typed, 'set', ['b'], tags({ v: ['x'] }))), {
      types: ['b'],
      tags: { v: ['x'] },
    });
    refuses(
      () => changeFilter(typed, 'unsubscribe', ['z'], tags({ d: ['S1'] })),
      'invalid-tag',
      /last value/,
    );
    assert.deepEqual(shape(typed), { types: ['a'], tags: { d: ['S1'] } }, 'the filter itself never changes');
  });

  test('the changed filter accepts what it says', () => {
    const changed = changeFilter(typed, 'subscribe', ['b'], tags({ d: ['S2'] }));
    const event = (type: string | undefined, d?: string) => ({
      topics: ['t'],
      data: '',
      tenant: '',
      priority: 'normal' as const,
      time: 0,
      ...(type === undefined ? {} : { type }),
      ...(d === undefined ? {} : { tags: { d } }),
    });
    assert.equal(changed?.accepts(event('b', 'S2')), true);
    assert.equal(changed?.accepts(event('a', 'S1')), true);
    assert.equal(changed?.accepts(event('c', 'S1')), false);
    assert.equal(changed?.accepts(event('a', 'S3')), false);
    assert.equal(changed?.accepts(event('a')), false);
    const untyped = changeFilter(EventFilter.of(['a'], new Map()), 'subscribe', ['message']);
    assert.equal(untyped?.accepts(event(undefined)), true, 'an untyped event is a message');
  });
});
