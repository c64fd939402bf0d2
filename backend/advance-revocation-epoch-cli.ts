#!/usr/bin/env node
import { parseMaintenanceArgs, runMaintenance, withMaintenanceStore } from './maintenance-cli.js';

/**
 * How far past the restored database's highest epoch the counter is moved by default: more revocations
 * than a deployment makes between a backup and its restore. The gap costs nothing (no reader of epochs
 * assumes them gapless) and epochs stay far below 2^53.
 */
const RESTORE_EPOCH_MARGIN = 1_000_000;

const USAGE = 'advance-revocation-epoch-cli --data-dir <dir> [--database postgres://…] [--past <epoch>]';

/**
 * After restoring the database from a backup (docs/operations.md, "Backup and restore"), before the
 * backend starts: the restored store would hand out again the epochs issued after the backup, and a
 * console or app server that saw them would take a new revocation of such an epoch for one it already
 * has. This moves the epoch counter past them, so the next revocation's epoch is above anything seen:
 * `node --import tsx backend/advance-revocation-epoch-cli.ts --data-dir /var/lib/baton`
 * `[--database postgres://…]` (or BATON_DATABASE_URL) `[--past <epoch>]`. On embedded SQLite the
 * backend must be stopped (the data directory's lock is taken). It only raises the counter: running it
 * again is harmless. `--past`: the highest revocation epoch any console or app server may have seen
 * before the restore (default: the restored database's highest + RESTORE_EPOCH_MARGIN). A data
 * directory without a Baton database, or a PostgreSQL database without Baton's schema, is refused
 * (DATABASE_NOT_FOUND), nothing created. Exit codes: 0 done, 1 failed or refused, 2 usage.
 */
async function main(): Promise<void> {
  const values = parseMaintenanceArgs(
    process.argv.slice(2),
    { 'data-dir': { type: 'string' }, database: { type: 'string' }, past: { type: 'string' } },
    USAGE,
    (v) =>
      v['data-dir'] === undefined
        ? '--data-dir is required'
        : v.past !== undefined && !/^\d{1,15}$/.test(v.past)
          ? `--past must be a whole number of at most 15 digits (given: ${v.past})`
          : undefined,
  );
  const dataDir = values['data-dir'] as string;
  const past = values.past === undefined ? undefined : Number(values.past);
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
