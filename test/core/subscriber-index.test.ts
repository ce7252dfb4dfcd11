import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { SubscriberIndex, type TenantIndex } from '../../src/core/subscriber-index.ts';
import { parseSelector } from '../../src/core/topics.ts';

interface Sub {
  name: string;
  tenant: string;
  selectors: ReturnType<typeof parseSelector>[];
}
const sub = (name: string, tenant: string, ...selectors: string[]): Sub => ({
  name,
  tenant,
  selectors: selectors.map(parseSelector),
});

/** Who the index would deliver a topic to, as the hub walks it. */
function recipients(bucket: TenantIndex<Sub> | undefined, topic: string): string[] {
  if (bucket === undefined) return [];
  const found = new Set<string>();
  const exact = bucket.exact.get(topic);
  for (const s of exact instanceof Set ? exact : exact === undefined ? [] : [exact]) found.add(s.name);
  for (const entry of bucket.templatesFor(topic)) for (const s of entry.subscribers) found.add(s.name);
  for (const s of bucket.all) found.add(s.name);
  return [...found].sort();
}

describe('subscriber index', () => {
  test('templates found by their literal start match exactly what testing every template matches', () => {
    const templates = [
      '{a}',
      '{a}/x',
      'd/{id}',
      'd/{id}/s',
      'd/x{id}',
      'd/x{id}/s',
      'd{/id}',
      'd/{+rest}',
      'd/e/{id}',
      'u/{u}/inbox',
      '{a}/{b}/{c}',
      'd/e{?q}',
    ];
    const topics = [
      'd',
      'x',
      'd/1',
      'd/x1',
      'd/x1/s',
      'd/1/s',
      'd/e/1',
      'd/e/1/2',
      'u/7/inbox',
      'a/b/c',
      'd/e?q=1',
    ];
    const index = new SubscriberIndex<Sub>();
    templates.forEach((template, i) => {
      index.add(sub(`s${i}`, 't', template));
    });
    const bucket = index.get('t');
    for (const topic of topics) {
      const expected = templates
        .map((template, i) => [template, `s${i}`] as const)
        .filter(([template]) => {
          const selector = parseSelector(template);
          return selector.kind === 'template' && selector.matcher.test(topic);
        })
        .map(([, name]) => name)
        .sort();
      assert.deepEqual(recipients(bucket, topic), expected, topic);
    }
  });

  test('a new topic is tested against the templates that share its start, not every template', () => {
    const index = new SubscriberIndex<Sub>();
    for (let i = 0; i < 5000; i++) index.add(sub(`s${i}`, 't', `bench/t/${i}/{leaf}`));
    const bucket = index.get('t');
    const start = performance.now();
    for (let i = 0; i < 5000; i++) assert.equal(bucket?.templatesFor(`bench/t/${i}/e`).length, 1);
    // Testing all 5 000 templates for each of the 5 000 topics took seconds; by start it is milliseconds.
    assert.ok(performance.now() - start < 1000, `${performance.now() - start} ms`);
  });

  test('finds subscribers by exact topic, template and *, within their tenant only', () => {
    const index = new SubscriberIndex<Sub>();
    index.add(sub('exact', 't1', 'dealers/S1/scores'));
    index.add(sub('template', 't1', 'dealers/{id}/scores'));
    index.add(sub('all', 't1', '*'));
    index.add(sub('other-tenant', 't2', '*'));
    assert.deepEqual(recipients(index.get('t1'), 'dealers/S1/scores'), ['all', 'exact', 'template']);
    assert.deepEqual(recipients(index.get('t1'), 'dealers/S2/scores'), ['all', 'template']);
    assert.deepEqual(recipients(index.get('t1'), 'dealers/S2/msrp'), ['all']);
    assert.deepEqual(recipients(index.get('t2'), 'dealers/S1/scores'), ['other-tenant']);
    assert.equal(index.get('t3'), undefined);
  });

  test('a template added after a topic was looked up still matches it', () => {
    const index = new SubscriberIndex<Sub>();
    index.add(sub('first', '', 'rooms/{id}'));
    assert.deepEqual(recipients(index.get(''), 'rooms/1'), ['first']);
    index.add(sub('second', '', 'rooms/{room}'));
    assert.deepEqual(recipients(index.get(''), 'rooms/1'), ['first', 'second']);
  });

  test('removing subscribers empties their slots, and the tenant once it has none', () => {
    const index = new SubscriberIndex<Sub>();
    const a = sub('a', '', 'x', 'rooms/{id}');
    const b = sub('b', '', 'rooms/{id}');
    index.add(a);
    index.add(b);
    index.remove(a);
    assert.deepEqual(recipients(index.get(''), 'rooms/1'), ['b']);
    assert.deepEqual(recipients(index.get(''), 'x'), []);
    index.remove(b);
    assert.equal(index.get(''), undefined);
  });

  test('template entries left empty are swept without losing live ones', () => {
    const index = new SubscriberIndex<Sub>();
    const keeper = sub('keeper', '', 'keep/{id}');
    index.add(keeper);
    for (let i = 0; i < 200; i++) {
      const transient = sub(`t${i}`, '', `room${i}/{id}`);
      index.add(transient);
      assert.deepEqual(recipients(index.get(''), `room${i}/x`), [`t${i}`]);
      index.remove(transient);
    }
    const bucket = index.get('');
    assert.ok(bucket !== undefined);
    assert.ok(bucket.templates.size < 100, `swept: ${bucket.templates.size} entries left`);
    assert.deepEqual(recipients(bucket, 'keep/1'), ['keeper']);
  });

  test('counts connections by tenant and by selector', () => {
    const index = new SubscriberIndex<Sub>();
    index.add(sub('a', 't1', 'x', '*'));
    index.add(sub('b', 't1', 'x'));
    index.add(sub('c', 't2', 'rooms/{id}'));
    assert.deepEqual(index.counts(), {
      byTenant: { t1: 2, t2: 1 },
      byTopic: { x: 2, '*': 1, 'rooms/{id}': 1 },
    });
  });
});
