#!/usr/bin/env node
import { loadBackendConfig } from './config.js';
import { startBackend, type Backend } from './server.js';
import { BatonError } from '../shared/errors.js';
import { acquireDataDirLock } from './data-dir-lock.js';

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

/** `npm run backend -- --port 8470 --data-dir ./data --rp-id localhost --origin http://localhost:8471` */
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
  // The data directory first: nothing in it is touched while another backend runs on it.
  const lock = acquireDataDirLock(config.dataDir);
  process.on('exit', () => lock.release());
  const backend = await startBackend(config);
  running = backend;
  if (backend.bootstrapAdminToken !== undefined) {
    // Printed once, to the terminal only (never to the structured log).
    process.stderr.write(
      `\nBaton: first start. The bootstrap admin token is shown once; keep it safe:\n\n  ${backend.bootstrapAdminToken}\n\n` +
        (config.bootstrapTokenFile ? `It was also written to ${config.bootstrapTokenFile} (mode 0600).\n\n` : ''),
    );
  }
  let signals = 0;
  const shutdown = (signal: string) => {
    signals++;
    if (signals > 1) process.exit(1);
    backend.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        console.error(`shutdown after ${signal} failed:`, error);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

main().catch((error: unknown) => {
  if (error instanceof BatonError) console.error(`${error.code}: ${error.message}`);
  else if (error instanceof Error && 'code' in error && error.code === 'EADDRINUSE')
    console.error(`The port is already in use: ${error.message}`);
  else console.error(error);
  process.exit(1);
});
