import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EventCap } from './event-cap.js';

describe('EventCap', () => {
  it('lets `max` events through a window, counts the rest, and hands the count to the next one let through', () => {
    let now = 1_000_000;
    const cap = new EventCap({ max: 3, windowMs: 60_000, clock: () => now });
    assert.deepEqual([cap.take(), cap.take(), cap.take()], [0, 0, 0]);
    assert.deepEqual([cap.take(), cap.take()], [undefined, undefined]);
    now += 59_999;
    assert.equal(cap.take(), undefined, 'still the same window');
    now += 1;
    assert.equal(cap.take(), 3, 'a new window: the first event says how many were held back');
    assert.equal(cap.take(), 0, 'and the count starts again');
    assert.equal(cap.take(), 0);
    assert.equal(cap.take(), undefined);
  });

  it('starts its window at the first event after the previous one ended', () => {
    let now = 1_000_000;
    const cap = new EventCap({ max: 1, windowMs: 60_000, clock: () => now });
    assert.equal(cap.take(), 0);
    now += 300_000;
    assert.equal(cap.take(), 0);
    now += 59_000;
    assert.equal(cap.take(), undefined, 'the window began 59 s ago, at the previous event');
  });
});
