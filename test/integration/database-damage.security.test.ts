import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, mkdtempSync, openSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { DATABASE_FILE } from '../../backend/store/sqlite-store.js';
import { type Json, httpJson, startTestBackend } from '../helpers/backend-harness.js';
import { spawnBackend } from '../helpers/backend-process.js';
import { sqliteOnly } from '../helpers/test-database.js';

const ROOT = join(import.meta.dirname, '..', '..');
const ORIGIN = 'http://localhost:8471';
const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function freshDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'baton-damage-'));
  dirs.push(dir);
  return dir;
}

/** Runs the real backend CLI until it exits; its output is piped, never inherited. */
function runUntilExit(dataDir: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', join(ROOT, 'backend', 'cli.ts'), '--port', '0', '--data-dir', dataDir, '--origin', ORIGIN],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  return new Promise((resolve) =>
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    }),
  );
}

// SQLite only: this is about the embedded database file itself (random bytes, overwritten pages,
// the data directory's mode, PRAGMA quick_check). PostgreSQL keeps its own files and checksums, and
// an unreachable PostgreSQL is covered by the cluster tests.
describe('a damaged database file', { skip: sqliteOnly('damage to the embedded SQLite database file') }, () => {
  it('of random bytes stops the start with one line naming the file and a stable code, no stack trace', async () => {
    const dataDir = freshDir();
    const file = join(dataDir, DATABASE_FILE);
    writeFileSync(file, randomBytes(64 * 1024));
    const { code, stdout, stderr } = await runUntilExit(dataDir);
    assert.notEqual(code, 0);
    assert.equal(code, 1);
    const lines = `${stdout}${stderr}`.trim().split('\n');
    assert.equal(lines.length, 1, `one line, got:\n${stdout}${stderr}`);
    assert.match(lines[0] ?? '', /^DATABASE_UNREADABLE: /);
    assert.ok(lines[0]?.includes(file), lines[0]);
    assert.doesNotMatch(`${stdout}${stderr}`, /\n\s+at /);
  });

  it('with two pages overwritten starts, reports the damage on /healthz and in verify, and answers DATABASE_DAMAGED instead of INTERNAL', async () => {
    const dataDir = freshDir();
    const tokenFile = join(dataDir, 'bootstrap-token');
    // A real database with enough events to span many pages.
    const t = await startTestBackend({ dataDir, bootstrapTokenFile: tokenFile });
    const token = t.admin.token;
    await t.backend.events.atomically(async (uow) => {
      for (let i = 0; i < 3000; i++) {
        await uow.record({
          type: 'admin-action',
          subject: {},
          outcome: 'success',
          reasons: ['filler'],
          detail: { text: 'y'.repeat(300), n: i },
        });
      }
    });
    await t.stop();
    // The Shared Signals fan-out's stored cursor may lag the log at a stop (it is written behind the events): put
    // it at the start, so the next start's catch-up reads every event, the damaged pages included. That catch-up
    // failing must not stop the start (it is retried by the transmitter's sweep).
    {
      const raw = new Database(join(dataDir, DATABASE_FILE));
      raw
        .prepare(
          "INSERT INTO meta (key, value) VALUES ('ssf:fanout-cursor', '0') ON CONFLICT (key) DO UPDATE SET value = '0'",
        )
        .run();
      raw.close();
    }

    const file = join(dataDir, DATABASE_FILE);
    const pages = Math.floor(statSync(file).size / 4096);
    const fd = openSync(file, 'r+');
    for (const page of [Math.floor(pages * 0.4), Math.floor(pages * 0.6)]) {
      writeSync(fd, randomBytes(4096), 0, 4096, page * 4096);
    }
    closeSync(fd);
    // Someone loosened the data directory: the backend makes it private again.
    chmodSync(dataDir, 0o755);

    const backend = await spawnBackend({ dataDir, tokenFile, origin: ORIGIN });
    try {
      assert.equal(statSync(dataDir).mode & 0o777, 0o700);
      let health: Json;
      for (let i = 0; ; i++) {
        health = await httpJson(`${backend.url}/healthz`, { method: 'GET' });
        if (health.body.database?.state !== 'checking' && health.body.database?.state !== 'unchecked') break;
        if (i > 200) assert.fail(`the integrity check did not finish: ${JSON.stringify(health.body)}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      assert.equal(health.status, 503, JSON.stringify(health.body));
      assert.equal(health.body.status, 'degraded');
      assert.equal(health.body.database.state, 'damaged');
      assert.doesNotMatch(JSON.stringify(health.body), new RegExp(dataDir)); // public: no file path
      assert.ok(health.body.database.problems.length > 0);

      const auth = { authorization: `Bearer ${token}` };
      const report = await httpJson(`${backend.url}/v1/admin/events/verify?origin=backend`, {
        method: 'GET',
        headers: auth,
      });
      assert.equal(report.status, 200, JSON.stringify(report.body));
      assert.equal(report.body.intact, false);
      assert.ok(report.body.problems.some((p: Json) => p.problem === 'database-damaged'));

      // Listing every event runs into a damaged page: a stable code, not INTERNAL.
      let after = 0;
      let failure: Json;
      for (let i = 0; i < 10 && failure === undefined; i++) {
        const page = await httpJson(`${backend.url}/v1/admin/events?limit=1000&after=${after}`, {
          method: 'GET',
          headers: auth,
        });
        if (page.status !== 200) failure = page;
        else if (page.body.events.length === 0) break;
        else after = page.body.nextCursor as number;
      }
      assert.ok(failure !== undefined, 'a listing crossing the damaged pages fails');
      assert.equal(failure.status, 500);
      assert.equal(failure.body.error.code, 'DATABASE_DAMAGED');
    } finally {
      backend.child.kill('SIGTERM');
      await backend.exited;
    }
  });
});
