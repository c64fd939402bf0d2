/**
 * Two trees compared over several alternated runs each, with a confidence interval rather than one
 * median against another: a run's samples share that run's machine state (load, caches, the other
 * processes), so runs, not samples, are what vary independently. The interval comes from a two-level
 * bootstrap: draw the runs of each tree with replacement, then the samples within each drawn run,
 * pool them, take the statistic; repeat. Seeded, so the same files give the same interval.
 */
import { seededRandom } from './report.js';

export interface Comparison {
  /** The statistic of each tree's pooled samples. */
  current: number;
  baseline: number;
  /** current − baseline, and its two-sided interval at `level`. */
  difference: number;
  low: number;
  high: number;
  level: number;
  /** Runs whose own statistic is below the baseline runs' median of that statistic. */
  runsLower: number;
  runs: number;
}

export type Statistic = (sorted: readonly number[]) => number;

/** Nearest-rank percentile as a statistic of an ascending array. */
export function percentileOf(p: number): Statistic {
  return (sorted) => {
    if (sorted.length === 0) return Number.NaN;
    const rank = Math.ceil((p / 100) * sorted.length);
    return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1] as number;
  };
}

function pooled(runs: readonly (readonly number[])[]): number[] {
  return runs.flat().sort((x, y) => x - y);
}

function redraw(runs: readonly (readonly number[])[], next: () => number): number[] {
  const out: number[] = [];
  for (let r = 0; r < runs.length; r++) {
    const run = runs[Math.floor(next() * runs.length)] as readonly number[];
    for (let i = 0; i < run.length; i++) out.push(run[Math.floor(next() * run.length)] as number);
  }
  return out.sort((x, y) => x - y);
}

export function compareRuns(
  current: readonly (readonly number[])[],
  baseline: readonly (readonly number[])[],
  statistic: Statistic,
  { iterations = 4000, level = 0.95, seed = 1 }: { iterations?: number; level?: number; seed?: number } = {},
): Comparison {
  if (current.length === 0 || baseline.length === 0) throw new Error('compareRuns: each tree needs at least one run');
  if ([...current, ...baseline].some((run) => run.length === 0)) throw new Error('compareRuns: a run has no samples');
  const next = seededRandom(seed);
  const differences: number[] = [];
  for (let i = 0; i < iterations; i++) {
    differences.push(statistic(redraw(current, next)) - statistic(redraw(baseline, next)));
  }
  differences.sort((x, y) => x - y);
  const tail = (1 - level) / 2;
  const at = (q: number) => differences[Math.min(iterations - 1, Math.max(0, Math.floor(q * iterations)))] as number;
  const c = statistic(pooled(current));
  const b = statistic(pooled(baseline));
  const baselineRuns = baseline.map((run) => statistic([...run].sort((x, y) => x - y))).sort((x, y) => x - y);
  const baselineMedian = percentileOf(50)(baselineRuns);
  return {
    current: c,
    baseline: b,
    difference: c - b,
    low: at(tail),
    high: at(1 - tail),
    level,
    runsLower: current.filter((run) => statistic([...run].sort((x, y) => x - y)) < baselineMedian).length,
    runs: current.length,
  };
}

/**
 * What a comparison supports about "no worse", given a margin declared before the runs: the
 * largest slowdown (ms, current − baseline) that still counts as no worse. Non-inferiority: the
 * interval's upper end must lie below the margin; an interval wholly above 0 is a slowdown whatever
 * the margin, and one wholly below 0 is a speed-up.
 */
export type Verdict = 'faster' | 'slower' | 'no worse' | 'not shown';

export function verdictOf(r: Pick<Comparison, 'low' | 'high'>, marginMs: number | undefined): Verdict {
  if (r.high < 0) return 'faster';
  if (r.low > 0) return 'slower';
  if (marginMs !== undefined && r.high < marginMs) return 'no worse';
  return 'not shown';
}
