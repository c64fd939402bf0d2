import { cpus, totalmem } from 'node:os';

/** Small helpers shared by the benchmarks: timing, percentiles, tables and the machine line. */

/** Wall-clock milliseconds with sub-millisecond resolution, comparable across processes on one host. */
export function wallMs(): number {
  return performance.timeOrigin + performance.now();
}

export interface Summary {
  n: number;
  mean: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
}

/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1] as number;
}

export function summarize(samples: readonly number[]): Summary {
  const sorted = [...samples].sort((a, b) => a - b);
  const sum = sorted.reduce((a, b) => a + b, 0);
  return {
    n: sorted.length,
    mean: sorted.length === 0 ? Number.NaN : sum / sorted.length,
    p50: percentile(sorted, 50),
    p95: percentile(sorted, 95),
    p99: percentile(sorted, 99),
    max: sorted.at(-1) ?? Number.NaN,
  };
}

export function fmt(value: number, digits = 2): string {
  if (!Number.isFinite(value)) return 'n/a';
  return value.toLocaleString('en-GB', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

export function fmtInt(value: number): string {
  return fmt(value, 0);
}

/** Prints an aligned plain-text table (first column left-aligned, the others right-aligned). */
export function printTable(title: string, headers: readonly string[], rows: readonly (readonly string[])[]): void {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ');
  console.log(`\n${title}`);
  console.log(line(headers));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const row of rows) console.log(line(row));
}

export function verdict(ok: boolean): string {
  return ok ? 'met' : 'NOT MET';
}

export function machineLine(): string {
  const list = cpus();
  return (
    `node ${process.version}, ${list.length} CPU(s) (${list[0]?.model ?? 'unknown'}), ` +
    `${Math.round(totalmem() / 2 ** 30)} GiB RAM, ${process.platform}/${process.arch}, ${new Date().toISOString()}`
  );
}

export function heading(name: string): void {
  console.log(`\n=== ${name} ===`);
  console.log(machineLine());
}

/** Runs `fn` and returns wall time and process CPU time (user+system, all threads) in ms. */
export async function measured<T>(fn: () => Promise<T>): Promise<{ result: T; wallMs: number; cpuMs: number }> {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const result = await fn();
  const wall = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  return { result, wallMs: wall, cpuMs: (cpu.user + cpu.system) / 1000 };
}

/** A small seeded PRNG (mulberry32) so every run picks the same sequence of operators. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Prints the benchmark's figures as one JSON line (`{"benchmark":…}`) after the tables, for scripts
 * that collect results: `grep '^{"benchmark"'`.
 */
export function printJsonLine(benchmark: string, figures: Record<string, unknown>): void {
  console.log(JSON.stringify({ benchmark, machine: machineLine(), ...figures }));
}
