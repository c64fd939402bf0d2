import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import pg from 'pg';
import { KEY_ENCRYPTION_KEY_FILE, KeyEncryptionKey } from '../../backend/crypto/key-encryption-key.js';
import { KeyRing, keyRingMetaKey } from '../../backend/crypto/key-ring.js';
import { TestConsole, httpJson, type Json } from '../helpers/backend-harness.js';
import { Cluster } from '../helpers/cluster-harness.js';
import { enrolOperator, signIn } from '../helpers/operator-flow.js';
import { postgresSkip } from '../helpers/postgres-server.js';
import { TEST_ENGINE } from '../helpers/test-database.js';

/**
 * The cluster's signing keys (ADR 0006): two real backend processes on one throwaway PostgreSQL,
 * each with its own data directory holding a copy of the one key-encryption key. What one node signs
 * the other publishes and accepts, a rotation on one reaches the other without a restart, and a node
 * without the key-encryption key, with another one, or facing a sealed ring changed in the database
 * refuses to start with its code.
 */
function skipReason(): false | string {
  const missing = postgresSkip();
  if (missing !== false) return missing;
  if (TEST_ENGINE === 'postgres') {
    const reason = 'cluster tests start their own PostgreSQL and run in the default pass of npm test';
    process.stderr.write(`${reason}\n`);
    return reason;
  }
  return false;
}

const ROOT = join(import.meta.dirname, '..', '..');

/** Starts `backend/cli.ts` on `dataDir` and the cluster's database, expecting it to refuse: its exit code and output. */
function startRefused(dataDir: string, databaseUrl: string): Promise<{ code: number | null; output: string[] }> {
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      join(ROOT, 'backend', 'cli.ts'),
      '--port',
      '0',
      '--data-dir',
      dataDir,
      '--database',
      databaseUrl,
      '--workers',
      '1',
      '--log-level',
      'warn',
    ],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const output: string[] = [];
  for (const stream of [child.stdout, child.stderr])
    createInterface({ input: stream }).on('line', (l) => output.push(l));
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  return new Promise((resolve) =>
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    }),
  );
}

describe('one signing key ring for the cluster, sealed in PostgreSQL', { skip: skipReason() }, () => {
  let cluster: Cluster;
  let db: pg.Client;
  const dirs: string[] = [];

  before(async () => {
    cluster = await Cluster.start(['A', 'B']);
    db = new pg.Client({ connectionString: cluster.databaseUrl });
    await db.connect();
  });
  after(async () => {
    await db?.end();
    await cluster?.stop();
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  const url = (name: string) => cluster.node(name).url;
  const jwks = async (name: string) =>
    (await httpJson(`${url(name)}/.well-known/jwks.json`, { method: 'GET' })).body as Json;
  const kids = async (name: string) => ((await jwks(name)).keys as Json[]).map((k) => k.kid as string);
  const sealed = async (name: string) =>
    (await db.query<{ value: string }>('SELECT value FROM meta WHERE key = $1', [keyRingMetaKey(name)])).rows[0]
      ?.value ?? '';
  function freshDir(): string {
    const dir = mkdtempSync(join(tmpdir(), 'baton-cluster-keys-'));
    dirs.push(dir);
    return dir;
  }

  it('a token issued on node A verifies with node B’s JWKS; a rotation on A reaches B without a restart', async () => {
    const consoleA = await TestConsole.enrol(url('A'), cluster.admin('A'));
    const { authenticator } = await enrolOperator(cluster.admin('A'), consoleA);
    const first = ((await signIn(consoleA, authenticator)).body as Json).token as string;
    const firstKid = decodeProtectedHeader(first).kid;
    assert.deepEqual(await kids('B'), await kids('A'), 'both nodes publish the same keys');
    await jwtVerify(first, createLocalJWKSet(await jwks('B')));

    const rotated = (await cluster.admin('A').ok('POST', '/v1/admin/signing-keys/rotate', { key: 'token' })) as Json;
    assert.equal(rotated.previousKid, firstKid);
    const second = ((await signIn(consoleA, authenticator)).body as Json).token as string;
    assert.equal(decodeProtectedHeader(second).kid, rotated.kid, 'A signs with the new key at once');

    // B serves its JWKS from a ring read at most JWKS_READ_MS (100 ms) before the request, so an app that
    // meets the new kid gets it from B too: a second after the rotation (B read its ring just before it,
    // for the JWKS above, and re-read it on its own only every 5 s before) it must be there.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    assert.deepEqual(await kids('B'), [rotated.kid, firstKid], `node B publishes the new key: ${cluster.state('B')}`);
    const keySetB = createLocalJWKSet(await jwks('B'));
    await jwtVerify(second, keySetB);
    await jwtVerify(first, keySetB);

    // B signs with the new key too (a console signing in through B).
    const consoleB = new TestConsole(url('B'), consoleA.key, consoleA.id);
    const fromB = ((await signIn(consoleB, authenticator)).body as Json).token as string;
    assert.equal(decodeProtectedHeader(fromB).kid, rotated.kid);
    await jwtVerify(fromB, createLocalJWKSet(await jwks('A')));
  });

  it('checkpoints signed on node A verify on node B, also after the checkpoint key is rotated on A', async () => {
    const rotated = (await cluster
      .admin('A')
      .ok('POST', '/v1/admin/signing-keys/rotate', { key: 'checkpoint' })) as Json;
    const listed = (await cluster.admin('B').ok('GET', '/v1/admin/events/checkpoints')) as Json;
    const mine = (listed.checkpoints as Json[]).find((c) => c.kid === rotated.kid);
    assert.ok(mine !== undefined, 'the key-rotated checkpoint A signed is listed on B');
    assert.ok(
      (listed.checkpoints as Json[]).every((c) => c.valid === true),
      JSON.stringify(listed.checkpoints),
    );
    assert.ok((listed.keys as Json[]).some((k) => k.kid === rotated.kid));
    const report = (await cluster.admin('B').ok('GET', '/v1/admin/events/verify?origin=backend')) as Json;
    assert.ok(
      !(report.problems as Json[]).some((p) => p.problem === 'checkpoint-invalid'),
      JSON.stringify(report.problems),
    );
  });

  it('the sealed ring holds no private key in the clear, and is bound to the key-encryption key every node holds', async () => {
    const kek = KeyEncryptionKey.read(join(cluster.node('A').dataDir, KEY_ENCRYPTION_KEY_FILE)) as KeyEncryptionKey;
    const record = await sealed('token');
    const ring = JSON.parse(kek.open(record, keyRingMetaKey('token'))) as Json;
    const d = (ring.keys as Json[]).find((k) => k.retiredAt === null)?.jwk.d as string;
    assert.ok(d.length > 20);
    const dump = JSON.stringify((await db.query('SELECT * FROM meta')).rows);
    assert.equal(dump.includes(d), false);
    for (const node of ['A', 'B'])
      assert.ok(!readdirSync(cluster.node(node).dataDir).includes('token-signing-key.json'));
  });

  it('a node without the key-encryption key, or with another one, refuses to start with its code and makes no keys', async () => {
    const before = await sealed('token');
    const missing = freshDir();
    const refused = await startRefused(missing, cluster.databaseUrl);
    assert.equal(refused.code, 1, refused.output.join('\n'));
    const line = refused.output.find((l) => l.startsWith('KEY_ENCRYPTION_KEY_MISSING: '));
    assert.ok(line?.includes(join(missing, KEY_ENCRYPTION_KEY_FILE)), refused.output.join('\n'));
    assert.equal(existsSync(join(missing, KEY_ENCRYPTION_KEY_FILE)), false);

    const wrong = freshDir();
    KeyEncryptionKey.create(join(wrong, KEY_ENCRYPTION_KEY_FILE));
    const mismatch = await startRefused(wrong, cluster.databaseUrl);
    assert.equal(mismatch.code, 1, mismatch.output.join('\n'));
    assert.ok(
      mismatch.output.some((l) => l.startsWith('KEY_ENCRYPTION_KEY_MISMATCH: ')),
      mismatch.output.join('\n'),
    );
    assert.equal(await sealed('token'), before, 'the cluster’s ring is untouched');
  });

  it('a sealed ring changed in the database (a byte changed, or a key of the attacker’s put in) is refused', async () => {
    const original = await sealed('token');
    const node = freshDir();
    copyFileSync(join(cluster.node('A').dataDir, KEY_ENCRYPTION_KEY_FILE), join(node, KEY_ENCRYPTION_KEY_FILE));
    const set = (value: string) =>
      db.query('UPDATE meta SET value = $1 WHERE key = $2', [value, keyRingMetaKey('token')]);
    try {
      const record = JSON.parse(original) as Json;
      const ct = Buffer.from(record.ct as string, 'base64url');
      ct[7] = (ct[7] ?? 0) ^ 0x20;
      await set(JSON.stringify({ ...record, ct: ct.toString('base64url') }));
      const flipped = await startRefused(node, cluster.databaseUrl);
      assert.equal(flipped.code, 1);
      assert.ok(
        flipped.output.some((l) => l.startsWith('KEY_RING_TAMPERED: ')),
        flipped.output.join('\n'),
      );

      // The attacker's own ring (their key active), sealed under a key of theirs but naming the cluster's.
      const theirs = KeyEncryptionKey.create(join(freshDir(), KEY_ENCRYPTION_KEY_FILE));
      const forged = await KeyRing.fresh(Date.now());
      const plain = JSON.stringify({ version: 1, name: 'token', generation: 1000, keys: forged.entries });
      await set(JSON.stringify({ ...JSON.parse(theirs.seal(plain, keyRingMetaKey('token'))), kek: record.kek }));
      const planted = await startRefused(node, cluster.databaseUrl);
      assert.equal(planted.code, 1);
      assert.ok(
        planted.output.some((l) => l.startsWith('KEY_RING_TAMPERED: ')),
        planted.output.join('\n'),
      );
      // The running nodes keep serving with the keys they hold, and never publish the attacker's key.
      for (const name of ['A', 'B']) {
        const published = await kids(name);
        assert.ok(published.length >= 1);
        assert.equal(published.includes(forged.active.kid), false);
      }
    } finally {
      await set(original);
    }
  });
});
