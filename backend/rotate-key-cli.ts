#!/usr/bin/env node
import { parseArgs } from 'node:util';
import pino from 'pino';
import { SharedKeyRing } from './crypto/key-ring.js';
import { RETIRED_TOKEN_KEY_KEPT_MS, SIGNING_KEY_FILE } from './crypto/token-issuer.js';
import { CHECKPOINT_KEY_FILE } from './services/chain-checkpoints.js';
import { join } from 'node:path';
import { runMaintenance, withMaintenanceStore } from './maintenance-cli.js';

/**
 * Rotates a signing key of the cluster's sealed key ring in the database (ADR 0006):
 * `node --import tsx backend/rotate-key-cli.ts --data-dir /var/lib/baton --key token|checkpoint`
 * `[--database postgres://…]` (or BATON_DATABASE_URL). The data directory holds the key-encryption
 * key (or BATON_KEY_ENCRYPTION_KEY_FILE names it). On embedded SQLite the backend must be stopped
 * (the data directory's lock is taken); on PostgreSQL the running nodes take the new key up by
 * themselves, as after `POST /v1/admin/signing-keys/rotate`.
 */
async function main(): Promise<void> {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: { 'data-dir': { type: 'string' }, key: { type: 'string' }, database: { type: 'string' } },
    strict: true,
    allowPositionals: false,
  });
  const dataDir = values['data-dir'];
  const key = values.key;
  if (dataDir === undefined || (key !== 'token' && key !== 'checkpoint')) {
    process.stderr.write('usage: rotate-key-cli --data-dir <dir> --key token|checkpoint [--database postgres://…]\n');
    process.exit(2);
  }
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
