/**
 * Runs every benchmark in sequence, each in its own process (`node --import tsx bench/<name>.ts`),
 * so one cannot warm up or pollute the heap of the next. Output streams through; a summary follows.
 *
 *   npm run bench                      # all of them
 *   node --import tsx bench/run-all.ts sign-in-throughput event-ingest   # a subset, by name
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { fmt, machineLine, printTable } from './lib/report.js';

const BENCHMARKS = [
  'sign-in-throughput',
  'event-ingest',
  'revocation-fanout',
  // Issue 10 (cluster on PostgreSQL; the PostgreSQL parts are skipped with the reason where it cannot run).
  'cluster-sign-in',
  'cluster-ingest',
  'cluster-revocation',
  'agent-switch-latency',
  'agent-outbox-throughput',
  'agent-memory',
  'agent-ui-latency',
] as const;

const wanted = process.argv.slice(2);
const unknown = wanted.filter((w) => !(BENCHMARKS as readonly string[]).includes(w));
if (unknown.length > 0) throw new Error(`unknown benchmark(s): ${unknown.join(', ')}; known: ${BENCHMARKS.join(', ')}`);
const selected = wanted.length > 0 ? BENCHMARKS.filter((b) => wanted.includes(b)) : [...BENCHMARKS];

function run(name: string): Promise<{ code: number; seconds: number }> {
  const script = fileURLToPath(new URL(`./${name}.ts`, import.meta.url));
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', script], { stdio: 'inherit' });
    child.once('error', reject);
    child.once('exit', (code, signal) =>
      resolve({ code: code ?? (signal === null ? 1 : 128), seconds: (performance.now() - t0) / 1000 }),
    );
  });
}

console.log(`Baton benchmarks: ${selected.join(', ')}`);
console.log(machineLine());
const results: { name: string; code: number; seconds: number }[] = [];
for (const name of selected) results.push({ name, ...(await run(name)) });

printTable(
  'summary',
  ['benchmark', 'exit', 'seconds'],
  results.map((r) => [r.name, String(r.code), fmt(r.seconds, 1)]),
);
console.log(
  `total ${fmt(
    results.reduce((a, r) => a + r.seconds, 0),
    1,
  )}s`,
);
if (results.some((r) => r.code !== 0)) process.exitCode = 1;
