/**
 * The supervisor side for backend/cluster-workers.test.ts: takes the data-directory lock in
 * FIXTURE_DIR as backend/cli.ts does, supervises FIXTURE_WORKERS fixture workers with short restart
 * delays, and exits with the supervisor's code.
 */
import { join } from 'node:path';
import { acquireDataDirLock } from './data-dir-lock.js';
import { startSupervisor } from './cluster-workers.js';

const dir = process.env.FIXTURE_DIR ?? '';
const lock = acquireDataDirLock(dir);
process.on('exit', () => lock.release());
const supervisor = startSupervisor({
  workers: Number(process.env.FIXTURE_WORKERS ?? '2'),
  lockHolder: process.pid,
  exec: join(import.meta.dirname, 'cluster-workers.fixture-worker.ts'),
  args: [],
  // A window far longer than the test: on a loaded machine a worker takes seconds to start, and
  // crashes must not age out of the window before the loop is called (the window itself is
  // tested with a fake clock in cluster-workers.test.ts).
  restart: { initialDelayMs: 50, maxDelayMs: 400, crashLoopCount: 4, crashLoopWindowMs: 3_600_000 },
  stopTimeoutMs: Number(process.env.FIXTURE_STOP_TIMEOUT_MS ?? '5000'),
});
supervisor.ready.catch(() => undefined);
process.exitCode = await supervisor.done;
