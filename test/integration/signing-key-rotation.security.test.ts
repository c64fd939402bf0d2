import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import {
  type Json,
  type TestBackend,
  type TestConsole,
  assertError,
  httpJson,
  withBackendAndConsole,
} from '../helpers/backend-harness.js';
import { enrolOperator, signIn } from '../helpers/operator-flow.js';
import { startTestBackend } from '../helpers/backend-harness.js';

const ROOT = join(import.meta.dirname, '..', '..');

/**
 * Runs the key-rotation CLI (output piped, never inherited) on the data directory (which holds the
 * key-encryption key) and the backend's database (the embedded one there, or PostgreSQL).
 */
function rotateOffline(
  dataDir: string,
  key: string,
  databaseUrl: string | undefined,
): Promise<{ code: number | null; out: string }> {
  const database = databaseUrl === undefined ? [] : ['--database', databaseUrl];
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', join(ROOT, 'backend', 'rotate-key-cli.ts'), '--data-dir', dataDir, '--key', key, ...database],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (out += chunk.toString()));
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, out })));
}

describe('the assurance-token signing key is rotated with overlap', () => {
  let t: TestBackend;
  let console: TestConsole;
  withBackendAndConsole((b, c) => ((t = b), (console = c)));

  it('after an admin rotates it, new tokens carry the new kid and tokens signed before still verify against the JWKS', async () => {
    const { authenticator } = await enrolOperator(t.admin, console);
    const before = (await signIn(console, authenticator)).body as Json;
    const oldToken = before.token as string;
    const oldKid = decodeProtectedHeader(oldToken).kid;

    const rotated = (await t.admin.ok('POST', '/v1/admin/signing-keys/rotate', { key: 'token' })) as Json;
    assert.equal(rotated.previousKid, oldKid);
    assert.notEqual(rotated.kid, oldKid);

    const after = (await signIn(console, authenticator)).body as Json;
    assert.equal(decodeProtectedHeader(after.token as string).kid, rotated.kid);

    // What a downstream app does: fetch the JWKS and verify with it.
    const jwks = (await httpJson(`${t.url}/.well-known/jwks.json`, { method: 'GET' })).body as Json;
    assert.deepEqual(
      jwks.keys.map((k: Json) => k.kid),
      [rotated.kid, oldKid],
    );
    assert.ok(jwks.keys.every((k: Json) => k.d === undefined));
    const keySet = createLocalJWKSet(jwks);
    await jwtVerify(oldToken, keySet);
    await jwtVerify(after.token as string, keySet);

    const events = (await t.admin.ok('GET', '/v1/admin/events?type=admin-action&limit=1000')) as Json;
    const recorded = events.events.find((e: Json) => e.reasons.includes('signing-key-rotated'));
    assert.equal(recorded?.detail.key, 'token');
    assert.equal(recorded?.detail.kid, rotated.kid);
  });

  it('refuses an unknown key name', async () => {
    assertError(
      await t.admin.request('POST', '/v1/admin/signing-keys/rotate', { key: 'database' }),
      400,
      'SCHEMA_INVALID',
    );
  });
});

describe('rotating a signing key with the backend stopped', () => {
  it('the CLI rotates the token key; the restarted backend signs with the new one and still publishes the old', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'baton-rotate-'));
    try {
      let t = await startTestBackend({ dataDir });
      const token = t.admin.token;
      const { databaseUrl } = t;
      const before = (await httpJson(`${t.url}/.well-known/jwks.json`, { method: 'GET' })).body as Json;
      await t.stop();
      const { code, out } = await rotateOffline(dataDir, 'token', databaseUrl);
      assert.equal(code, 0, out);
      const [, previous, current] = /rotated the token signing key: (\S+) -> (\S+)/.exec(out) ?? [];
      assert.equal(previous, before.keys[0].kid);
      t = await startTestBackend({ dataDir }, { adminToken: token });
      try {
        const after = (await httpJson(`${t.url}/.well-known/jwks.json`, { method: 'GET' })).body as Json;
        assert.deepEqual(
          after.keys.map((k: Json) => k.kid),
          [current, previous],
        );
      } finally {
        await t.stop();
      }
      const refused = await rotateOffline(dataDir, 'database', databaseUrl);
      assert.equal(refused.code, 2);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
