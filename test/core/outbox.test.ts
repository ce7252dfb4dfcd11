import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { HeraldEvent, Priority } from '../../src/core/event.ts';
import { Outbox } from '../../src/core/outbox.ts';

let seq = 0;
function event(
  options: { key?: string; priority?: Priority; size?: number; topic?: string } = {},
): HeraldEvent & { frame: Uint8Array } {
  const id = `e-${++seq}`;
  return {
    id,
    pos: id,
    topics: [options.topic ?? 't'],
    data: '',
    tenant: '',
    time: 0,
    priority: options.priority ?? 'normal',
    key: options.key,
    frame: new Uint8Array(options.size ?? 10),
  };
}

function push(outbox: Outbox, e: HeraldEvent & { frame: Uint8Array }) {
  outbox.push(e, e.frame);
}

function drained(outbox: Outbox): number[] {
  const frames: Uint8Array[] = [];
  outbox.drainInto(frames);
  return frames.map((frame) => frame.length);
}

describe('outbox', () => {
  test('emptied and filled again, whether it grew large or not, it holds only what came since', () => {
    const outbox = new Outbox();
    for (const n of [3, 1, 200, 2, 0, 1]) {
      for (let i = 0; i < n; i++) push(outbox, event({ size: i + 1, key: i === 0 ? 'k' : undefined }));
      assert.equal(outbox.count, n);
      assert.deepEqual(
        drained(outbox),
        Array.from({ length: n }, (_, i) => i + 1),
      );
      assert.equal(outbox.count, 0);
      assert.equal(outbox.bytes, 0);
    }
  });

  test('keeps order and counts events and bytes', () => {
    const outbox = new Outbox();
    push(outbox, event({ size: 1 }));
    push(outbox, event({ size: 2 }));
    assert.equal(outbox.count, 2);
    assert.equal(outbox.bytes, 3);
    assert.deepEqual(drained(outbox), [1, 2]);
    assert.equal(outbox.count, 0);
    assert.equal(outbox.bytes, 0);
  });

  test('conflation: a newer event with the same key replaces the queued one, at the newer position', () => {
    const outbox = new Outbox();
    const a1 = event({ key: 'a', size: 1 });
    const b = event({ size: 2 });
    const a2 = event({ key: 'a', size: 3 });
    push(outbox, a1);
    push(outbox, b);
    push(outbox, a2);
    assert.equal(outbox.count, 2);
    assert.equal(outbox.bytes, 5);
    const frames: Uint8Array[] = [];
    assert.equal(outbox.drainInto(frames), a2.id);
    assert.deepEqual(frames, [b.frame, a2.frame]);
  });

  test('conflation is per topic and key, the slot latest values are kept by: the same key on another topic is another value', () => {
    const outbox = new Outbox();
    const order42 = event({ key: 'po-42', topic: 'orders/42/progress', size: 1 });
    const audit42 = event({ key: 'po-42', topic: 'orders/42/audit', size: 2 });
    const order42later = event({ key: 'po-42', topic: 'orders/42/progress', size: 3 });
    push(outbox, order42);
    push(outbox, audit42);
    push(outbox, order42later);
    const frames: Uint8Array[] = [];
    assert.equal(outbox.drainInto(frames), order42later.id);
    assert.deepEqual(frames, [audit42.frame, order42later.frame]);
  });

  test('keys are forgotten once drained', () => {
    const outbox = new Outbox();
    push(outbox, event({ key: 'a' }));
    drained(outbox);
    push(outbox, event({ key: 'a', size: 4 }));
    push(outbox, event({ key: 'b', size: 5 }));
    assert.deepEqual(drained(outbox), [4, 5]);
  });

  test('is over its limit by events or by bytes, but never for a single event', () => {
    const limits = { maxEvents: 2, maxBytes: 100 };
    const outbox = new Outbox();
    push(outbox, event({ size: 1000 }));
    assert.equal(outbox.isOver(limits), false, 'one event however large');
    push(outbox, event({ size: 1 }));
    assert.equal(outbox.isOver(limits), true, 'by bytes');
    const small = new Outbox();
    for (let i = 0; i < 3; i++) push(small, event({ size: 1 }));
    assert.equal(small.isOver(limits), true, 'by events');
  });

  test('drop-oldest evicts the oldest normal events first; high ones survive while normal ones are queued', () => {
    const outbox = new Outbox();
    push(outbox, event({ priority: 'high', size: 1 }));
    push(outbox, event({ size: 2 }));
    push(outbox, event({ priority: 'high', size: 3 }));
    push(outbox, event({ size: 4 }));
    push(outbox, event({ size: 5 }));
    assert.equal(outbox.evict({ maxEvents: 3, maxBytes: 1000 }), 2);
    assert.deepEqual(drained(outbox), [1, 3, 5]);
  });

  test('drop-oldest falls back to the oldest high events when nothing normal is left', () => {
    const outbox = new Outbox();
    for (const size of [1, 2, 3]) push(outbox, event({ priority: 'high', size }));
    assert.equal(outbox.evict({ maxEvents: 1, maxBytes: 1000 }), 2);
    assert.deepEqual(drained(outbox), [3]);
  });

  test('dropWhile drops from the front while the test holds', () => {
    const outbox = new Outbox();
    for (const size of [1, 2, 3, 4]) push(outbox, event({ size }));
    outbox.dropWhile((e) => (e.frame?.length ?? 0) < 3);
    assert.equal(outbox.count, 2);
    assert.deepEqual(drained(outbox), [3, 4]);
  });

  test('an evicted keyed event frees its key', () => {
    const outbox = new Outbox();
    push(outbox, event({ key: 'k', size: 1 }));
    push(outbox, event({ size: 2 }));
    outbox.evict({ maxEvents: 1, maxBytes: 1000 });
    push(outbox, event({ key: 'k', size: 3 }));
    assert.deepEqual(drained(outbox), [2, 3]);
  });
});
