#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { runMaintenance, withMaintenanceStore } from './maintenance-cli.js';

/**
 * How far past the restored database's highest epoch the counter is moved by default: more revocations
 * than a deployment makes between a backup and its restore. The gap costs nothing (no reader of epochs
 * assumes them gapless) and epochs stay far below 2^53.
 */
const RESTORE_EPOCH_MARGIN = 1_000_000;

const USAGE =
  'usage: advance-revocation-epoch-cli --data-dir <dir> [--database postgres://…] [--past <epoch>]\n' +
  '  --past: the highest revocation epoch any console or app server may have seen before the restore\n' +
  `          (default: the restored database's highest + ${RESTORE_EPOCH_MARGIN})\n`;

/**
 * After restoring the database from a backup (docs/operations.md, "Backup and restore"), before the
 * backend starts: the restored store would hand out again the epochs issued after the backup, and a
 * console or app server that saw them would take a new revocation of such an epoch for one it already
 * has. This moves the epoch counter past them, so the next revocation's epoch is above anything seen:
 * `node --import tsx backend/advance-revocation-epoch-cli.ts --data-dir /var/lib/baton`
 * `[--database postgres://…]` (or BATON_DATABASE_URL) `[--past <epoch>]`. On embedded SQLite the
 * backend must be stopped (the data directory's lock is taken). It only raises the counter: running it
 * again is harmless. Exit codes: 0 done, 1 failed, 2 usage.
 */
async function main(): Promise<void> {
  let values;
  try {
    ({ values } = parseArgs({
      args: process.argv.slice(2),
      options: { 'data-dir': { type: 'string' }, database: { type: 'string' }, past: { type: 'string' } },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n${USAGE}`);
    process.exit(2);
  }
  const dataDir = values['data-dir'];
  const past = values.past === undefined ? undefined : Number(values.past);
  if (dataDir === undefined || (values.past !== undefined && !/^\d{1,15}$/.test(values.past))) {
    process.stderr.write(USAGE);
    process.exit(2);
  }
  await withMaintenanceStore(dataDir, values.database, async (store) => {
    const highest = await store.revocations.currentEpoch();
    const { from, to } = await store.revocations.advanceEpoch(past ?? highest + RESTORE_EPOCH_MARGIN);
    process.stdout.write(
      to === from
        ? `revocation epochs: already past ${to}; the next revocation takes epoch ${to + 1} (nothing changed)\n`
        : `revocation epochs: moved from ${from} to ${to}; the next revocation takes epoch ${to + 1}\n`,
    );
  });
}

runMaintenance(main);
