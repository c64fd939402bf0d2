import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { LOCK_FILE } from '../../backend/data-dir-lock.js';
import { AdminBrowser } from '../helpers/admin-session.js';
import { AdminClient } from '../helpers/backend-harness.js';
import { readToken, spawnBackend, type BackendProcess } from '../helpers/backend-process.js';
import { sqliteOnly } from '../helpers/test-database.js';

const ROOT = join(import.meta.dirname, '..', '..');

/** Runs the backend CLI to its end (it is expected to refuse to start) and returns its exit code and stderr. */
function runToExit(args: string[]): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'backend', 'cli.ts'), ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  child.stdout.resume();
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code, stderr })));
}

async function stop(backend: BackendProcess): Promise<void> {
  backend.child.kill('SIGTERM');
  await backend.exited;
}

/**
 * Two real backend processes on one data directory (a second `npm start` while one runs): the
 * second refuses to start, with one line and a stable code, before it changes anything; the running
 * backend's admins stay signed in. A lock left by a process that is gone is taken over.
 * SQLite only: the lock guards the embedded database file, which one process may write; on
 * PostgreSQL several nodes share one database by design (the cluster tests cover them).
 */
describe(
  'a second backend on the same data directory',
  { skip: sqliteOnly('the data-directory lock guards the embedded SQLite database') },
  () => {
    const dir = mkdtempSync(join(tmpdir(), 'baton-second-start-'));
    const dataDir = join(dir, 'data');
    const tokenFile = join(dir, 'bootstrap-token');
    after(() => rmSync(dir, { recursive: true, force: true }));

    it('is refused with DATA_DIR_LOCKED and signs no admin out of the running backend', async () => {
      const first = await spawnBackend({ dataDir, tokenFile, origin: 'http://localhost:1' });
      try {
        const port = new URL(first.url).port;
        const admin = new AdminClient(first.url, readToken(tokenFile));
        const { code } = await admin.ok('POST', '/v1/admin/bootstrap', { id: 'grace', displayName: 'Grace Admin' });
        const grace = new AdminBrowser(first.url, `http://localhost:${port}`);
        assert.equal((await grace.register(code as string)).status, 201);
        assert.equal((await grace.request('GET', '/v1/admin/consoles')).status, 200);
        assert.equal(readFileSync(join(dataDir, LOCK_FILE), 'utf8').trim(), String(first.child.pid));

        // Same data directory and same port, as a second `npm start` would be.
        const args = ['--port', port, '--data-dir', dataDir, '--origin', 'http://localhost:1', '--log-level', 'info'];
        const second = await runToExit(args);
        assert.equal(second.code, 1);
        const lines = second.stderr.trim().split('\n');
        assert.equal(lines.length, 1, second.stderr);
        assert.match(
          lines[0] ?? '',
          /^DATA_DIR_LOCKED: The data directory .* is in use by another Baton backend \(pid \d+\)/,
        );
        assert.ok(lines[0]?.includes(`pid ${first.child.pid}`));

        // A second start on another data directory but the busy port: refused for the port, nothing here touched.
        const other = await runToExit([...args.slice(0, 2), '--data-dir', join(dir, 'other'), ...args.slice(4)]);
        assert.equal(other.code, 1);

        // The running backend's admin is still signed in, and its lock is still its own.
        const still = await grace.request('GET', '/v1/admin/consoles');
        assert.equal(still.status, 200, JSON.stringify(still.body));
        assert.equal(readFileSync(join(dataDir, LOCK_FILE), 'utf8').trim(), String(first.child.pid));
      } finally {
        await stop(first);
      }
      // A clean stop leaves no lock behind.
      assert.equal(existsSync(join(dataDir, LOCK_FILE)), false);
    });

    it('takes over a lock left by a process that is gone', async () => {
      // A pid far above any the kernel hands out here: no such process.
      writeFileSync(join(dataDir, LOCK_FILE), '4194303\n');
      const backend = await spawnBackend({ dataDir, tokenFile, origin: 'http://localhost:1' });
      try {
        assert.equal(readFileSync(join(dataDir, LOCK_FILE), 'utf8').trim(), String(backend.child.pid));
      } finally {
        await stop(backend);
      }
    });
  },
);
