/**
 * What a node's periodic housekeeping over its consoles costs the requests that arrive meanwhile.
 * With thousands of consoles connected, two timers walk all of them: the heartbeat (a ping per
 * socket) and the last-seen flush (a write per console seen since the last one; a heartbeat's pongs
 * ask for one at once). The driver of the embedded store is synchronous, and a ping is a socket
 * write: done in one go, each holds the event loop for as long as it takes, and a revocation or a
 * sign-in arriving then waits for all of it.
 *
 * The backend runs in a child process (bench/lib/backend-process.ts, embedded SQLite, durability
 * `full`) with a short heartbeat (BENCH_HEARTBEAT_SECONDS), so that a window of a few seconds holds
 * several heartbeats and flushes; the consoles (real P-256 keys, signed WebSocket upgrades, `ws`
 * answers the pings) and a probe in this process. The probe sends `GET /healthz` on a fresh
 * connection every `--probe-ms` (it reads the store at most once a second: mostly a measure of the
 * event loop); its latency is what a request arriving at a random moment waits for the backend's
 * event loop. Reported: the probe's p50 / p99 / max and the backend's own event-loop delay (max, p99)
 * over the window, the main figure. Run it in two trees for a before/after, with this file and
 * bench/lib/backend-child.ts copied into both (the run refuses a backend that kept another heartbeat).
 *
 *   node --import tsx bench/housekeeping-stall.ts [--consoles 2000] [--heartbeat 2] [--seconds 20] [--probe-ms 50]
 */
import { request } from 'node:http';
import { parseArgs } from 'node:util';
import { newId } from '../backend/crypto/secrets.js';
import { ConsoleKey } from '../main/core/console-key.js';
import { BackendProcess } from './lib/backend-process.js';
import { loadLine } from './lib/cluster.js';
import { ensureFileLimit } from './lib/fd-limit.js';
import { fmt, fmtInt, heading, printJsonLine, printTable, summarize, wallMs } from './lib/report.js';
import { BareConsole, connectConsole, mapLimit } from './lib/ws-console.js';

const { values: args } = parseArgs({
  options: {
    consoles: { type: 'string', default: '2000' },
    heartbeat: { type: 'string', default: '2' },
    seconds: { type: 'string', default: '20' },
    'probe-ms': { type: 'string', default: '50' },
  },
});
const CONSOLES = Number(args.consoles);
const HEARTBEAT_SECONDS = Number(args.heartbeat);
const WINDOW_MS = Number(args.seconds) * 1000;
const PROBE_MS = Number(args['probe-ms']);
for (const [name, value] of Object.entries({ CONSOLES, HEARTBEAT_SECONDS, WINDOW_MS, PROBE_MS })) {
  if (!Number.isInteger(value) || value <= 0) throw new Error(`${name} must be a positive integer`);
}

async function main(): Promise<void> {
  ensureFileLimit(CONSOLES + 1024);
  heading('Housekeeping over the connected consoles: what a request arriving meanwhile waits');
  process.env.BENCH_HEARTBEAT_SECONDS = String(HEARTBEAT_SECONDS);
  const backend = await BackendProcess.start();
  const consoles = Array.from({ length: CONSOLES }, () => new BareConsole(newId('con'), ConsoleKey.generate()));
  for (let i = 0; i < consoles.length; i += 1000) {
    await backend.request('insert-consoles', {
      consoles: consoles.slice(i, i + 1000).map((c) => ({ id: c.id, publicJwk: c.key.publicJwk() })),
    });
  }
  let dropped = 0;
  await mapLimit(consoles, 25, async (c) => {
    const lean = await connectConsole(backend.url, c, () => undefined, { policyVersion: 1, revocationEpoch: 0 });
    // A tree whose bench/lib/backend-child.ts ignores BENCH_HEARTBEAT_SECONDS would keep 15 s: not comparable.
    if (lean.welcome.heartbeatSeconds !== HEARTBEAT_SECONDS) {
      throw new Error(
        `the backend announced a ${lean.welcome.heartbeatSeconds} s heartbeat, not ${HEARTBEAT_SECONDS} s: copy bench/lib/backend-child.ts into that tree too`,
      );
    }
    lean.ws.on('error', () => undefined);
    lean.ws.on('close', () => (dropped += 1));
    return lean;
  });
  console.log(
    `backend pid ${backend.child.pid} at ${backend.url} (durability "${backend.durability}"); ${fmtInt(CONSOLES)} consoles ` +
      `connected; heartbeat every ${HEARTBEAT_SECONDS} s; probing GET /healthz every ${PROBE_MS} ms for ${WINDOW_MS / 1000} s`,
  );
  // One window before measuring: the heartbeats and flushes are under way, the code paths warm.
  await new Promise((resolve) => setTimeout(resolve, HEARTBEAT_SECONDS * 1000 + 500));

  const probe = () =>
    new Promise<number>((resolve, reject) => {
      const t0 = wallMs();
      const req = request(`${backend.url}/healthz`, { agent: false });
      req.on('response', (res) => {
        res.resume();
        res.on('end', () => resolve(wallMs() - t0));
      });
      req.on('error', reject);
      req.end();
    });
  const loadStart = loadLine();
  await backend.request('loop-delay', { reset: true });
  const latencies: number[] = [];
  const until = wallMs() + WINDOW_MS;
  while (wallMs() < until) {
    latencies.push(await probe());
    await new Promise((resolve) => setTimeout(resolve, PROBE_MS));
  }
  const loop = await backend.request<{ maxMs: number; p99Ms: number; meanMs: number }>('loop-delay');
  const loadEnd = loadLine();
  // A console cut off by a missed heartbeat would make the later walks shorter than they should be.
  const lost = dropped;
  await backend.stop();
  if (lost > 0) throw new Error(`${lost} consoles were disconnected during the run`);

  const s = summarize(latencies);
  printTable(
    `${fmtInt(CONSOLES)} consoles, heartbeat ${HEARTBEAT_SECONDS} s, ${fmtInt(s.n)} probes; ms`,
    ['measure', 'p50', 'p95', 'p99', 'max'],
    [
      ['GET /healthz (fresh connection)', fmt(s.p50, 2), fmt(s.p95, 2), fmt(s.p99, 2), fmt(s.max, 2)],
      ["backend's event-loop delay", '', '', fmt(loop.p99Ms, 2), fmt(loop.maxMs, 2)],
    ],
  );
  console.log(`${loadStart} at the start; ${loadEnd} at the end`);
  printJsonLine('housekeeping-stall', {
    consoles: CONSOLES,
    heartbeatSeconds: HEARTBEAT_SECONDS,
    probe: s,
    loopDelay: { maxMs: loop.maxMs, p99Ms: loop.p99Ms, meanMs: loop.meanMs },
    load: { start: loadStart, end: loadEnd },
  });
}

await main();
