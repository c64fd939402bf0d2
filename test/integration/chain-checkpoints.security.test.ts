import assert from 'node:assert/strict';
import { createHash, createPublicKey, verify, type JsonWebKey } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { KEY_ENCRYPTION_KEY_FILE, KeyEncryptionKey } from '../../backend/crypto/key-encryption-key.js';
import { keyRingMetaKey } from '../../backend/crypto/key-ring.js';
import { CHECKPOINT_LOG_FILE } from '../../backend/services/chain-checkpoints.js';
import { canonicalJson } from '../../shared/canonical-json.js';
import { type Json, type TestBackend, startTestBackend } from '../helpers/backend-harness.js';
import { openRawDatabase } from '../helpers/raw-database.js';

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function freshDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'baton-checkpoints-'));
  dirs.push(dir);
  return dir;
}

/**
 * What the audit's proof of concept did with write access to the database file: change one stored
 * event, recompute every later hash and prevHash, and move the stored head, so that a re-walk of the
 * chain finds nothing wrong.
 */
async function rewriteHistory(
  target: { dataDir: string },
  origin: string,
  seq: number,
  edit: (event: Json) => void,
): Promise<void> {
  const db = await openRawDatabase(target);
  try {
    const rows = await db.all<{ seq: number; body: string }>(
      'SELECT seq, body FROM events WHERE origin = ? ORDER BY seq',
      origin,
    );
    let prev = '0'.repeat(64);
    await db.run('BEGIN');
    for (const row of rows) {
      const event = JSON.parse(row.body) as Json;
      if (row.seq === seq) edit(event);
      event.prevHash = prev;
      const body = canonicalJson(event);
      prev = sha256(body);
      await db.run('UPDATE events SET body = ?, hash = ? WHERE origin = ? AND seq = ?', body, prev, origin, row.seq);
    }
    await db.run('UPDATE event_streams SET last_hash = ? WHERE origin = ?', prev, origin);
    await db.run('COMMIT');
  } finally {
    await db.close();
  }
}

async function createOperators(t: TestBackend, names: string[]): Promise<void> {
  for (const displayName of names) await t.admin.ok('POST', '/v1/admin/operators', { displayName, roles: ['teller'] });
}

async function firstOperatorCreated(target: { dataDir: string }): Promise<number> {
  const db = await openRawDatabase(target, { readonly: true });
  try {
    const row = await db.get<{ seq: number }>(
      "SELECT seq FROM events WHERE origin = 'backend' AND type = 'operator-created' ORDER BY seq LIMIT 1",
    );
    assert.ok(row !== undefined, 'an operator-created event is stored');
    return row.seq;
  } finally {
    await db.close();
  }
}

describe('signed chain checkpoints: history rewritten in the database is detected', () => {
  it('a rewrite of the backend chain (hashes and head recomputed) before a checkpoint shows as checkpoint-mismatch after a restart', async () => {
    const dataDir = freshDir();
    let t = await startTestBackend({ dataDir });
    const token = t.admin.token;
    await createOperators(t, ['Alice', 'Bob', 'Carol']);
    await t.stop(); // signs a checkpoint on shutdown

    const seq = await firstOperatorCreated({ dataDir });
    await rewriteHistory({ dataDir }, 'backend', seq, (event) => {
      event.detail = { ...event.detail, roles: 'admin' }; // as if Alice had been made an admin
    });

    t = await startTestBackend({ dataDir }, { adminToken: token });
    try {
      const report = (await t.admin.ok('GET', '/v1/admin/events/verify?origin=backend')) as Json;
      // The re-walk alone finds a consistent chain: only the signed checkpoint shows the rewrite.
      assert.equal(report.intact, false);
      assert.ok(
        report.problems.some((p: Json) => p.problem === 'checkpoint-mismatch'),
        JSON.stringify(report.problems),
      );
      assert.ok(!report.problems.some((p: Json) => p.problem === 'hash-mismatch' || p.problem === 'chain-broken'));
      assert.equal(report.checkpoint.seq >= 1, true);
    } finally {
      await t.stop();
    }
  });

  it('a rewrite while the backend runs is detected against the checkpoint it signed on its interval', async () => {
    const t = await startTestBackend({ checkpointIntervalSeconds: 1 });
    try {
      await createOperators(t, ['Alice', 'Bob']);
      const clean = (await t.admin.ok('GET', '/v1/admin/events/verify?origin=backend')) as Json;
      assert.equal(clean.intact, true, JSON.stringify(clean.problems));
      // Wait for the interval checkpoint that covers these events.
      const lastSeq = clean.lastSeq as number;
      for (let i = 0; ; i++) {
        const listed = (await t.admin.ok('GET', '/v1/admin/events/checkpoints')) as Json;
        const latest = listed.checkpoints.at(-1);
        if (latest !== undefined && latest.heads.backend?.lastSeq >= lastSeq) break;
        if (i > 300) assert.fail('no checkpoint was signed within the interval');
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      await rewriteHistory(t, 'backend', await firstOperatorCreated(t), (event) => {
        event.detail = { ...event.detail, roles: 'admin' }; // as if Alice had been made an admin
      });
      const report = (await t.admin.ok('GET', '/v1/admin/events/verify?origin=backend')) as Json;
      assert.equal(report.intact, false);
      assert.ok(report.problems.some((p: Json) => p.problem === 'checkpoint-mismatch'));
    } finally {
      await t.stop();
    }
  });

  it('a forged checkpoint in the database, and a deleted one, are findings; the append-only file still holds the real one', async () => {
    const dataDir = freshDir();
    let t = await startTestBackend({ dataDir });
    const token = t.admin.token;
    await createOperators(t, ['Alice', 'Bob']);
    await t.stop();

    // The attacker rewrites history, deletes the signed checkpoints and plants an unsigned one that
    // agrees with the rewritten chain.
    const seq = await firstOperatorCreated({ dataDir });
    await rewriteHistory({ dataDir }, 'backend', seq, (event) => {
      event.detail = { ...event.detail, roles: 'admin' }; // as if Alice had been made an admin
    });
    const db = await openRawDatabase({ dataDir });
    const real = (await db.get<Json>('SELECT * FROM chain_checkpoints ORDER BY seq DESC LIMIT 1')) as Json;
    const head = (await db.get<Json>("SELECT last_seq, last_hash FROM event_streams WHERE origin = 'backend'")) as Json;
    await db.run('DELETE FROM chain_checkpoints');
    const forged = {
      ...JSON.parse(real.body as string),
      heads: { backend: { lastSeq: head.last_seq, lastHash: head.last_hash } },
    };
    await db.run(
      'INSERT INTO chain_checkpoints (seq, at, kid, body, sig) VALUES (?, ?, ?, ?, ?)',
      real.seq,
      real.at,
      real.kid,
      canonicalJson(forged),
      real.sig,
    );
    await db.close();

    t = await startTestBackend({ dataDir }, { adminToken: token });
    try {
      const report = (await t.admin.ok('GET', '/v1/admin/events/verify?origin=backend')) as Json;
      assert.equal(report.intact, false);
      const kinds = new Set(report.problems.map((p: Json) => p.problem));
      assert.ok(kinds.has('checkpoint-invalid'), JSON.stringify(report.problems));
      assert.ok(kinds.has('checkpoint-mismatch'), JSON.stringify(report.problems));
      const listed = (await t.admin.ok('GET', '/v1/admin/events/checkpoints')) as Json;
      assert.equal(listed.checkpoints.find((c: Json) => c.seq === real.seq)?.valid, false);
    } finally {
      await t.stop();
    }
  });

  it('exports checkpoints an auditor can verify with the published key; the key is in the database only sealed under a 0600 key-encryption key outside it', async () => {
    const dataDir = freshDir();
    let t = await startTestBackend({ dataDir });
    const token = t.admin.token;
    await createOperators(t, ['Alice']);
    await t.stop();
    t = await startTestBackend({ dataDir }, { adminToken: token });
    try {
      const exported = (await t.admin.ok('GET', '/v1/admin/events/checkpoints')) as Json;
      assert.ok(exported.checkpoints.length >= 1);
      for (const checkpoint of exported.checkpoints as Json[]) {
        const { sig, valid, ...body } = checkpoint;
        assert.equal(valid, true);
        const jwk = (exported.keys as Json[]).find((k) => k.kid === body.kid);
        const key = createPublicKey({ key: jwk as JsonWebKey, format: 'jwk' });
        const ok = verify(
          'sha256',
          Buffer.from(canonicalJson(body)),
          { key, dsaEncoding: 'ieee-p1363' },
          Buffer.from(sig as string, 'base64url'),
        );
        assert.ok(ok, `checkpoint ${String(body.seq)} verifies with the exported key`);
        assert.equal(
          exported.keys.some((k: Json) => 'd' in k),
          false,
        );
      }
      const kekFile = join(dataDir, KEY_ENCRYPTION_KEY_FILE);
      assert.equal(statSync(kekFile).mode & 0o777, 0o600);
      assert.equal(statSync(join(dataDir, CHECKPOINT_LOG_FILE)).mode & 0o777, 0o600);
      const lines = readFileSync(join(dataDir, CHECKPOINT_LOG_FILE), 'utf8').trim().split('\n');
      assert.equal(lines.length, exported.checkpoints.length);
      const db = await openRawDatabase(t, { readonly: true });
      const text = JSON.stringify([
        await db.all('SELECT * FROM chain_checkpoints'),
        await db.all('SELECT * FROM meta'),
      ]);
      const sealed = await db.get<{ value: string }>(
        'SELECT value FROM meta WHERE key = ?',
        keyRingMetaKey('checkpoint'),
      );
      await db.close();
      // The private key, opened with the key-encryption key, appears nowhere in the database in the clear.
      const kek = KeyEncryptionKey.read(kekFile) as KeyEncryptionKey;
      const { keys } = JSON.parse(kek.open(sealed?.value ?? '', keyRingMetaKey('checkpoint'))) as Json;
      const d = keys.find((k: Json) => k.retiredAt === null).jwk.d as string;
      assert.ok(d.length > 20);
      assert.equal(text.includes(d), false);
      assert.equal(text.includes(readFileSync(kekFile, 'utf8').trim()), false, 'nor the key-encryption key');
    } finally {
      await t.stop();
    }
  });

  it('the JSON Lines audit export ends with a checkpoint signed at export time that covers what was exported', async () => {
    const t = await startTestBackend();
    try {
      await createOperators(t, ['Alice', 'Bob']);
      const response = await fetch(
        `${t.url}/v1/admin/events/export?format=jsonl&from=0&to=${Date.now() + 60_000}&checkpoints=true`,
        { headers: { authorization: `Bearer ${t.admin.token}` } },
      );
      assert.equal(response.status, 200);
      const lines = (await response.text())
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as Json);
      const trailer = lines.at(-1);
      const exported = lines.slice(0, -1).filter((e) => e.origin === 'backend');
      assert.ok(exported.length >= 3);
      const { sig, valid, ...body } = trailer.checkpoint;
      assert.equal(valid, true);
      assert.equal(body.reason, 'export');
      const last = exported.at(-1);
      // The checkpoint's head is at or past the last exported event, and the export's hashes chain to it.
      assert.ok(body.heads.backend.lastSeq >= last.seq);
      const jwk = (trailer.checkpointKeys as Json[]).find((k) => k.kid === body.kid);
      const key = createPublicKey({ key: jwk as JsonWebKey, format: 'jwk' });
      assert.ok(
        verify(
          'sha256',
          Buffer.from(canonicalJson(body)),
          { key, dsaEncoding: 'ieee-p1363' },
          Buffer.from(sig, 'base64url'),
        ),
      );
      const csv = await t.admin.request('GET', `/v1/admin/events/export?format=csv&from=0&to=1&checkpoints=true`);
      assert.equal(csv.status, 400);
    } finally {
      await t.stop();
    }
  });

  it('rotating the checkpoint key keeps old checkpoints verifiable and signs the next with the new key', async () => {
    const t = await startTestBackend();
    try {
      await createOperators(t, ['Alice']);
      const before = (await t.admin.ok('GET', '/v1/admin/events/checkpoints')) as Json;
      const rotated = (await t.admin.ok('POST', '/v1/admin/signing-keys/rotate', { key: 'checkpoint' })) as Json;
      assert.notEqual(rotated.kid, rotated.previousKid);
      await createOperators(t, ['Bob']);
      const after = (await t.admin.ok('GET', '/v1/admin/events/checkpoints')) as Json;
      assert.ok(after.checkpoints.length > before.checkpoints.length);
      assert.ok(after.checkpoints.every((c: Json) => c.valid === true));
      assert.equal(after.checkpoints.at(-1).kid, rotated.kid);
      assert.deepEqual(
        after.keys.map((k: Json) => k.kid),
        [rotated.kid, rotated.previousKid],
      );
      const report = (await t.admin.ok('GET', '/v1/admin/events/verify?origin=backend')) as Json;
      assert.equal(report.intact, true, JSON.stringify(report.problems));
      const events = (await t.admin.ok('GET', '/v1/admin/events?type=admin-action&limit=1000')) as Json;
      assert.ok(events.events.some((e: Json) => e.reasons.includes('signing-key-rotated')));
    } finally {
      await t.stop();
    }
  });
});
