/**
 * The admin console at estate scale (issue 12): every admin list's page queries over real HTTP, on an
 * estate of 10,000 consoles, 50,000 operators, 100,000 sessions and 10,000,000 events, on the
 * embedded SQLite file and on a throwaway PostgreSQL server. Goal: each page answers p95 ≤ 200 ms.
 *
 *   npx tsx bench/admin-estate.ts [--engine sqlite|postgres|both] [--events 10000000]
 *                                 [--consoles 10000] [--operators 50000] [--sessions 100000] [--samples 30]
 *
 * The estate is seeded straight into the backend's database with set-based INSERTs (a recursive CTE on
 * SQLite, generate_series on PostgreSQL) in transactions of 500,000 rows: no per-row round trip.
 * Seeded events carry valid bodies (the admin API parses every event it serves) but no valid hash
 * chain (origin `bench:seed`): the bench measures lists, not verification.
 *
 * Each query is asked `--samples` times after 3 warm-ups, one at a time, by the same process that runs
 * the backend (the client is idle while it waits). "Deep page" starts from a cursor at the middle of
 * the list: the cursor a client would hold after paging there (built as the server builds them, as
 * walking 100,000 pages first would take the bench hours and measure nothing more).
 */
import { execSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql, type Kysely } from 'kysely';
import pg from 'pg';
import { EVENT_TYPES } from '../shared/events.js';
import type { BatonDatabase } from '../backend/store/kysely-schema.js';
import { kyselyOf } from '../backend/store/kysely-store.js';
import { eventsPage } from '../backend/store/admin-tables.js';
import { createDatabase, startPostgres, type PostgresServer } from '../backend/store/postgres-throwaway.js';
import { startTestBackend, type TestBackend } from '../test/helpers/backend-harness.js';
import { fmt, fmtInt, heading, machineLine, printJsonLine, printTable, summarize, wallMs } from './lib/report.js';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? (process.argv[i + 1] ?? fallback) : fallback;
}

const ENGINE = arg('engine', 'both');
const CONSOLES = Number(arg('consoles', '10000'));
const OPERATORS = Number(arg('operators', '50000'));
const SESSIONS = Number(arg('sessions', '100000'));
const EVENTS = Number(arg('events', '10000000'));
const SAMPLES = Number(arg('samples', '30'));
/** PostgreSQL: log the plan (auto_explain, ANALYZE) of every statement slower than this many ms, printed at the end. */
const EXPLAIN_MS = process.argv.includes('--explain') ? Number(arg('explain', '20')) || 20 : undefined;
const CHUNK = 500_000;
const GOAL_P95_MS = 200;
const SITES = 500;
const BASE = Date.UTC(2026, 10, 1);
/**
 * Live sessions end in the future, as in an estate where the backend's expiry sweep keeps up: seeded
 * live sessions already past their end made the sweep close 200 of them every 30 s (each a unit of work
 * and an event) all through the measurement.
 */
const LIVE_UNTIL = Date.now() + 12 * 3_600_000;

const FIRST = ['Alex', 'Sam', 'Jo', 'Chris', 'Pat', 'Robin', 'Kim', 'Lee', 'Max', 'Nour'];
const LAST = ['Smith', 'Jones', 'Taylor', 'Brown', 'Wilson', 'Evans', 'Thomas', 'Roberts', 'Khan', 'Walker'];
/** The types seeded events cycle through. */
const TYPES = EVENT_TYPES.slice(0, 8);

type Engine = 'sqlite' | 'postgres';

/** SQL for the i-th row's values, written once for both engines (`i` is the series column). */
function typeCase(): string {
  return `CASE i % ${TYPES.length} ${TYPES.map((t, k) => `WHEN ${k} THEN '${t}'`).join(' ')} END`;
}

function seedStatements(
  engine: Engine,
  from: number,
  to: number,
  table: 'consoles' | 'operators' | 'sessions' | 'events',
): string {
  const series =
    engine === 'postgres'
      ? `generate_series(${from}, ${to - 1}) AS g(i)`
      : `(WITH RECURSIVE s(i) AS (SELECT ${from} UNION ALL SELECT i + 1 FROM s WHERE i < ${to - 1}) SELECT i FROM s)`;
  const pad = (expr: string, width: number) =>
    engine === 'postgres' ? `lpad((${expr})::text, ${width}, '0')` : `printf('%0${width}d', ${expr})`;
  const hex12 = engine === 'postgres' ? `lpad(to_hex(i), 12, '0')` : `printf('%012x', i)`;
  const cat = (...parts: string[]) => parts.join(' || ');
  const json =
    engine === 'postgres'
      ? (pairs: string) => `json_build_object(${pairs})::text`
      : (pairs: string) => `json_object(${pairs})`;
  const emptyArray = engine === 'postgres' ? `json_build_array()` : `json_array()`;
  const firsts = `(ARRAY[${FIRST.map((n) => `'${n}'`).join(',')}])`;
  const lasts = `(ARRAY[${LAST.map((n) => `'${n}'`).join(',')}])`;
  const first =
    engine === 'postgres'
      ? `${firsts}[(i % 10) + 1]`
      : `json_extract('${JSON.stringify(FIRST)}', '$[' || (i % 10) || ']')`;
  const last =
    engine === 'postgres'
      ? `${lasts}[((i / 10) % 10) + 1]`
      : `json_extract('${JSON.stringify(LAST)}', '$[' || ((i / 10) % 10) || ']')`;
  const intDiv = (a: string, b: number) => (engine === 'postgres' ? `(${a}) / ${b}` : `(${a}) / ${b}`);
  const select = engine === 'postgres' ? `FROM ${series}` : `FROM ${series}`;
  switch (table) {
    case 'consoles':
      return `INSERT INTO consoles (id, name, channel, site, public_jwk, jkt, enrolled_at, last_seen_at, policy_version, revocation_epoch, revoked_at, revoked_reason)
        SELECT ${cat(`'con_e'`, pad('i', 6))}, ${cat(`'Teller '`, pad('i', 5))}, 'branch-kiosk', ${cat(`'Branch '`, pad(`i % ${SITES}`, 3))},
          '{}', ${cat(`'jkt-e'`, pad('i', 6))}, ${BASE} + i * 1000, ${BASE} + i * 7, 1, 0,
          CASE WHEN i % 97 = 0 THEN ${BASE} ELSE NULL END, CASE WHEN i % 97 = 0 THEN 'retired' ELSE NULL END ${select}`;
    case 'operators':
      return `INSERT INTO operators (id, display_name, roles, webauthn_user_id, created_at, failed_attempts, revoked_at, revoked_reason)
        SELECT ${cat(`'op_e'`, pad('i', 6))}, ${cat(first, `' '`, last, `' '`, pad(intDiv('i', 100), 3))},
          CASE WHEN i % 100 = 0 THEN '["teller","supervisor"]' ELSE '["teller"]' END, ${cat(`'wa-e'`, pad('i', 6))},
          ${BASE} + i * 1000, 0, CASE WHEN i % 53 = 0 THEN ${BASE} ELSE NULL END, CASE WHEN i % 53 = 0 THEN 'left' ELSE NULL END ${select}`;
    case 'sessions':
      return `INSERT INTO sessions (id, operator_id, console_id, channel, credential_id, level, auth_time, started_at, expires_at, state, suspended_at, ended_at, end_reason)
        SELECT ${cat(`'ses_e'`, pad('i', 7))}, ${cat(`'op_e'`, pad(`i % ${OPERATORS}`, 6))}, ${cat(`'con_e'`, pad(`i % ${CONSOLES}`, 6))},
          'branch-kiosk', 'cred_e', 'verified', ${BASE} + i * 5000, ${BASE} + i * 5000,
          CASE WHEN i % 10 = 0 THEN ${LIVE_UNTIL} ELSE ${BASE} + i * 5000 + 28800000 END,
          CASE WHEN i % 10 = 0 THEN 'active' ELSE 'ended' END, NULL, CASE WHEN i % 10 = 0 THEN NULL ELSE ${BASE} + i * 5000 + 600000 END,
          CASE WHEN i % 10 = 0 THEN NULL ELSE 'sign-out' END ${select}`;
    case 'events': {
      const op = cat(`'op_e'`, pad(`(i * 7) % ${OPERATORS}`, 6));
      const con = cat(`'con_e'`, pad(`i % ${CONSOLES}`, 6));
      const time = `${BASE} + i * 30`;
      const outcome = `CASE WHEN i % 20 = 0 THEN 'failure' ELSE 'success' END`;
      const body = json(
        `'id', ${cat(`'00000000-0000-4000-8000-'`, hex12)}, 'seq', i + 1, 'time', ${time}, 'type', ${typeCase()},
         'subject', ${engine === 'postgres' ? `json_build_object('operator', ${op}, 'console', ${con})` : json(`'operator', ${op}, 'console', ${con}`)}, 'outcome', ${outcome}, 'reasons', ${emptyArray},
         'prevHash', '${'0'.repeat(64)}'`,
      );
      return `INSERT INTO events (origin, seq, id, time, received_at, type, outcome, operator_id, console_id, session_id, body, hash, integrity)
        SELECT 'bench:seed', i + 1, ${cat(`'00000000-0000-4000-8000-'`, hex12)}, ${time}, ${time}, ${typeCase()}, ${outcome},
          ${op}, ${con}, NULL, ${body}, '${'0'.repeat(64)}', NULL ${select}`;
    }
  }
}

async function seed(engine: Engine, run: (statement: string) => Promise<void>): Promise<Record<string, number>> {
  const took: Record<string, number> = {};
  for (const [table, total] of [
    ['consoles', CONSOLES],
    ['operators', OPERATORS],
    ['sessions', SESSIONS],
    ['events', EVENTS],
  ] as const) {
    const started = wallMs();
    for (let from = 0; from < total; from += CHUNK) {
      await run(seedStatements(engine, from, Math.min(total, from + CHUNK), table));
      if (table === 'events') process.stdout.write(`\r  ${engine}: ${fmtInt(Math.min(total, from + CHUNK))} events`);
    }
    took[table] = wallMs() - started;
    console.log(`\n  ${engine}: seeded ${fmtInt(total)} ${table} in ${fmt(took[table] / 1000, 1)} s`);
  }
  return took;
}

function cursor(t: string, s: string, o: string, k: [string | number, string | number]): string {
  return Buffer.from(JSON.stringify({ t, s, o, d: 'a', k }), 'utf8').toString('base64url');
}

/** The page queries measured: label → path. */
function queries(): [string, string][] {
  const midEvent = Math.floor(EVENTS / 2);
  const midOp = `op_e${String(Math.floor(OPERATORS / 2)).padStart(6, '0')}`;
  const enc = encodeURIComponent;
  return [
    ['consoles: first page (by name)', '/v1/admin/consoles?sort=name&limit=50'],
    [
      'consoles: deep page (cursor)',
      `/v1/admin/consoles?sort=name&limit=50&cursor=${cursor('consoles', 'name', 'asc', ['teller 05000', 'con_e005000'])}`,
    ],
    ['consoles: search by name', `/v1/admin/consoles?q=${enc('Teller 0421')}&limit=50`],
    ['consoles: filtered (site, active)', `/v1/admin/consoles?site=${enc('Branch 042')}&state=active&limit=50`],
    ['operators: first page (by name)', '/v1/admin/operators?sort=name&limit=50'],
    [
      'operators: deep page (cursor)',
      `/v1/admin/operators?sort=name&limit=50&cursor=${cursor('operators', 'name', 'asc', ['kim brown 250', midOp])}`,
    ],
    ['operators: search by name', `/v1/admin/operators?q=${enc('robin khan')}&limit=50`],
    ['operators: filtered (role, active)', '/v1/admin/operators?role=supervisor&state=active&limit=50'],
    ['sessions: first page (newest)', '/v1/admin/sessions?limit=50'],
    [
      'sessions: deep page (cursor)',
      `/v1/admin/sessions?limit=50&cursor=${cursor('sessions', 'started', 'desc', [BASE + (SESSIONS / 2) * 5000, `ses_e${String(SESSIONS / 2).padStart(7, '0')}`])}`,
    ],
    ['sessions: by operator name', `/v1/admin/sessions?operator=${enc('Sam Jones 250')}&limit=50`],
    ['sessions: filtered (active, site)', `/v1/admin/sessions?state=active&site=${enc('Branch 007')}&limit=50`],
    ['events: first page (newest)', '/v1/admin/events?order=desc&limit=50'],
    [
      'events: deep page (cursor)',
      `/v1/admin/events?order=desc&limit=50&cursor=${cursor('events', 'received', 'desc', [midEvent, midEvent])}`,
    ],
    ['events: search by operator name', `/v1/admin/events?q=${enc('Robin Khan 250')}&limit=50`],
    ['events: by console name', `/v1/admin/events?console=${enc('Teller 04242')}&sort=received&limit=50`],
    ['events: filtered (type, failure)', `/v1/admin/events?type=${TYPES[4]}&outcome=failure&sort=received&limit=50`],
    ['events: filtered (site)', `/v1/admin/events?site=${enc('Branch 042')}&limit=50`],
  ];
}

async function measure(
  t: TestBackend,
): Promise<{ label: string; p50: number; p95: number; max: number; rows: number; cpuMs: number }[]> {
  const results = [];
  // The anchor: the cheapest admin read (one row), asked the same way in the same run. Under a load of 20 on
  // 2 cores every figure grows with the load; the ratio to the anchor and the CPU per page much less.
  for (const [label, path] of [['anchor: current policy (one row)', '/v1/admin/policy'] as const, ...queries()]) {
    let rows = 0;
    let cpuMs = 0;
    const once = async () => {
      const cpu = process.cpuUsage();
      const started = wallMs();
      const response = await fetch(`${t.url}${path}`, { headers: { authorization: `Bearer ${t.admin.token}` } });
      const body = (await response.json()) as Record<string, unknown>;
      const ms = wallMs() - started;
      if (response.status !== 200) throw new Error(`${path} → ${response.status} ${JSON.stringify(body)}`);
      const list = Object.values(body).find(Array.isArray) as unknown[] | undefined;
      rows = list?.length ?? 0;
      const used = process.cpuUsage(cpu);
      cpuMs += (used.user + used.system) / 1000;
      return ms;
    };
    const samples: number[] = [];
    try {
      for (let i = 0; i < 3; i++) await once();
      cpuMs = 0;
      for (let i = 0; i < SAMPLES; i++) samples.push(await once());
    } catch (error) {
      // A failed query is reported (with the store's own error, which the silent backend log hides) and
      // the others still measured.
      console.log(`  ${label}: FAILED ${error instanceof Error ? error.message : String(error)}`);
      if (path.startsWith('/v1/admin/events')) {
        await eventsPage(t.backend.services.store, {}, { order: 'desc', limit: 50 }).catch((cause: unknown) =>
          console.log('  the store says:', cause),
        );
      }
      results.push({ label, p50: Number.NaN, p95: Number.NaN, max: Number.NaN, rows: -1, cpuMs: Number.NaN });
      continue;
    }
    const s = summarize(samples);
    results.push({ label, p50: s.p50, p95: s.p95, max: s.max, rows, cpuMs: cpuMs / SAMPLES });
    console.log(
      `  ${label}: p50 ${fmt(s.p50)} ms, p95 ${fmt(s.p95)} ms, backend CPU ${fmt(cpuMs / SAMPLES)} ms/page (${rows} rows)`,
    );
  }
  return results;
}

/** Waits until this process used under 10 % of a core for 3 seconds in a row (at most 20 minutes); returns the wait. */
async function waitQuiet(): Promise<number> {
  const started = wallMs();
  let quiet = 0;
  let last = process.cpuUsage();
  while (quiet < 3 && wallMs() - started < 20 * 60_000) {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const now = process.cpuUsage();
    const used = (now.user - last.user + now.system - last.system) / 1000;
    last = now;
    quiet = used < 100 ? quiet + 1 : 0;
  }
  return wallMs() - started;
}

async function runEngine(engine: Engine): Promise<void> {
  heading(`Admin console at estate scale — ${engine}`);
  let server: PostgresServer | undefined;
  let t: TestBackend | undefined;
  let dataDir: string | undefined;
  try {
    let databaseUrl: string | undefined;
    if (engine === 'postgres') {
      const explain: Record<string, string> =
        EXPLAIN_MS === undefined
          ? {}
          : {
              shared_preload_libraries: 'auto_explain',
              'auto_explain.log_min_duration': `${EXPLAIN_MS}ms`,
              'auto_explain.log_analyze': 'on',
              'auto_explain.log_buffers': 'on',
            };
      server = await startPostgres({ settings: { max_wal_size: '4GB', checkpoint_timeout: '30min', ...explain } });
      databaseUrl = await createDatabase(server.url, 'baton_estate');
    }
    dataDir = mkdtempSync(join(tmpdir(), 'baton-estate-'));
    const where = databaseUrl === undefined ? { dataDir } : { dataDir, databaseUrl };
    t = await startTestBackend(where);
    const db: Kysely<BatonDatabase> | undefined = kyselyOf(t.backend.services.store);
    let client: pg.Client | undefined;
    if (engine === 'postgres') {
      client = new pg.Client({ connectionString: databaseUrl });
      await client.connect();
      await client.query('SET statement_timeout = 0');
    }
    const run = async (statement: string) => {
      if (client !== undefined) await client.query(statement);
      else if (db !== undefined) await sql.raw(statement).execute(db);
    };
    const took = await seed(engine, run);
    const analyzeStarted = wallMs();
    // On PostgreSQL also VACUUM: otherwise autovacuum wakes up on the freshly loaded tables and competes with the
    // first minute of measuring (seen: the first four queries at p95 430–510 ms, the rest at 12–140 ms).
    await run(engine === 'postgres' ? 'VACUUM ANALYZE' : 'ANALYZE');
    console.log(
      `  ${engine}: ${engine === 'postgres' ? 'VACUUM ' : ''}ANALYZE in ${fmt((wallMs() - analyzeStarted) / 1000, 1)} s`,
    );
    // The backend was running while the rows were loaded behind its back: its event followers (the live feed, the
    // Shared Signals fan-out) would now read every loaded event once, for minutes (65 s for 200,000 at load 16),
    // and measuring then measured that catch-up (the first lists measured, the consoles', paid most). An estate
    // that grew over months has its followers at the log's head: the fan-out's cursor is set there and the
    // backend restarted on the same database (its live feed starts at the head).
    await run(`UPDATE meta SET value = (SELECT CAST(MAX(cursor) AS TEXT) FROM events) WHERE key = 'ssf:fanout-cursor'`);
    await client?.end();
    const adminToken = t.admin.token;
    await t.stop();
    t = await startTestBackend(where, { adminToken });
    const quietIn = await waitQuiet();
    console.log(`  ${engine}: backend restarted; quiet after ${fmt(quietIn / 1000, 1)} s`);
    console.log(`  load before measuring: ${execSync('uptime').toString().trim()}`);
    const results = await measure(t);
    console.log(`  load after measuring: ${execSync('uptime').toString().trim()}`);
    const anchor = results[0]?.p50 ?? Number.NaN;
    printTable(
      `${engine}: ${fmtInt(CONSOLES)} consoles, ${fmtInt(OPERATORS)} operators, ${fmtInt(SESSIONS)} sessions, ${fmtInt(EVENTS)} events; ${SAMPLES} samples each`,
      ['query', 'p50 ms', 'p95 ms', 'max ms', 'p50 ÷ anchor', 'backend CPU ms/page', 'rows', `p95 ≤ ${GOAL_P95_MS} ms`],
      results.map((r) => [
        r.label,
        fmt(r.p50),
        fmt(r.p95),
        fmt(r.max),
        fmt(r.p50 / anchor, 1),
        fmt(r.cpuMs),
        String(r.rows),
        r.rows < 0 ? 'FAILED' : r.p95 <= GOAL_P95_MS ? 'met' : 'MISSED',
      ]),
    );
    printJsonLine('admin-estate', {
      engine,
      consoles: CONSOLES,
      operators: OPERATORS,
      sessions: SESSIONS,
      events: EVENTS,
      seedMs: took,
      results,
    });
  } finally {
    await t?.stop();
    if (dataDir !== undefined) rmSync(dataDir, { recursive: true, force: true });
    if (server !== undefined && EXPLAIN_MS !== undefined) {
      const log = readFileSync(join(server.dir, 'log'), 'utf8');
      console.log(`\n  plans slower than ${EXPLAIN_MS} ms (auto_explain):\n${log}`);
    }
    await server?.stop();
  }
}

console.log(machineLine());
console.log(`uptime: ${execSync('uptime').toString().trim()}`);
for (const engine of ENGINE === 'both' ? (['sqlite', 'postgres'] as const) : ([ENGINE as Engine] as const)) {
  await runEngine(engine);
}
