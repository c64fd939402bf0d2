import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, describe, it } from 'node:test';
import WebSocket from 'ws';
import { BatonError } from '../shared/errors.js';
import {
  CrashHistory,
  DEFAULT_RESTART_POLICY,
  WORKER_ENV,
  assertInheritedDataDirLock,
  clusterWorkerIdentity,
  exitReason,
  nodeIdFor,
} from './cluster-workers.js';
import { LOCK_FILE } from './data-dir-lock.js';

const SUPERVISOR = join(import.meta.dirname, 'cluster-workers.fixture-supervisor.ts');
const dirs: string[] = [];
after(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'baton-cluster-'));
  dirs.push(dir);
  return dir;
}

describe('cluster workers: the pieces', () => {
  it('doubles the restart delay per crash and calls a crash loop after crashLoopCount crashes in the window', () => {
    let now = 0;
    const history = new CrashHistory(DEFAULT_RESTART_POLICY, () => now);
    const delays: number[] = [];
    for (let i = 0; i < 4; i++) {
      const verdict = history.onCrash();
      assert.ok(!('giveUp' in verdict));
      delays.push(verdict.restartInMs);
      now += 1000;
    }
    assert.deepEqual(delays, [500, 1000, 2000, 4000]);
    assert.deepEqual(history.onCrash(), { giveUp: true, recent: 5 });
  });

  it('forgets crashes older than the window, and caps the delay', () => {
    let now = 0;
    const history = new CrashHistory({ ...DEFAULT_RESTART_POLICY, maxDelayMs: 1500 }, () => now);
    history.onCrash();
    now += 10;
    history.onCrash();
    now += 10;
    assert.deepEqual(history.onCrash(), { restartInMs: 1500, recent: 3 });
    now += DEFAULT_RESTART_POLICY.crashLoopWindowMs + 1;
    assert.deepEqual(history.onCrash(), { restartInMs: 500, recent: 1 });
  });

  it('says why a worker exited', () => {
    assert.match(exitReason(70, null), /fault/);
    assert.match(exitReason(null, 'SIGKILL'), /killed by SIGKILL/);
    assert.match(exitReason(0, null), /without being asked/);
    assert.match(exitReason(1, null), /code 1/);
  });

  it('knows a worker only by node:cluster and the supervisor’s explicit variables', () => {
    const env = { [WORKER_ENV.worker]: '1', [WORKER_ENV.index]: '3', [WORKER_ENV.lockHolder]: '1234' };
    assert.deepEqual(clusterWorkerIdentity(env, true), { index: 3, lockHolder: 1234 });
    assert.equal(clusterWorkerIdentity(env, false), undefined, 'not forked by node:cluster');
    assert.equal(clusterWorkerIdentity({}, true), undefined, 'a cluster worker of something else');
    assert.throws(
      () => clusterWorkerIdentity({ [WORKER_ENV.worker]: '1' }, true),
      (e: unknown) => e instanceof BatonError && e.code === 'INTERNAL',
    );
  });

  it('gives each worker its own node id (host:pid), a single process the configured one', () => {
    assert.equal(nodeIdFor(undefined, true, 42, 'app1'), 'app1:42');
    assert.equal(nodeIdFor('node-a', true, 42, 'app1'), 'node-a:42');
    assert.equal(nodeIdFor(undefined, false, 42, 'app1'), 'app1:42');
    assert.equal(nodeIdFor('node-a', false, 42, 'app1'), 'node-a');
  });

  it('accepts the inherited lock only from its parent, and only when the lock file names it', () => {
    const dir = tempDir();
    const locked = (fn: () => void) =>
      assert.throws(fn, (e: unknown) => e instanceof BatonError && e.code === 'DATA_DIR_LOCKED');
    locked(() => assertInheritedDataDirLock(dir, 1234, 1234)); // no lock file
    writeFileSync(join(dir, LOCK_FILE), '1234\n');
    assertInheritedDataDirLock(dir, 1234, 1234);
    locked(() => assertInheritedDataDirLock(dir, 1234, 999)); // the holder is not its parent
    writeFileSync(join(dir, LOCK_FILE), '5678\n');
    locked(() => assertInheritedDataDirLock(dir, 1234, 1234)); // someone else holds it
  });
});

interface Run {
  child: ChildProcess;
  dir: string;
  lines: string[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<Record<string, unknown>>;
}

function runSupervisor(mode: string, extra: Record<string, string> = {}): Run {
  const dir = tempDir();
  const child = spawn(process.execPath, ['--import', 'tsx', SUPERVISOR], {
    env: { ...process.env, FIXTURE_DIR: dir, FIXTURE_MODE: mode, ...extra },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const waiters: {
    pattern: RegExp;
    resolve: (line: Record<string, unknown>) => void;
    reject: (error: Error) => void;
  }[] = [];
  const onLine = (line: string) => {
    lines.push(line);
    for (const waiter of [...waiters]) {
      if (!waiter.pattern.test(line)) continue;
      waiters.splice(waiters.indexOf(waiter), 1);
      waiter.resolve(line.startsWith('{') ? (JSON.parse(line) as Record<string, unknown>) : { line });
    }
  };
  for (const stream of [child.stdout, child.stderr]) if (stream) createInterface({ input: stream }).on('line', onLine);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  void exited.then(({ code }) => {
    // Lines still buffered in the pipes come first; then nobody waits for lines that cannot come.
    setTimeout(() => {
      for (const waiter of waiters.splice(0))
        waiter.reject(new Error(`the supervisor exited (${String(code)}):\n${lines.join('\n')}`));
    }, 200);
  });
  const waitFor = (pattern: RegExp, timeoutMs = 60_000) => {
    const seen = lines.find((line) => pattern.test(line));
    if (seen !== undefined) return Promise.resolve(JSON.parse(seen) as Record<string, unknown>);
    return new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no line matching ${pattern}:\n${lines.join('\n')}`)), timeoutMs);
      waiters.push({
        pattern,
        resolve: (line) => {
          clearTimeout(timer);
          resolve(line);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      });
    });
  };
  return { child, dir, lines, exited, waitFor };
}

function get(port: number, path = '/'): Promise<{ pid: number; index: number; nodeId: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve(JSON.parse(body) as { pid: number; index: number; nodeId: string }));
    });
    req.on('error', reject);
    req.end();
  });
}

function crash(port: number): Promise<void> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path: '/crash', agent: false }, () => resolve());
    req.on('error', () => resolve()); // the worker died under the request: expected
    req.end();
  });
}

function kill(run: Run): void {
  if (run.child.exitCode === null && run.child.signalCode === null) run.child.kill('SIGKILL');
}

describe('cluster workers: a real supervisor with fixture workers', { timeout: 280_000 }, () => {
  it('prints one listening line with the port and N, spreads connections round-robin, stops all on SIGTERM', async () => {
    const run = runSupervisor('ok');
    try {
      const up = await run.waitFor(/baton cluster listening/);
      assert.equal(up.workers, 2);
      assert.equal(typeof up.port, 'number');
      assert.equal((up.nodeIds as string[]).length, 2);
      assert.equal(run.lines.filter((l) => l.includes('baton cluster listening')).length, 1);
      const port = up.port as number;
      const seen = new Set<number>();
      for (let i = 0; i < 6; i++) seen.add((await get(port)).pid);
      assert.equal(seen.size, 2, 'both workers answered on the one port');
      // The lock is the supervisor's, once, for all of them.
      const lock = readdirSync(run.dir).includes(LOCK_FILE);
      assert.ok(lock);
      run.child.kill('SIGTERM');
      const exit = await run.exited;
      assert.deepEqual(exit, { code: 0, signal: null });
      const stopped = readdirSync(run.dir).filter((f) => f.startsWith('stopped-'));
      assert.equal(stopped.length, 2, `each worker stopped gracefully: ${readdirSync(run.dir).join(', ')}`);
      assert.ok(!existsSync(join(run.dir, LOCK_FILE)), 'the lock is released');
    } finally {
      kill(run);
    }
  });

  it('hands WebSocket upgrades on the one port to every worker, and closes them with 1001 on stop', async () => {
    const run = runSupervisor('ok');
    try {
      const up = await run.waitFor(/baton cluster listening/);
      const open = async () => {
        const ws = new WebSocket(`ws://127.0.0.1:${String(up.port)}/v1/console/ws`);
        const hello = await new Promise<{ pid: number }>((resolve, reject) => {
          ws.once('message', (data: Buffer) => resolve(JSON.parse(data.toString()) as { pid: number }));
          ws.once('error', reject);
        });
        return { ws, pid: hello.pid };
      };
      const sockets = [];
      for (let i = 0; i < 4; i++) sockets.push(await open());
      assert.equal(new Set(sockets.map((s) => s.pid)).size, 2, 'upgrades reached both workers');
      const closes = sockets.map(
        ({ ws }) => new Promise<number>((resolve) => ws.once('close', (code) => resolve(code))),
      );
      run.child.kill('SIGTERM');
      assert.deepEqual(await Promise.all(closes), [1001, 1001, 1001, 1001]);
      assert.deepEqual(await run.exited, { code: 0, signal: null });
    } finally {
      kill(run);
    }
  });

  it('on SIGINT stops every worker once, through SIGTERM (a worker ignores the terminal’s SIGINT)', async () => {
    const run = runSupervisor('ok');
    try {
      await run.waitFor(/baton cluster listening/);
      run.child.kill('SIGINT');
      assert.deepEqual(await run.exited, { code: 0, signal: null });
      const files = readdirSync(run.dir);
      assert.equal(files.filter((f) => f.startsWith('stopped-')).length, 2);
    } finally {
      kill(run);
    }
  });

  it('restarts a worker that dies, with the reason in the log, and keeps serving', async () => {
    const run = runSupervisor('ok');
    try {
      const up = await run.waitFor(/baton cluster listening/);
      const port = up.port as number;
      await crash(port);
      const restarting = await run.waitFor(/restarting it in/);
      assert.equal(restarting.level, 40);
      assert.equal(restarting.code, 70);
      assert.match(String(restarting.reason), /fault/);
      const restarted = await run.waitFor(/worker restarted/);
      assert.ok(!(up.nodeIds as string[]).includes(String(restarted.nodeId)), 'a restarted worker is a new node');
      const pids = new Set<number>();
      for (let i = 0; i < 6; i++) pids.add((await get(port)).pid);
      assert.equal(pids.size, 2);
      run.child.kill('SIGTERM');
      assert.deepEqual(await run.exited, { code: 0, signal: null });
    } finally {
      kill(run);
    }
  });

  it('gives up after a crash loop: stops the cluster and exits 70', async () => {
    const run = runSupervisor('crash-loop');
    try {
      await run.waitFor(/baton cluster listening/);
      writeFileSync(join(run.dir, 'go'), '');
      const loop = await run.waitFor(/crash loop/);
      assert.equal(loop.code, 'CLUSTER_CRASH_LOOP');
      assert.equal(loop.level, 50);
      const delays = run.lines
        .filter((l) => l.includes('restarting it in'))
        .map((l) => JSON.parse(l) as { worker: number; restartInMs: number })
        .filter((l) => l.worker === loop.worker)
        .map((l) => l.restartInMs);
      assert.deepEqual(delays, [50, 100, 200], 'the backoff doubled per crash of the slot');
      assert.deepEqual(await run.exited, { code: 70, signal: null });
    } finally {
      kill(run);
    }
  });

  it('stops everything and exits 1 when a worker fails to start', async () => {
    const run = runSupervisor('fail-start');
    try {
      const failed = await run.waitFor(/failed to start/);
      assert.equal(failed.worker, 1);
      assert.deepEqual(await run.exited, { code: 1, signal: null });
      assert.ok(!run.lines.some((l) => l.includes('baton cluster listening')));
    } finally {
      kill(run);
    }
  });

  it('kills workers that outlast the stop timeout and exits 1', async () => {
    const run = runSupervisor('hang-on-stop', { FIXTURE_STOP_TIMEOUT_MS: '500' });
    try {
      await run.waitFor(/baton cluster listening/);
      run.child.kill('SIGTERM');
      await run.waitFor(/did not stop in time/);
      assert.deepEqual(await run.exited, { code: 1, signal: null });
    } finally {
      kill(run);
    }
  });
});
