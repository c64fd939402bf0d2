/**
 * Two REAL backend workers (`backend/cli.ts --database postgres://… --workers 2`) on a throwaway
 * PostgreSQL. Disabled until the backend runs on PostgreSQL end to end: the lead enables it by
 * setting BATON_CLUSTER_WORKERS_IT=1 (or by deleting the `disabled` guard below once it passes).
 * The supervisor logic itself is covered with fixture workers in cluster-workers.test.ts.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { describe, it } from 'node:test';
import { LOCK_FILE } from './data-dir-lock.js';
import { createDatabase, postgresSkip, startPostgres } from './store/postgres-throwaway.js';

const CLI = join(import.meta.dirname, 'cli.ts');
const disabled =
  process.env.BATON_CLUSTER_WORKERS_IT === '1'
    ? false
    : 'two real backend workers: enabled with BATON_CLUSTER_WORKERS_IT=1 once the backend runs on PostgreSQL';

describe('cluster workers: two real backend workers on PostgreSQL', { timeout: 180_000 }, () => {
  const skip = disabled || postgresSkip();
  it(
    'serve one port, share the supervisor’s lock, restart a killed worker, and stop on SIGTERM',
    { skip },
    async () => {
      const pg = await startPostgres();
      const dataDir = mkdtempSync(join(tmpdir(), 'baton-cluster-it-'));
      try {
        const url = await createDatabase(pg.url, 'baton_cluster_workers');
        const tokenFile = join(dataDir, 'bootstrap-admin-token');
        const child = spawn(
          process.execPath,
          [
            '--import',
            'tsx',
            CLI,
            ...['--database', url, '--workers', '2', '--port', '0', '--data-dir', dataDir],
            ...['--bootstrap-token-file', tokenFile, '--log-level', 'info'],
          ],
          { stdio: ['ignore', 'pipe', 'pipe'] },
        );
        const lines: string[] = [];
        const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
        const waitFor = (pattern: RegExp, timeoutMs = 60_000) =>
          new Promise<Record<string, unknown>>((resolve, reject) => {
            const check = () => {
              const line = lines.find((l) => pattern.test(l) && l.startsWith('{'));
              if (line === undefined) return false;
              clearInterval(poll);
              clearTimeout(timer);
              resolve(JSON.parse(line) as Record<string, unknown>);
              return true;
            };
            const poll = setInterval(check, 50);
            const timer = setTimeout(() => {
              clearInterval(poll);
              reject(new Error(`no line matching ${pattern}:\n${lines.join('\n')}`));
            }, timeoutMs);
          });
        for (const stream of [child.stdout, child.stderr])
          createInterface({ input: stream }).on('line', (l) => lines.push(l));
        try {
          const up = await waitFor(/baton cluster listening/);
          assert.equal(up.workers, 2);
          assert.equal(up.engine, 'postgres');
          assert.match(String(up.database), /^postgres(ql)?:\/\//);
          const nodeIds = up.nodeIds as string[];
          assert.equal(new Set(nodeIds).size, 2);
          assert.equal(readFileSync(join(dataDir, LOCK_FILE), 'utf8').trim(), String(child.pid));
          assert.ok(existsSync(tokenFile), 'one of the workers created the bootstrap token');
          const base = String(up.url);
          for (let i = 0; i < 4; i++) {
            const res = await fetch(`${base}/healthz`, { headers: { connection: 'close' } });
            assert.equal(res.status, 200);
            await res.body?.cancel();
          }
          // SIGKILL one worker: the supervisor restarts it, the other keeps serving meanwhile.
          const victim = Number(nodeIds[0]?.split(':').pop());
          process.kill(victim, 'SIGKILL');
          await waitFor(/worker restarted/);
          const res = await fetch(`${base}/healthz`, { headers: { connection: 'close' } });
          assert.equal(res.status, 200);
          await res.body?.cancel();
          child.kill('SIGTERM');
          assert.equal(await exited, 0);
          assert.ok(!existsSync(join(dataDir, LOCK_FILE)), 'the supervisor released the lock');
        } finally {
          if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
        }
      } finally {
        await pg.stop();
        rmSync(dataDir, { recursive: true, force: true });
      }
    },
  );
});
