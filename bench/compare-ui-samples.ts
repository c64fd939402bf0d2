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
  },
});

interface Samples {
  a: number[];
  b: number[];
}

function load(files: readonly string[]): Samples[] {
  return files.map((file) => {
    const parsed = JSON.parse(readFileSync(file, 'utf8')) as Partial<Samples>;
    if (!Array.isArray(parsed.a) || !Array.isArray(parsed.b)) throw new Error(`${file}: not a --samples-out file`);
    return { a: parsed.a, b: parsed.b };
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
for (const [label, path] of [
  ['(a) tap → own workspace', 'a'],
  ['(b) switch → other workspace', 'b'],
] as const) {
  for (const p of [50, 95]) {
    const r = compareRuns(
      current.map((s) => s[path]),
      baseline.map((s) => s[path]),
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
            ? `no worse (at worst ${fmt(r.high, 1)} ms slower, margin ${fmt(margin ?? 0, 1)})`
            : `no difference shown (at worst ${fmt(r.high, 1)} ms slower${margin === undefined ? '' : `, margin ${fmt(margin, 1)}`})`;
    rows.push([
      `${label} p${p}`,
      fmt(r.current, 1),
      fmt(r.baseline, 1),
      fmt(r.difference, 1),
      `${fmt(r.low, 1)} … ${fmt(r.high, 1)}`,
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
