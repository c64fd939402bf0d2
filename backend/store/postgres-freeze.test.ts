import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { createDatabase, postgresSkip, startPostgres, type PostgresServer } from './postgres-throwaway.js';

/**
 * A node that was itself stopped (SIGSTOP, a paused VM) while a statement was in flight: when it resumes, its
 * timers run before it reads its sockets, so a client-side read timeout that judged at once failed the statement
 * the server had answered meanwhile — the unit of work rolled back, the caller told DATABASE_UNREACHABLE, and so
 * a console's batch refused or an admin's request answered 503 just after a freeze. The store's read timeout
 * waits for one more turn of the event loop's I/O before it judges. Real processes: the fixture's unit waits for a
 * row another session holds, the test stops the fixture, lets the row go (the server completes the statement), and
 * wakes it after FREEZE_MS, longer than its 2.5 s read timeout.
 */

const FIXTURE = join(import.meta.dirname, 'postgres-freeze.fixture.ts');
const FREEZE_MS = 4_000;
const skip = postgresSkip();

describe('the PostgreSQL store across a freeze of its own process', { skip }, () => {
  let server: PostgresServer | undefined;
  before(async () => {
    server = await startPostgres();
  });
  after(async () => {
    await server?.stop();
  });

  it('a unit of work whose statement the server answered while the process was stopped commits when it wakes', async () => {
    const url = await createDatabase(server!.url, 'frozen_store', { migrated: true });
    const holder = new pg.Client({ connectionString: url });
    // Not the holder: inside a transaction pg_stat_activity is read once and kept.
    const watcher = new pg.Client({ connectionString: url });
    await holder.connect();
    await watcher.connect();
    const child = spawn(process.execPath, ['--import', 'tsx', FIXTURE], {
      env: { ...process.env, BATON_FREEZE_URL: url },
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    const exited = new Promise((resolve) => child.once('exit', resolve));
    const lines: Record<string, { ok: boolean; value?: unknown; error?: string } | true>[] = [];
    let wake: (() => void) | undefined;
    createInterface({ input: child.stdout }).on('line', (line) => {
      lines.push(JSON.parse(line) as (typeof lines)[number]);
      wake?.();
    });
    const next = async (key: string) => {
      const deadline = Date.now() + 30_000;
      for (;;) {
        const found = lines.find((l) => key in l);
        if (found !== undefined) return found[key];
        assert.ok(Date.now() < deadline, `the fixture printed no "${key}": ${JSON.stringify(lines)}`);
        await new Promise<void>((resolve) => {
          wake = resolve;
          setTimeout(resolve, 100);
        });
      }
    };
    try {
      await next('ready');
      // The row the unit writes, inserted and not committed: the unit's statement waits for it.
      await holder.query('BEGIN');
      await holder.query(`INSERT INTO meta (key, value) VALUES ('frozen', 'held by another session')`);
      child.stdin.write('go\n');
      for (let i = 0; ; i++) {
        const { rows } = await watcher.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`,
        );
        if ((rows[0]?.n ?? 0) > 0) break;
        assert.ok(i < 500, `the fixture’s unit never waited for the held row: ${JSON.stringify(lines)}`);
        await sleep(5);
      }
      child.kill('SIGSTOP');
      // The server completes the unit's statement now; its answer waits in the stopped process's socket.
      await holder.query('ROLLBACK');
      await sleep(FREEZE_MS); // the length of the freeze: the fault injected, not a wait for an outcome
      child.kill('SIGCONT');
      assert.deepEqual(await next('unit'), { ok: true }, 'the unit of work failed after the freeze');
      assert.deepEqual(await next('after'), { ok: true, value: 'committed by the unit' });
      const { rows } = await holder.query<{ value: string }>(`SELECT value FROM meta WHERE key = 'frozen'`);
      assert.deepEqual(rows, [{ value: 'committed by the unit' }], 'what the database holds');
    } finally {
      child.kill('SIGCONT');
      child.stdin.end();
      await Promise.race([exited, sleep(10_000).then(() => child.kill('SIGKILL'))]);
      await holder.end();
      await watcher.end();
    }
  });
});
