import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { RecentIds } from '../../src/client/dedup.ts';

describe('de-duplication by id', () => {
  test('an id is new once, then a duplicate', () => {
    const recent = new RecentIds(8);
    assert.equal(recent.add('a-1'), true);
    assert.equal(recent.add('a-2'), true);
    assert.equal(recent.add('a-1'), false);
    assert.equal(recent.add('a-2'), false);
  });

  test('ids are opaque: never compared, so any order and any format work', () => {
    const recent = new RecentIds(8);
    for (const id of ['z', '10', '9', 'mwt-3', '1700000000000-0', '42']) assert.equal(recent.add(id), true);
    assert.equal(recent.add('9'), false);
  });

  test('a ring of bounded size: the oldest id is forgotten, the recent ones are kept', () => {
    const recent = new RecentIds(4);
    for (const id of ['1', '2', '3', '4', '5']) recent.add(id);
    assert.equal(recent.add('2'), false, 'still remembered');
    assert.equal(recent.add('1'), true, 'forgotten: the ring holds 4');
  });

  test('an overlap of two streams delivers each id once, in order', () => {
    const recent = new RecentIds();
    const old = ['e-5', 'e-6', 'e-7', 'e-8'];
    const renewed = ['e-6', 'e-7', 'e-8', 'e-9', 'e-10'];
    const delivered: string[] = [];
    // Interleaved as two sockets would deliver them.
    for (const id of [
      old[0],
      old[1],
      renewed[0],
      old[2],
      renewed[1],
      renewed[2],
      old[3],
      renewed[3],
      renewed[4],
    ]) {
      if (id !== undefined && recent.add(id)) delivered.push(id);
    }
    assert.deepEqual(delivered, ['e-5', 'e-6', 'e-7', 'e-8', 'e-9', 'e-10']);
  });
});
