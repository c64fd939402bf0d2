#!/usr/bin/env node
import { loadBackendConfig } from './config.js';
import { startBackend } from './server.js';
import { BatonError } from '../shared/errors.js';

/** `npm run backend -- --port 8470 --data-dir ./data --rp-id localhost --origin http://localhost:8471` */
async function main(): Promise<void> {
  let config;
  try {
    config = loadBackendConfig(process.argv.slice(2), process.env);
  } catch (error) {
    console.error(error instanceof Error ? error.message : String(error));
    process.exit(2);
  }
  const backend = await startBackend(config);
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
