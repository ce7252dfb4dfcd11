import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { comparePositions, heldPosition, parseHeld } from '../../src/backends/failover/positions.ts';
import { comparePositions as redisOrder } from '../../src/backends/redis/positions.ts';
import { HeraldError } from '../../src/core/errors.ts';
import { validateEvent } from '../../src/core/event.ts';

const order = (a: string, b: string) => Math.sign(comparePositions(a, b, redisOrder));

describe('held positions (--on-broker-down local)', () => {
  test('are parsed back, and nothing else is taken for one', () => {
    assert.deepEqual(parseHeld(heldPosition('1700-3', 'AbC_-9xy', 12)), {
      base: '1700-3',
      node: 'AbC_-9xy',
      seq: 12,
    });
    assert.deepEqual(parseHeld(heldPosition('', 'n1', 1)), { base: '', node: 'n1', seq: 1 });
    assert.deepEqual(parseHeld('42~n1~7'), { base: '42', node: 'n1', seq: 7 }, 'a NATS base');
    for (const other of ['1700-3', '42', 'urn:x', 'a~b', 'x~n1~1', '1-1~n 1~1', '1-1~n1~', '~~1']) {
      assert.equal(parseHeld(other), undefined, other);
    }
  });

  test("sort right after their base, before the broker's next position, in sequence", () => {
    const base = '1700-3';
    const first = heldPosition(base, 'node', 1);
    const second = heldPosition(base, 'node', 2);
    assert.equal(order(base, first), -1);
    assert.equal(order(first, second), -1);
    assert.equal(order(second, '1700-4'), -1);
    assert.equal(order('1699-9', first), -1);
    assert.equal(order(first, first), 0);
    // A later outage starts at or past the earlier one's base, and the sequence goes on.
    assert.equal(order(second, heldPosition(base, 'node', 3)), -1);
    assert.equal(order(second, heldPosition('1800-0', 'node', 3)), -1);
    // Never reached the broker: before every broker position.
    assert.equal(order(heldPosition('', 'node', 9), '0-1'), -1);
    // Broker positions keep the broker's order.
    assert.equal(order('1700-3', '1700-10'), -1);
  });

  test('no publisher may choose one as its id (400 invalid-id)', () => {
    for (const id of ['1700-3~node~1', '42~n~1', '~node~1']) {
      assert.throws(
        () => validateEvent({ topic: 't', data: 1, id }, '', { maxDataBytes: 1024 }, 0),
        (error: unknown) =>
          error instanceof HeraldError &&
          error.code === 'invalid-id' &&
          /held through a broker outage/.test(error.detail),
      );
    }
    assert.equal(
      validateEvent({ topic: 't', data: 1, id: 'order~42' }, '', { maxDataBytes: 1024 }, 0).id,
      'order~42',
    );
  });
});
