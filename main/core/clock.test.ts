import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { elapsedClock } from './clock.js';

describe('elapsedClock (the system clock behind Clock.monotonic)', () => {
  function sources() {
    const t = { wall: 1_700_000_000_000, mono: 5_000 };
    return {
      t,
      read: elapsedClock(
        () => t.wall,
        () => t.mono,
      ),
    };
  }

  test('a wall clock set back is ignored: elapsed time keeps the monotonic pace', () => {
    const { t, read } = sources();
    t.wall += 1000;
    t.mono += 1000;
    assert.equal(read(), 1000);
    t.wall -= 3_600_000; // someone sets the system time back an hour
    t.mono += 500;
    assert.equal(read(), 1500);
    t.wall += 500;
    t.mono += 500;
    assert.equal(read(), 2000);
  });

  test('time asleep counts: the wall clock moves while the monotonic clock stood still', () => {
    const { t, read } = sources();
    t.wall += 8 * 3_600_000;
    assert.equal(read(), 8 * 3_600_000);
  });

  test('never goes back', () => {
    const { t, read } = sources();
    const first = read();
    t.wall -= 10;
    t.mono -= 10; // a misbehaving source
    assert.ok(read() >= first);
  });
});
