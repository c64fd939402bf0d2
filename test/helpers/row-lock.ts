import assert from 'node:assert/strict';
import { postgresSkip } from './postgres-server.js';
import type { RawDatabase } from './raw-database.js';
import { TEST_ENGINE } from './test-database.js';

/**
 * Another PostgreSQL session's uncommitted write (what a second node's unit of work is to this one), and a call to
 * the backend racing it: `holder` opens a transaction and runs `hold` (it takes row locks and writes, uncommitted);
 * `call` starts; this waits until a statement of the backend waits for a lock the holder has (polling
 * pg_stat_activity through `watcher`: the outcome, not a timer) and checks that it is `blocked` (a pattern of its
 * SQL) and that the call has not answered meanwhile; runs `whileBlocked`; then the holder commits and the call's
 * answer is returned.
 */
export async function answerWhileHeld<T>(
  holder: RawDatabase,
  watcher: RawDatabase,
  hold: () => Promise<void>,
  call: () => Promise<T>,
  blocked: RegExp,
  /** Runs once the call is seen waiting, before the holder commits (e.g. moves a test clock). */
  whileBlocked?: () => void,
  /** How many of the backend's statements must be seen waiting (a call making several requests at once). */
  waiters = 1,
): Promise<T> {
  const pid = (await holder.get<{ pid: number }>('SELECT pg_backend_pid() AS pid'))?.pid;
  assert.equal(typeof pid, 'number');
  await holder.exec('BEGIN');
  let committed = false;
  try {
    await hold();
    let settled = false;
    // Kept settled (never an unhandled rejection while the row is held); its failure is thrown after the commit.
    const answer = call().then(
      (result) => ((settled = true), { result }),
      (error: unknown) => ((settled = true), { error }),
    );
    const deadline = Date.now() + 30_000;
    let seen: string[] = [];
    for (;;) {
      assert.ok(!settled, 'the call answered while another session held the row: it did not wait');
      // Waiting for the holder, directly or behind another waiter for it (a second waiter for one row waits on the
      // first one's tuple lock).
      const all = await watcher.all<{ pid: number; query: string; blockers: number[] }>(
        `SELECT pid, query, pg_blocking_pids(pid) AS blockers FROM pg_stat_activity
         WHERE datname = current_database() AND wait_event_type = 'Lock'`,
      );
      const behind = new Set<number>([pid as number]);
      for (let grew = true; grew; ) {
        grew = false;
        for (const row of all) {
          if (!behind.has(row.pid) && row.blockers.some((b) => behind.has(b))) {
            behind.add(row.pid);
            grew = true;
          }
        }
      }
      // The statement waiting is the one named: pg_stat_activity's text can lag a moment behind the statement that
      // waits (seen once on a loaded CI host: the unit's previous statement), so it is read again until it matches.
      seen = all.filter((row) => row.pid !== pid && behind.has(row.pid)).map((row) => row.query);
      if (seen.filter((query) => blocked.test(query)).length >= waiters) break;
      assert.ok(
        Date.now() < deadline,
        `the call never waited for the held row (waiting: ${JSON.stringify(seen)}, expected ${String(blocked)})`,
      );
      await new Promise((resolve) => setTimeout(resolve, 5)); // the polling period, not a wait for the outcome
    }
    const ungranted = await watcher.all(
      'SELECT 1 FROM pg_locks WHERE NOT granted AND ? = ANY(pg_blocking_pids(pid))',
      pid,
    );
    assert.ok(ungranted.length > 0, 'a lock request blocked by the holder');
    assert.ok(!settled, 'the call answered before the holder committed');
    whileBlocked?.();
    await holder.exec('COMMIT');
    committed = true;
    const outcome = await answer;
    if ('error' in outcome) throw outcome.error;
    return outcome.result;
  } finally {
    if (!committed) await holder.exec('ROLLBACK');
  }
}

/**
 * Why a row-lock race test is skipped: it needs PostgreSQL (it runs with BATON_TEST_DATABASE=postgres; SQLite has one
 * writer, no row lock to wait for), and a server. Printed when skipped.
 */
export function rowLockSkip(): false | string {
  if (TEST_ENGINE !== 'postgres') {
    const reason =
      'PostgreSQL only (runs with BATON_TEST_DATABASE=postgres): SQLite has one writer, no row lock to wait for';
    process.stderr.write(`${reason}\n`);
    return reason;
  }
  return postgresSkip();
}
