import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { openPostgresStore } from './postgres-store.js';
import { createDatabase, postgresSkip, startPostgres, type PostgresServer } from './postgres-throwaway.js';

/**
 * A node stopped (SIGSTOP, a paused VM) in the middle of its database work, with real processes: the fixture
 * (postgres-freeze.fixture.ts) holds the store, the test stops and wakes it.
 *
 * - When a stopped process resumes, its timers run before it reads its sockets: a client-side read timeout that
 *   judged at once failed a statement the server had answered meanwhile (the unit rolled back, the caller told
 *   DATABASE_UNREACHABLE: a console's batch refused, an admin's request answered 503 just after a freeze). The
 *   store's read timeout waits for one more turn of the event loop's I/O before it judges.
 * - A unit left open by a stopped node holds its row locks, above all the backend's chain head, which every
 *   node's sign-in waits for: the server ends it after twice the statement timeout (it was 30 s).
 */

const FIXTURE = join(import.meta.dirname, 'postgres-freeze.fixture.ts');
/** The fixture's read timeout (its 5 s statement timeout + 1 s) and its idle-in-transaction bound (twice 5 s). */
const READ_TIMEOUT_MS = 6_000;
const IDLE_BOUND_MS = 10_000;
/** The fixture's wait for a connection from its pool of two. */
const CONNECT_WAIT_MS = 3_000;
const skip = postgresSkip();

type Outcome = { ok: boolean; value?: unknown; error?: string };

/** The fixture process: `send` a line, `next(key)` takes the first line it printed with that key. */
function startFixture(url: string) {
  const child = spawn(process.execPath, ['--import', 'tsx', FIXTURE], {
    env: { ...process.env, BATON_FREEZE_URL: url },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  // A fixture that died: its exit and output tell why, not an EPIPE on the next line written to it.
  child.stdin.on('error', () => undefined);
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const lines: Record<string, unknown>[] = [];
  let wake: (() => void) | undefined;
  createInterface({ input: child.stdout }).on('line', (line) => {
    lines.push(JSON.parse(line) as Record<string, unknown>);
    wake?.();
  });
  return {
    child,
    send: (line: string) => child.stdin.write(`${line}\n`),
    async next(key: string): Promise<unknown> {
      const deadline = Date.now() + 30_000;
      for (;;) {
        const at = lines.findIndex((l) => key in l);
        if (at >= 0) return lines.splice(at, 1)[0]?.[key];
        assert.ok(Date.now() < deadline, `the fixture printed no "${key}": ${JSON.stringify(lines)}`);
        await new Promise<void>((resolve) => {
          wake = resolve;
          setTimeout(resolve, 100);
        });
      }
    },
    async stop(): Promise<void> {
      child.kill('SIGCONT');
      child.stdin.end('quit\n');
      const patience = new AbortController();
      await Promise.race([
        exited,
        sleep(10_000, undefined, { signal: patience.signal }).then(
          () => child.kill('SIGKILL'),
          () => undefined,
        ),
      ]);
      patience.abort();
    },
  };
}

/** Until `n` sessions of the database wait for a row lock (the fixture's units wait for the held rows). */
async function lockWaits(watcher: pg.Client, n: number): Promise<void> {
  for (let i = 0; ; i++) {
    const { rows } = await watcher.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`,
    );
    if ((rows[0]?.n ?? 0) >= n) return;
    assert.ok(i < 500, `the fixture’s units never waited for the held rows (${rows[0]?.n ?? 0} of ${n})`);
    await sleep(5);
  }
}

describe('the PostgreSQL store across a freeze of its own process', { skip }, () => {
  let server: PostgresServer | undefined;
  before(async () => {
    server = await startPostgres();
  });
  after(async () => {
    await server?.stop();
  });

  /**
   * The fixture runs `command`, whose units wait for the `held` rows, inserted by another session and not committed;
   * once they all wait, the fixture is stopped and the rows released: the server answers the units now, and the
   * answers wait in the stopped process's socket. After `stopMs` (the freeze injected, not a wait for an outcome) it
   * is woken, and `check` reads what it printed.
   */
  async function answeredWhileStopped(
    database: string,
    scene: { held: string[]; command: string; stopMs: number },
    check: (fixture: ReturnType<typeof startFixture>, watcher: pg.Client) => Promise<void>,
  ): Promise<void> {
    const url = await createDatabase(server!.url, database, { migrated: true });
    const holder = new pg.Client({ connectionString: url });
    // Not the holder: inside a transaction pg_stat_activity is read once and kept.
    const watcher = new pg.Client({ connectionString: url });
    await holder.connect();
    await watcher.connect();
    const fixture = startFixture(url);
    try {
      await fixture.next('ready');
      await holder.query('BEGIN');
      for (const key of scene.held) await holder.query(`INSERT INTO meta (key, value) VALUES ($1, 'held')`, [key]);
      fixture.send(scene.command);
      await lockWaits(watcher, scene.held.length);
      fixture.child.kill('SIGSTOP');
      await holder.query('ROLLBACK');
      await sleep(scene.stopMs);
      fixture.child.kill('SIGCONT');
      await check(fixture, watcher);
    } finally {
      await fixture.stop();
      await holder.end();
      await watcher.end();
    }
  }

  it('a unit of work whose statement the server answered while the process was stopped commits when it wakes', async () => {
    // Past the read timeout, short of the idle bound.
    const scene = { held: ['frozen'], command: 'write', stopMs: READ_TIMEOUT_MS + 1_500 };
    await answeredWhileStopped('frozen_answer', scene, async (fixture, watcher) => {
      assert.deepEqual(await fixture.next('unit'), { ok: true }, 'the unit of work failed after the freeze');
      assert.deepEqual(await fixture.next('after'), { ok: true, value: 'committed by the unit' });
      const { rows } = await watcher.query<{ value: string }>(`SELECT value FROM meta WHERE key = 'frozen'`);
      assert.deepEqual(rows, [{ value: 'committed by the unit' }], 'what the database holds');
    });
  });

  it('a unit waiting for a pooled connection when the process was stopped gets one when it wakes', async () => {
    // Units 1 and 2 hold the pool's two connections and wait for their rows; unit 3 waits for a connection. Units 1
    // and 2 commit and give their connections back only once awake. The stop: past the 3 s wait for a connection,
    // short of the 6 s read timeout.
    const scene = { held: ['frozen-1', 'frozen-2'], command: 'write-three', stopMs: CONNECT_WAIT_MS + 1_500 };
    await answeredWhileStopped('frozen_pool_wait', scene, async (fixture) => {
      assert.deepEqual(
        await fixture.next('units'),
        [{ ok: true }, { ok: true }, { ok: true }],
        'a unit failed after the freeze (pg-pool’s wait judged before the other units read their answers)',
      );
      assert.deepEqual(await fixture.next('after'), { ok: true, value: ['unit 1', 'unit 2', 'unit 3'] });
    });
  });

  it('a stopped node’s unit holding the backend’s chain head is ended by the server; the woken node serves again', async () => {
    const url = await createDatabase(server!.url, 'frozen_head', { migrated: true });
    const fixture = startFixture(url);
    // Its statement outlasts the stopped unit's idle bound.
    const other = await openPostgresStore({ url, statementTimeoutMs: 2 * IDLE_BOUND_MS });
    try {
      await fixture.next('ready');
      fixture.send('hold-head');
      await fixture.next('holding');
      fixture.child.kill('SIGSTOP');
      // Another node's unit that records a backend fact: it takes the same head.
      const started = Date.now();
      const head = await other.transaction((tx) => tx.events.lockHead('backend'));
      const waited = Date.now() - started;
      assert.ok(head !== undefined, 'the other node got the head');
      assert.ok(
        waited >= IDLE_BOUND_MS / 2 && waited < 2 * IDLE_BOUND_MS,
        `the other node waited for the stopped node's unit until the server ended it (${waited} ms)`,
      );
      await sleep(1_000); // the rest of the freeze: the fault injected
      fixture.child.kill('SIGCONT');
      fixture.send('commit');
      const unit = (await fixture.next('unit')) as Outcome;
      assert.equal(unit.ok, false, 'the stopped node’s unit cannot commit after the server ended it');
      assert.match(String(unit.error), /idle-in-transaction|terminat|Connection/i);
      assert.deepEqual(await fixture.next('after'), { ok: true }, 'the woken node’s next read works');
      assert.equal(await other.meta.get('frozen'), undefined, 'nothing of the ended unit is stored');
    } finally {
      await fixture.stop();
      await other.close();
    }
  });
});
