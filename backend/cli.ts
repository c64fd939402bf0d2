#!/usr/bin/env node
import { databaseEngine, loadBackendConfig, redactedDatabaseUrl, type BackendConfig } from './config.js';
import { startBackend, type Backend } from './server.js';
import { BatonError } from '../shared/errors.js';
import { acquireDataDirLock } from './data-dir-lock.js';
import {
  assertInheritedDataDirLock,
  clusterWorkerIdentity,
  nodeIdFor,
  reportWorkerReady,
  startSupervisor,
  type WorkerIdentity,
} from './cluster-workers.js';

/**
 * Exit code after a fault the backend could not contain (sysexits' EX_SOFTWARE): distinct from a
 * configuration error (2) and a failed start or shutdown (1), so a supervisor can tell them apart.
 */
const FAULT_EXIT_CODE = 70;
/** How long a stop after a fault may take before the process exits anyway. */
const FAULT_STOP_MS = 5000;

let running: Backend | undefined;
let faulted = false;

/**
 * An unhandled rejection or an uncaught exception means a path that should have contained its
 * failure did not: the process state can no longer be trusted. The backend says so in one log line
 * with a stable code, stops as on SIGTERM (consoles get 1001 and reconnect; whatever was committed
 * stays committed; nothing unacknowledged is lost, as consoles replay it), and exits with 70 for the
 * supervisor to restart it (docs/operations.md, "When the backend stops on a fault").
 */
function onFault(kind: 'unhandledRejection' | 'uncaughtException') {
  return (error: unknown): void => {
    process.stderr.write(
      `${JSON.stringify({
        level: 60,
        time: Date.now(),
        service: 'baton-backend',
        code: 'BACKEND_FAULT',
        fault: kind,
        err:
          error instanceof Error
            ? { type: error.name, message: error.message, stack: error.stack }
            : { message: String(error) },
        msg: `stopping on an ${kind === 'unhandledRejection' ? 'unhandled rejection' : 'uncaught exception'}; exit code ${FAULT_EXIT_CODE}`,
      })}\n`,
    );
    if (faulted) return;
    faulted = true;
    setTimeout(() => process.exit(FAULT_EXIT_CODE), FAULT_STOP_MS);
    const stopped = running === undefined ? Promise.resolve() : running.stop();
    stopped.then(
      () => process.exit(FAULT_EXIT_CODE),
      () => process.exit(FAULT_EXIT_CODE),
    );
  };
}

/**
 * `npm run backend -- --port 8470 --data-dir ./data --rp-id localhost --origin http://localhost:8471`
 *
 * One process (embedded SQLite, or `--workers 1`), or with PostgreSQL and `--workers N` (N > 1) a
 * supervisor that forks N workers sharing the port (backend/cluster-workers.ts); a worker is this
 * same script, told so by the supervisor.
 */
async function main(): Promise<void> {
  process.on('unhandledRejection', onFault('unhandledRejection'));
  process.on('uncaughtException', onFault('uncaughtException'));
  let config;
  try {
    config = loadBackendConfig(process.argv.slice(2), process.env);
  } catch (error) {
    console.error(error instanceof Error ? error.message : String(error));
    process.exit(2);
  }
  const worker = clusterWorkerIdentity();
  if (worker !== undefined) await runWorker(config, worker);
  else if (config.workers > 1) await runSupervisor(config);
  else await runSingle(config);
}

function withNodeId(config: BackendConfig, worker: boolean): BackendConfig {
  return Object.freeze({ ...config, nodeId: nodeIdFor(config.nodeId, worker) });
}

function printBootstrapToken(backend: Backend, config: BackendConfig): void {
  if (backend.bootstrapAdminToken === undefined) return;
  // Printed once, to the terminal only (never to the structured log).
  process.stderr.write(
    `\nBaton: first start. The bootstrap admin token is shown once; keep it safe:\n\n  ${backend.bootstrapAdminToken}\n\n` +
      (config.bootstrapTokenFile ? `It was also written to ${config.bootstrapTokenFile} (mode 0600).\n\n` : ''),
  );
}

/** Stops the backend once; a second request exits at once with 1. */
function stopper(backend: Backend): (why: string) => void {
  let requests = 0;
  return (why) => {
    requests++;
    if (requests > 1) process.exit(1);
    backend.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        console.error(`shutdown after ${why} failed:`, error);
        process.exit(1);
      },
    );
  };
}

/** The single-process backend, as ever: it takes the data directory's lock itself. */
async function runSingle(config: BackendConfig): Promise<void> {
  // The data directory first: nothing in it is touched while another backend runs on it.
  const lock = acquireDataDirLock(config.dataDir);
  process.on('exit', () => lock.release());
  const backend = await startBackend(withNodeId(config, false));
  running = backend;
  printBootstrapToken(backend, config);
  const shutdown = stopper(backend);
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

/**
 * The supervisor of `--workers N`: it takes the data directory's lock once for all workers, forks
 * them, and exits with its verdict (0 stopped on a signal, 1 failed start or stop, 70 crash loop).
 */
async function runSupervisor(config: BackendConfig): Promise<void> {
  const lock = acquireDataDirLock(config.dataDir);
  process.on('exit', () => lock.release());
  const supervisor = startSupervisor({
    workers: config.workers,
    lockHolder: process.pid,
    listeningFields: {
      engine: databaseEngine(config),
      ...(config.databaseUrl === undefined ? {} : { database: redactedDatabaseUrl(config.databaseUrl) }),
    },
  });
  supervisor.ready.catch(() => undefined); // the log line says why; `done` carries the exit code
  process.exit(await supervisor.done);
}

/**
 * One worker of `--workers N`: the supervisor holds the lock (checked, not retaken); SIGTERM from the
 * supervisor (or anyone) stops it gracefully; the terminal's SIGINT is left to the supervisor, which
 * turns it into one SIGTERM per worker. A worker whose supervisor is gone (SIGKILL) exits at once:
 * node:cluster ends a worker whose IPC channel closed; its consoles reconnect to other nodes.
 */
async function runWorker(config: BackendConfig, worker: WorkerIdentity): Promise<void> {
  assertInheritedDataDirLock(config.dataDir, worker.lockHolder);
  const withId = withNodeId(config, true);
  const backend = await startBackend(withId);
  running = backend;
  printBootstrapToken(backend, config);
  const shutdown = stopper(backend);
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => undefined);
  reportWorkerReady({ nodeId: withId.nodeId ?? '', port: backend.port, url: backend.url });
}

main().catch((error: unknown) => {
  if (error instanceof BatonError) console.error(`${error.code}: ${error.message}`);
  else if (error instanceof Error && 'code' in error && error.code === 'EADDRINUSE')
    console.error(`The port is already in use: ${error.message}`);
  else console.error(error);
  process.exit(1);
});
