#!/usr/bin/env node
import pino from 'pino';
import { SharedKeyRing } from './crypto/key-ring.js';
import { RETIRED_TOKEN_KEY_KEPT_MS, SIGNING_KEY_FILE } from './crypto/token-issuer.js';
import { CHECKPOINT_KEY_FILE } from './services/chain-checkpoints.js';
import { join } from 'node:path';
import { parseMaintenanceArgs, runMaintenance, withMaintenanceStore } from './maintenance-cli.js';

const USAGE = 'rotate-key-cli --data-dir <dir> --key token|checkpoint [--database postgres://…]';

/**
 * Rotates a signing key of the cluster's sealed key ring in the database (ADR 0006):
 * `node --import tsx backend/rotate-key-cli.ts --data-dir /var/lib/baton --key token|checkpoint`
 * `[--database postgres://…]` (or BATON_DATABASE_URL). The data directory holds the key-encryption
 * key (or BATON_KEY_ENCRYPTION_KEY_FILE names it). On embedded SQLite the backend must be stopped
 * (the data directory's lock is taken); on PostgreSQL the running nodes take the new key up by
 * themselves, as after `POST /v1/admin/signing-keys/rotate`. A data directory without a Baton database,
 * or a PostgreSQL database without Baton's schema, is refused (DATABASE_NOT_FOUND), nothing created.
 * Exit codes: 0 rotated, 1 failed or refused, 2 usage.
 */
async function main(): Promise<void> {
  const values = parseMaintenanceArgs(
    process.argv.slice(2),
    { 'data-dir': { type: 'string' }, key: { type: 'string' }, database: { type: 'string' } },
    USAGE,
    (v) =>
      v['data-dir'] === undefined
        ? '--data-dir is required'
        : v.key !== 'token' && v.key !== 'checkpoint'
          ? `--key must be token or checkpoint (given: ${v.key ?? 'none'})`
          : undefined,
  );
  const dataDir = values['data-dir'] as string;
  const key = values.key as 'token' | 'checkpoint';
  await withMaintenanceStore(dataDir, values.database, async (store) => {
    const ring = await SharedKeyRing.open({
      store,
      name: key,
      dataDir,
      clock: Date.now,
      logger: pino({ level: 'warn' }, pino.destination(2)),
      keepRetiredMs: key === 'token' ? RETIRED_TOKEN_KEY_KEPT_MS : undefined,
      legacyFile: join(dataDir, key === 'token' ? SIGNING_KEY_FILE : CHECKPOINT_KEY_FILE),
    });
    let previous = '';
    const next = await ring.update(async (current, now) => {
      if (current === undefined) throw new Error(`the ${key} key ring is gone from the database`);
      previous = current.active.kid;
      return current.rotated(now, key === 'token' ? RETIRED_TOKEN_KEY_KEPT_MS : undefined);
    });
    process.stdout.write(`rotated the ${key} signing key: ${previous} -> ${next.active.kid}\n`);
  });
}

runMaintenance(main);
