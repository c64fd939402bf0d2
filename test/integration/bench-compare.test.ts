import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compareRuns, percentileOf, verdictOf } from '../../bench/lib/compare.js';

/** Runs of samples around `centre`, each run with its own offset (the machine's state that run). */
function runs(centre: number, offsets: readonly number[], n = 60): number[][] {
  return offsets.map((offset, r) =>
    Array.from({ length: n }, (_, i) => centre + offset + (((i * 37 + r * 11) % 21) - 10) * 0.5),
  );
}

describe('bench/lib/compare: two trees over several runs', () => {
  const median = percentileOf(50);

  it('does not call the same distribution faster or slower: the interval holds 0', () => {
    const r = compareRuns(runs(30, [-2, 1, 0, 3, -1, 2]), runs(30, [1, -2, 2, 0, 3, -1]), median);
    assert.ok(r.low <= 0 && r.high >= 0, `interval ${r.low} … ${r.high}`);
  });

  it('finds a tree 6 ms slower slower, with the interval above 0 around the shift', () => {
    const r = compareRuns(runs(36, [-2, 1, 0, 3, -1, 2]), runs(30, [1, -2, 2, 0, 3, -1]), median);
    assert.ok(r.low > 0, `interval ${r.low} … ${r.high}`);
    assert.ok(r.low < 6 && r.high > 6, `interval ${r.low} … ${r.high} around 6`);
    assert.equal(r.runsLower, 0);
  });

  it('widens the interval when runs disagree (the run, not the sample, is the unit)', () => {
    const steady = compareRuns(runs(30, [0, 0, 0, 0]), runs(30, [0, 0, 0, 0]), median);
    const noisy = compareRuns(runs(30, [-8, 8, -8, 8]), runs(30, [8, -8, 8, -8]), median);
    assert.ok(noisy.high - noisy.low > steady.high - steady.low + 4);
  });

  it('gives the same interval for the same files (seeded)', () => {
    const a = runs(31, [0, 2, -1]);
    const b = runs(30, [1, 0, 2]);
    assert.deepEqual(compareRuns(a, b, median), compareRuns(a, b, median));
  });

  it('refuses a tree without runs or a run without samples', () => {
    assert.throws(() => compareRuns([], runs(30, [0]), median), /at least one run/);
    assert.throws(() => compareRuns([[]], runs(30, [0]), median), /no samples/);
  });

  it('calls a tree "no worse" only when the interval ends below the declared margin', () => {
    const same = compareRuns(runs(30, [-1, 1, 0, 1, -1, 0]), runs(30, [1, -1, 0, -1, 1, 0]), median);
    assert.equal(verdictOf(same, 3), 'no worse', `interval ${same.low} … ${same.high}`);
    assert.equal(verdictOf(same, undefined), 'not shown');
    const noisy = compareRuns(runs(30, [-8, 8, -8, 8]), runs(30, [8, -8, 8, -8]), median);
    assert.equal(verdictOf(noisy, 3), 'not shown', `interval ${noisy.low} … ${noisy.high}`);
    const slower = compareRuns(runs(33, [0, 1, 0, 1, 0, 1]), runs(30, [0, 1, 0, 1, 0, 1]), median);
    assert.equal(verdictOf(slower, 100), 'slower', 'a slowdown the interval shows is never "no worse"');
    assert.equal(verdictOf({ low: -3, high: -1 }, 2), 'faster');
    assert.equal(verdictOf({ low: -1, high: 2 }, 2), 'not shown', 'the margin itself is not below the margin');
  });
});
