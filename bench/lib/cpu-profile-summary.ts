/**
 * Summarises V8 .cpuprofile files (node --cpu-prof) by self time: the top functions and a split by
 * where the code lives (Baton's backend, node:crypto and other node internals, @simplewebauthn,
 * pg/kysely, better-sqlite3, ws, GC, idle). For a benchmark's "why": where the backend's CPU went.
 *
 *   node --import tsx bench/lib/cpu-profile-summary.ts <dir-or-files…> [--top 20]
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  startTime: number;
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileSummary {
  totalMs: number;
  byArea: [string, number][];
  top: [string, number][];
}

function area(url: string, name: string): string {
  if (name === '(garbage collector)') return 'GC';
  if (name === '(idle)' || name === '(program)') return name;
  if (url.includes('@simplewebauthn')) return '@simplewebauthn/server';
  if (url.includes('node_modules/pg') || url.includes('node_modules/kysely')) return 'pg / kysely';
  if (url.includes('better-sqlite3')) return 'better-sqlite3';
  if (url.includes('node_modules/ws')) return 'ws';
  if (url.includes('node_modules/jose')) return 'jose';
  if (url.includes('node_modules/zod')) return 'zod';
  if (url.includes('node_modules/pino')) return 'pino';
  if (url.includes('node_modules/tsx') || url.includes('esbuild')) return 'tsx loader';
  if (url.includes('node_modules')) return 'other packages';
  if (url.includes('/backend/') || url.includes('/shared/')) return 'Baton backend/shared';
  if (url.startsWith('node:') || url === '') return name === '' ? 'node internals (native)' : 'node internals / native';
  return 'other';
}

/**
 * `window`: only the samples taken within it, in µs of the monotonic clock (`process.hrtime`, the clock
 * V8's profiles use on this host), e.g. a benchmark's measured window without start-up and warm-up.
 */
export function summarizeProfiles(
  files: readonly string[],
  top = 20,
  window: { fromUs: number; toUs: number } = { fromUs: -Infinity, toUs: Infinity },
): ProfileSummary {
  const self = new Map<string, number>();
  const areas = new Map<string, number>();
  let totalMs = 0;
  for (const file of files) {
    const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
    const byId = new Map(profile.nodes.map((n) => [n.id, n]));
    let at = profile.startTime;
    for (let i = 0; i < profile.samples.length; i++) {
      at += profile.timeDeltas[i] ?? 0;
      if (at < window.fromUs || at > window.toUs) continue;
      const node = byId.get(profile.samples[i] as number);
      if (node === undefined) continue;
      const ms = (profile.timeDeltas[i] ?? 0) / 1000;
      const { functionName, url, lineNumber } = node.callFrame;
      const key = `${functionName || '(anonymous)'} ${url.replace(/^.*\/(node_modules|backend|shared)\//, '$1/')}:${lineNumber + 1}`;
      self.set(key, (self.get(key) ?? 0) + ms);
      const a = area(url, functionName);
      areas.set(a, (areas.get(a) ?? 0) + ms);
      totalMs += ms;
    }
  }
  const sorted = (m: Map<string, number>) => [...m.entries()].sort((x, y) => y[1] - x[1]);
  return { totalMs, byArea: sorted(areas), top: sorted(self).slice(0, top) };
}

export function profileFiles(paths: readonly string[]): string[] {
  return paths.flatMap((p) =>
    statSync(p).isDirectory()
      ? readdirSync(p)
          .filter((f) => f.endsWith('.cpuprofile'))
          .map((f) => join(p, f))
      : [p],
  );
}

export function printProfileSummary(title: string, summary: ProfileSummary): void {
  const busy = summary.totalMs - (summary.byArea.find(([a]) => a === '(idle)')?.[1] ?? 0);
  console.log(`\n${title}: ${summary.totalMs.toFixed(0)} ms sampled, ${busy.toFixed(0)} ms not idle`);
  for (const [a, ms] of summary.byArea)
    console.log(`  ${a.padEnd(28)} ${ms.toFixed(0).padStart(7)} ms  ${((ms / busy) * 100).toFixed(1)}%`);
  console.log('  top functions by self time:');
  for (const [f, ms] of summary.top) console.log(`  ${ms.toFixed(0).padStart(7)} ms  ${f}`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const topIndex = process.argv.indexOf('--top');
  const top = topIndex > 0 ? Number(process.argv[topIndex + 1]) : 20;
  const paths = process.argv.slice(2).filter((a, i, all) => a !== '--top' && all[i - 1] !== '--top');
  printProfileSummary(paths.join(' '), summarizeProfiles(profileFiles(paths), top));
}

/** Now on the clock of V8's profiles (µs). */
export function monotonicUs(): number {
  return Number(process.hrtime.bigint() / 1000n);
}
