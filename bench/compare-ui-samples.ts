/**
 * Compares the operator UI's tap → workspace times of two trees over several alternated runs of
 * `bench/agent-ui-latency.ts --samples-out <file>` each (issue 11: "no worse" than a baseline
 * commit). For each path, (a) tap → own workspace and (b) switch, and for p50 and p95 of the pooled
 * samples: current, baseline, current − baseline with its 95 % interval (a two-level bootstrap over
 * runs, then samples within a run: bench/lib/compare.ts), and the verdict the interval supports.
 *
 *   node --import tsx bench/compare-ui-samples.ts --current c1.json --current c2.json … --baseline b1.json …
 *     [--margin-pct 10]
 *
 * Other benchmarks write the same kind of file with their own named sample arrays and a `labels`
 * object (`bench/agent-switch-latency.ts --samples-out`: `core`, `full`); `--paths` picks which
 * arrays are compared (default `a,b`), `--percentiles` which statistics (default `50,95`), `--decimals`
 * how finely the milliseconds are printed (default 1).
 *
 * `--margin-pct` declares the non-inferiority margin, as a share of the baseline's figure: current is
 * "no worse" where the interval's upper end is below it (bench/lib/compare.ts `verdictOf`). Declare
 * it before the runs, not after reading them.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { compareRuns, percentileOf, verdictOf } from './lib/compare.js';
import { fmt, heading, printTable } from './lib/report.js';

const { values: args } = parseArgs({
  options: {
    current: { type: 'string', multiple: true, default: [] },
    baseline: { type: 'string', multiple: true, default: [] },
    'margin-pct': { type: 'string' },
    paths: { type: 'string', default: 'a,b' },
    percentiles: { type: 'string', default: '50,95' },
    /** Decimals of the printed milliseconds (3 for sub-millisecond paths such as the switch's core). */
    decimals: { type: 'string', default: '1' },
  },
});

const PATHS = args.paths.split(',');
const PERCENTILES = args.percentiles.split(',').map(Number);
if (PERCENTILES.some((p) => !(p > 0 && p < 100))) {
  console.error('--percentiles: a comma-separated list of numbers between 0 and 100 (exclusive)');
  process.exit(2);
}
const DECIMALS = Number(args.decimals);
const DEFAULT_LABELS: Record<string, string> = { a: '(a) tap → own workspace', b: '(b) switch → other workspace' };

interface Samples {
  labels: Record<string, string>;
  paths: Record<string, number[]>;
}

function load(files: readonly string[]): Samples[] {
  return files.map((file) => {
    const parsed = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    const paths: Record<string, number[]> = {};
    for (const path of PATHS) {
      const samples = parsed[path];
      if (!Array.isArray(samples) || samples.some((x) => typeof x !== 'number'))
        throw new Error(`${file}: no "${path}" samples (not a --samples-out file, or another benchmark's)`);
      paths[path] = samples as number[];
    }
    const labels = typeof parsed.labels === 'object' && parsed.labels !== null ? parsed.labels : {};
    return { labels: { ...DEFAULT_LABELS, ...(labels as Record<string, string>) }, paths };
  });
}

const marginPct = args['margin-pct'] === undefined ? undefined : Number(args['margin-pct']);
if (marginPct !== undefined && !(marginPct > 0 && marginPct < 100)) {
  console.error('--margin-pct: a share of the baseline between 0 and 100 (exclusive)');
  process.exit(2);
}
const current = load(args.current);
const baseline = load(args.baseline);
if (current.length === 0 || baseline.length === 0) {
  console.error(
    'usage: compare-ui-samples.ts --current <file> [--current <file> …] --baseline <file> [--baseline <file> …]',
  );
  process.exit(2);
}

heading('compare-ui-samples');
console.log(
  `runs: current ${current.length}, baseline ${baseline.length}; 95 % interval, bootstrap over runs then samples` +
    (marginPct === undefined ? '' : `; "no worse" margin ${fmt(marginPct, 0)} % of the baseline`),
);
const rows: string[][] = [];
for (const path of PATHS) {
  const label = current[0]?.labels[path] ?? path;
  for (const p of PERCENTILES) {
    const r = compareRuns(
      current.map((s) => s.paths[path] ?? []),
      baseline.map((s) => s.paths[path] ?? []),
      percentileOf(p),
    );
    const margin = marginPct === undefined ? undefined : (r.baseline * marginPct) / 100;
    const verdict = verdictOf(r, margin);
    const said =
      verdict === 'faster'
        ? 'current faster'
        : verdict === 'slower'
          ? 'current slower'
          : verdict === 'no worse'
            ? `no worse (at worst ${fmt(r.high, DECIMALS)} ms slower, margin ${fmt(margin ?? 0, DECIMALS)})`
            : `no difference shown (at worst ${fmt(r.high, DECIMALS)} ms slower${margin === undefined ? '' : `, margin ${fmt(margin, DECIMALS)}`})`;
    rows.push([
      `${label} p${p}`,
      fmt(r.current, DECIMALS),
      fmt(r.baseline, DECIMALS),
      fmt(r.difference, DECIMALS),
      `${fmt(r.low, DECIMALS)} … ${fmt(r.high, DECIMALS)}`,
      `${r.runsLower}/${r.runs}`,
      said,
    ]);
  }
}
printTable(
  'pooled samples (ms)',
  ['path', 'current', 'baseline', 'difference', '95 % interval', 'runs below baseline', 'verdict'],
  rows,
);
