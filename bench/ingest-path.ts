/**
 * The ingest path's CPU per event without the wire (issue 10): `EventLog.ingest` in this process on
 * an embedded SQLite store (durability full, the WAL flush and checkpoints as in production), CONSOLES
 * consoles each handing one batch of BATCH chained events per round (parsed from JSON text, as a
 * WebSocket message would be), all rounds' batches queued together so the group commit groups them.
 * What it counts: this process's CPU time (user + system, every thread: the checkpointer and the
 * flush included) per stored event over the rounds after the first two. No WebSocket, no signature,
 * no message schema: the event log's checks, hash chain, rows and group commit alone.
 *
 * `--ab NAME=VALUE` runs itself alternately without and with that environment variable (A/B of a
 * switch such as BATON_EVENT_HASH_OBJECT=1), `--pairs` times, each run in a fresh process and a fresh
 * data directory, and prints each run's CPU per event and the load beside it.
 *
 *   node --import tsx bench/ingest-path.ts [--consoles 40] [--batch 250] [--rounds 14] [--ab NAME=VALUE --pairs 5]
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import pino from 'pino';
import { EventLog } from '../backend/services/event-log.js';
import { openSqliteStore } from '../backend/store/sqlite-store.js';
import { canonicalJson } from '../shared/canonical-json.js';
import { GENESIS_HASH, type AssuranceEvent } from '../shared/events.js';

const { values: args } = parseArgs({
  options: {
    consoles: { type: 'string', default: '40' },
    batch: { type: 'string', default: '250' },
    rounds: { type: 'string', default: '14' },
    ab: { type: 'string' },
    pairs: { type: 'string', default: '5' },
  },
});
const CONSOLES = Number(args.consoles);
const BATCH = Number(args.batch);
const ROUNDS = Number(args.rounds);
const load = () =>
  loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');

if (args.ab !== undefined) {
  const [name, value] = args.ab.split('=') as [string, string | undefined];
  const self = fileURLToPath(import.meta.url);
  const runs: Record<'A' | 'B', number[]> = { A: [], B: [] };
  const base = ['--consoles', String(CONSOLES), '--batch', String(BATCH), '--rounds', String(ROUNDS)];
  for (let pair = 0; pair < Number(args.pairs); pair++) {
    for (const side of pair % 2 === 0 ? (['A', 'B'] as const) : (['B', 'A'] as const)) {
      const env = { ...process.env };
      delete env[name];
      if (side === 'B') env[name] = value ?? '1';
      const loadBefore = load();
      const out = execFileSync(process.execPath, ['--import', 'tsx', self, ...base], { env, encoding: 'utf8' });
      const us = Number(/([\d.]+) µs CPU per event/.exec(out)?.[1]);
      runs[side].push(us);
      console.log(
        `${side === 'A' ? `without ${name}` : `with ${name}=${value ?? '1'}`}: ${us.toFixed(2)} µs CPU per event (load ${loadBefore})`,
      );
    }
  }
  const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)] ?? Number.NaN;
  console.log(
    `median without ${name}: ${median(runs.A).toFixed(2)} µs (${runs.A.map((x) => x.toFixed(2)).join(' / ')}); ` +
      `with: ${median(runs.B).toFixed(2)} µs (${runs.B.map((x) => x.toFixed(2)).join(' / ')})`,
  );
} else {
  const dir = mkdtempSync(join(tmpdir(), 'baton-ingest-path-'));
  const store = openSqliteStore({ dataDir: dir, durability: 'full' });
  const log = new EventLog(store, Date.now, pino({ level: 'silent' }));
  const consoles = Array.from({ length: CONSOLES }, () => ({ id: `con-${randomUUID()}`, seq: 0, hash: GENESIS_HASH }));
  const TYPES = ['policy-decision', 'session-locked', 'session-switched', 'agent-online'] as const;
  const batchText = (c: (typeof consoles)[number]): string => {
    const events: AssuranceEvent[] = [];
    for (let k = 0; k < BATCH; k++) {
      const type = TYPES[c.seq % 4] as (typeof TYPES)[number];
      const event: AssuranceEvent = {
        id: randomUUID(),
        seq: ++c.seq,
        time: Date.now(),
        type,
        subject: { console: c.id },
        outcome: type === 'policy-decision' ? 'allow' : 'info',
        reasons: ['idle'],
        prevHash: c.hash,
      };
      c.hash = createHash('sha256').update(canonicalJson(event)).digest('hex');
      events.push(event);
    }
    return JSON.stringify(events);
  };
  let cpuUs = 0;
  let counted = 0;
  try {
    for (let round = 0; round < ROUNDS; round++) {
      const texts = consoles.map(batchText);
      const cpu0 = process.cpuUsage();
      await Promise.all(
        texts.map(async (text, i) => {
          const result = await log.ingest((consoles[i] as (typeof consoles)[number]).id, JSON.parse(text));
          if (result.findings.length > 0 || result.inserted !== BATCH) {
            throw new Error(`unexpected ingest result: ${JSON.stringify(result).slice(0, 300)}`);
          }
        }),
      );
      const cpu = process.cpuUsage(cpu0);
      if (round >= 2) {
        cpuUs += cpu.user + cpu.system;
        counted += CONSOLES * BATCH;
      }
    }
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
  console.log(`${(cpuUs / counted).toFixed(2)} µs CPU per event (${counted} events, load ${load()})`);
}
