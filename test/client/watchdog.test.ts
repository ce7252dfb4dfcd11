import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type Clock, createWatchdog } from '../../src/client/watchdog.ts';

/** A clock the test moves by hand, counting the timers it is asked for. */
function fakeClock() {
  let now = 0;
  let nextHandle = 1;
  const timers = new Map<number, { at: number; callback: () => void }>();
  const stats = { armed: 0 };
  const clock: Clock = {
    now: () => now,
    setTimeout(callback, ms) {
      stats.armed++;
      const handle = nextHandle++;
      timers.set(handle, { at: now + ms, callback });
      return handle;
    },
    clearTimeout(handle) {
      timers.delete(handle as number);
    },
  };
  const advance = (ms: number) => {
    const target = now + ms;
    for (;;) {
      const due = [...timers.entries()]
        .filter(([, t]) => t.at <= target)
        .sort((a, b) => a[1].at - b[1].at)[0];
      if (due === undefined) break;
      timers.delete(due[0]);
      now = due[1].at;
      due[1].callback();
    }
    now = target;
  };
  return { clock, advance, stats, pending: () => timers.size };
}

describe('heartbeat watchdog', () => {
  test('a silent connection expires after its limit, not before', () => {
    const { clock, advance } = fakeClock();
    const watchdog = createWatchdog<string>(clock);
    let expired = 0;
    watchdog.watch('stream', 37_500, () => expired++);
    advance(37_499);
    assert.equal(expired, 0);
    advance(1);
    assert.equal(expired, 1);
    advance(100_000);
    assert.equal(expired, 1, 'once');
  });

  test('bytes keep it alive; touching costs no timer', () => {
    const { clock, advance, stats } = fakeClock();
    const watchdog = createWatchdog<string>(clock);
    let expired = 0;
    watchdog.watch('stream', 1000, () => expired++);
    const armedBefore = stats.armed;
    for (let i = 0; i < 10_000; i++) {
      advance(1);
      watchdog.touch('stream'); // ten thousand events
    }
    assert.equal(expired, 0);
    assert.ok(stats.armed - armedBefore <= 10, `${stats.armed - armedBefore} timers for 10 000 events`);
    advance(999);
    assert.equal(expired, 0);
    advance(1);
    assert.equal(expired, 1);
  });

  test('one timer for several connections, each with its own limit', () => {
    const { clock, advance, pending } = fakeClock();
    const watchdog = createWatchdog<string>(clock);
    const expired: string[] = [];
    watchdog.watch('stream', 1000, () => expired.push('stream'));
    watchdog.watch('poll', 26_000, () => expired.push('poll'));
    watchdog.watch('probe', 500, () => expired.push('probe'));
    assert.equal(pending(), 1);
    advance(500);
    assert.deepEqual(expired, ['probe']);
    watchdog.touch('stream');
    advance(999);
    assert.deepEqual(expired, ['probe']);
    advance(1);
    assert.deepEqual(expired, ['probe', 'stream']);
    assert.equal(pending(), 1);
    advance(30_000);
    assert.deepEqual(expired, ['probe', 'stream', 'poll']);
    assert.equal(pending(), 0, 'nothing watched, no timer');
  });

  test('unwatch and stop leave no timer', () => {
    const { clock, advance, pending } = fakeClock();
    const watchdog = createWatchdog<string>(clock);
    let expired = 0;
    watchdog.watch('a', 1000, () => expired++);
    watchdog.unwatch('a');
    assert.equal(pending(), 0);
    watchdog.watch('b', 1000, () => expired++);
    watchdog.stop();
    assert.equal(pending(), 0);
    advance(5000);
    assert.equal(expired, 0);
  });

  test('a connection watched from an expiry callback (the reconnection) is watched in turn', () => {
    const { clock, advance } = fakeClock();
    const watchdog = createWatchdog<number>(clock);
    let generation = 0;
    const connect = () => watchdog.watch(++generation, 1000, connect);
    connect();
    advance(3500);
    assert.equal(generation, 4);
  });
});
