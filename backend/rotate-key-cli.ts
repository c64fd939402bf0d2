#!/usr/bin/env node
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { BatonError } from '../shared/errors.js';
import { KeyRing } from './crypto/key-ring.js';
import { RETIRED_TOKEN_KEY_KEPT_MS, SIGNING_KEY_FILE } from './crypto/token-issuer.js';
import { CHECKPOINT_KEY_FILE } from './services/chain-checkpoints.js';

/**
 * Rotates a signing key in a data directory while the backend is stopped (a running backend keeps
 * the keys it loaded: use `POST /v1/admin/signing-keys/rotate` then):
 * `node --import tsx backend/rotate-key-cli.ts --data-dir /var/lib/baton --key token|checkpoint`
 */
async function main(): Promise<void> {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: { 'data-dir': { type: 'string' }, key: { type: 'string' } },
    strict: true,
    allowPositionals: false,
  });
  const dataDir = values['data-dir'];
  const key = values.key;
  if (dataDir === undefined || (key !== 'token' && key !== 'checkpoint')) {
    process.stderr.write('usage: rotate-key-cli --data-dir <dir> --key token|checkpoint\n');
    process.exit(2);
  }
  const ring = await KeyRing.open({
    file: join(dataDir, key === 'token' ? SIGNING_KEY_FILE : CHECKPOINT_KEY_FILE),
    clock: Date.now,
    keepRetiredMs: key === 'token' ? RETIRED_TOKEN_KEY_KEPT_MS : undefined,
  });
  const { previous, current } = await ring.rotate();
  process.stdout.write(`rotated the ${key} signing key: ${previous} -> ${current}\n`);
}

main().catch((error: unknown) => {
  const line = error instanceof BatonError ? `${error.code}: ${error.message}` : String(error);
  process.stderr.write(`${line}\n`);
  process.exit(1);
});
