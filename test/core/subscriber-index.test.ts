import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { SubscriberIndex } from '../../src/core/subscriber-index.ts';
import type { TenantIndex } from '../../src/core/tenant-index.ts';
import { MatchBudget, nextTurn, parseSelector, templateMatching, turnBudget } from '../../src/core/topics.ts';

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
      // Filed by their literal end, or a literal segment at a fixed place.
      '{+base}/books/{id}',
      '{+base}/s',
      '{scheme}://example.com/{id}',
      '{a}/x/{b}',
      'x{a}/y',
      '{a}.{b}',
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
      'https://example.com/books/1',
      'https://example.com/1',
      'http://example.com/7',
      'q/books/2',
      'books/3',
      'z/x/w',
      'x/x/x',
      'x1/y',
      'd/s',
      'a.b',
      '/s',
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
    // Counts the matcher runs rather than timing them: a count is the same on a busy machine.
    let runs = 0;
    for (let i = 0; i < 5000; i++) {
      const subscriber = sub(`s${i}`, 't', `bench/t/${i}/{leaf}`);
      for (const selector of subscriber.selectors) {
        if (selector.kind !== 'template') continue;
        const matcher = selector.matcher;
        const test = matcher.test.bind(matcher);
        matcher.test = (topic: string) => {
          runs++;
          return test(topic);
        };
      }
      index.add(subscriber);
    }
    const bucket = index.get('t');
    for (let i = 0; i < 5000; i++) assert.equal(bucket?.templatesFor(`bench/t/${i}/e`).length, 1);
    // Testing all 5 000 templates for each of the 5 000 topics is 25 000 000 runs (seconds); by
    // start, about one per topic.
    assert.ok(runs <= 2 * 5000, `${runs} matcher runs for 5 000 topics`);
  });

  test('for random templates and topics, the index finds what testing every template finds', () => {
    let seed = 42;
    const random = () => {
      seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648;
      return seed / 2_147_483_648;
    };
    const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
    const LITERALS = ['', '/', 'a', 'a/', '/a', 'b/', '/b/', 'a/b/', '.', '-', 'x/y/', 'https://e.com/'];
    const EXPRESSIONS = ['{x}', '{+x}', '{#x}', '{/x}', '{.x}', '{?x}', '{x,y}', '{/x,y}', '{x:2}'];
    const template = () => {
      let text = pick(LITERALS);
      for (let n = 1 + Math.floor(random() * 3); n > 0; n--) text += pick(EXPRESSIONS) + pick(LITERALS);
      return text;
    };
    const VALUES = ['', '1', 'a', 'b', 'a/b', '/', 'x.y', '?x=1', '#f', 'e.com'];
    const topic = (from: string) => from.replace(/\{[^}]*\}/g, () => pick(VALUES)).replace(/^$/, 'a') || 'a';
    const templates = [...new Set(Array.from({ length: 400 }, template))];
    const index = new SubscriberIndex<Sub>();
    templates.forEach((source, i) => {
      index.add(sub(`s${i}`, 't', source));
    });
    const bucket = index.get('t');
    const topics = [
      ...Array.from({ length: 600 }, () => topic(pick(templates))),
      ...Array.from({ length: 200 }, () => pick(VALUES) + pick(LITERALS) + pick(VALUES)),
    ].filter((t) => t !== '');
    for (const t of topics) {
      const expected = templates
        .map((source, i) => [parseSelector(source), `s${i}`] as const)
        .filter(([selector]) => selector.kind === 'template' && selector.matcher.test(t))
        .map(([, name]) => name)
        .sort();
      assert.deepEqual(recipients(bucket, t), expected, t);
    }
  });

  test('templates starting with an expression are found by a literal they end with', () => {
    const index = new SubscriberIndex<Sub>();
    for (let i = 0; i < 2000; i++) index.add(sub(`s${i}`, 't', `{+base}/shelf-${i}/{id}`));
    for (let i = 0; i < 2000; i++) index.add(sub(`u${i}`, 't', `{scheme}://host-${i}.example/{id}`));
    const bucket = index.get('t') as TenantIndex<Sub>;
    const before = bucket.tests;
    assert.deepEqual(recipients(bucket, 'https://x.org/a/shelf-7/42'), ['s7']);
    assert.deepEqual(recipients(bucket, 'https://host-9.example/1'), ['u9']);
    assert.deepEqual(recipients(bucket, 'https://x.org/nothing/here'), []);
    // One candidate each, not 4 000.
    assert.equal(bucket.tests - before, 2);
  });

  test('a template added later is tested alone against kept topics; the rest is not matched again', () => {
    const index = new SubscriberIndex<Sub>();
    for (let i = 0; i < 200; i++) index.add(sub(`s${i}`, 't', `rooms/{id}/${i}`));
    const bucket = index.get('t') as TenantIndex<Sub>;
    assert.deepEqual(recipients(bucket, 'rooms/1/7'), ['s7']);
    const tests = bucket.tests;
    const runs = templateMatching.runs;
    for (let i = 0; i < 20; i++) {
      index.add(sub(`late${i}`, 't', `rooms/{x}/${i === 0 ? 7 : `n${i}`}`));
      assert.deepEqual(recipients(bucket, 'rooms/1/7'), ['late0', 's7'], `after ${i + 1} added`);
    }
    // Each new template once (their literal ends reject most without running a matcher).
    assert.equal(bucket.tests - tests, 20);
    assert.ok(templateMatching.runs - runs <= 20);
  });

  test('a template swept away and added again is found again, and swept entries leave kept results', () => {
    const index = new SubscriberIndex<Sub>();
    const keeper = sub('keeper', '', 'keep/{id}');
    index.add(keeper);
    const first = sub('first', '', 'hall/{id}');
    index.add(first);
    assert.deepEqual(recipients(index.get(''), 'hall/1'), ['first']);
    index.remove(first);
    // Enough vacant entries to sweep.
    for (let i = 0; i < 100; i++) {
      const transient = sub(`t${i}`, '', `room${i}/{id}`);
      index.add(transient);
      index.remove(transient);
    }
    const bucket = index.get('') as TenantIndex<Sub>;
    assert.ok(bucket.templates.size < 50, `swept: ${bucket.templates.size} left`);
    assert.equal(bucket.templatesFor('hall/1').length, 0);
    index.add(sub('again', '', 'hall/{id}'));
    assert.deepEqual(recipients(bucket, 'hall/1'), ['again']);
    assert.deepEqual(recipients(bucket, 'keep/1'), ['keeper']);
  });

  test('prepare stops when its time is up, keeps its work, and finishes where it stopped', () => {
    const index = new SubscriberIndex<Sub>();
    // 300 templates without a literal to file them under: every one is a candidate for every topic.
    for (let i = 0; i < 300; i++) index.add(sub(`s${i}`, 't', `{a}{?x${i}}`));
    const bucket = index.get('t') as TenantIndex<Sub>;
    const topic = `${'v'.repeat(1000)}?x7=1`;
    // A clock that moves 1 ms each time it is read: each turn reads it a few times only.
    let now = 0;
    const clock = () => now++;
    let turns = 0;
    while (!index.prepare('t', [topic], new MatchBudget(3, clock))) turns++;
    assert.ok(turns >= 2, `${turns} turns`);
    // Every candidate tested once over all the turns.
    assert.equal(bucket.tests, 300);
    assert.deepEqual(recipients(bucket, topic), ['s7']);
    assert.equal(bucket.tests, 300, 'the finished lookup is kept');
  });

  test('prepareInTurns spreads a long lookup over turns of the event loop; turnBudget is shared and renewed', async () => {
    const index = new SubscriberIndex<Sub>();
    assert.equal(index.prepareInTurns('nobody', ['x']), undefined, 'nothing to match: ready at once');
    for (let i = 0; i < 32; i++)
      index.add(
        sub(
          `s${i}`,
          't',
          `{?${'abcdefghijklmno'
            .split('')
            .map((c) => `${c}:99`)
            .join(',')}}{x${i}}`,
        ),
      );
    const topics = Array.from({ length: 32 }, (_, i) => `?${'==a'.repeat(400)}`.slice(0, 1000) + i);
    const matching = index.prepareInTurns('t', topics);
    assert.ok(matching instanceof Promise, 'over 10 ms of matching: not done in this turn');
    // What the event loop has to do meanwhile gets its turn before the matching is done.
    let other = false;
    setImmediate(() => {
      other = true;
    });
    await matching;
    assert.equal(other, true);
    assert.equal(index.prepare('t', topics, new MatchBudget(0)), true, 'all kept');
    assert.equal(turnBudget(), turnBudget(), 'one budget per turn');
    const spent = turnBudget();
    await nextTurn();
    assert.notEqual(turnBudget(), spent, 'renewed after a turn');
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
