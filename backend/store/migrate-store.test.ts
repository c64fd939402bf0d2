/**
 * migrateStore() on a throwaway PostgreSQL: thousands of events across many INSERT batches and digest
 * pages, text and blobs that must survive byte for byte, a composite primary key (WITHOUT ROWID), the
 * event cursor sequence set after the copy, request nonces claimed before the move still refused on
 * the copy, all or nothing when the copy fails half-way, a missing row named by the verification, the
 * revocation epoch counter carried and verified (advanced after a restore, above every stored epoch), and
 * a target holding data at an older schema refused as it was. The end-to-end test (a real backend, the
 * CLI as a child process) is test/integration/migrate-store.test.ts.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import pg from 'pg';
import pino from 'pino';
import type { EventDraft } from '../../shared/events.js';
import { NONCE_KIND } from '../crypto/console-signature.js';
import { EventLog } from '../services/event-log.js';
import { filesOutsideDatabase, migrateStore } from './migrate-store.js';
import { migratePostgres, POSTGRES_MIGRATIONS } from './postgres-migrations.js';
import { openPostgresStore } from './postgres-store.js';
import { createDatabase, postgresSkip, startPostgres, type PostgresServer } from './postgres-throwaway.js';
import { DATABASE_FILE, openSqliteStore } from './sqlite-store.js';

const EVENTS = 4_500;
const CLAIMED_AT = 1_733_300_000_000;
const NONCES = Array.from({ length: 3 }, (_, i) => ({ key: `con_1:nonce-${i}`, expiresAt: CLAIMED_AT + 300_000 }));
const silent = pino({ level: 'silent' });

function policyChanged(version: number): EventDraft {
  return {
    type: 'policy-changed',
    subject: {},
    outcome: 'success',
    reasons: [],
    detail: { version, previousVersion: version - 1, actor: 'test' },
  };
}

/** Every SERVICE_EVERY-th event is about a service (its `service_id` column is copied like every other). */
const SERVICE_EVERY = 900;

function serviceEnrolled(service: string): EventDraft {
  return { type: 'service-enrolled', subject: { service }, outcome: 'success', reasons: [] };
}

async function onDatabase<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

describe('migrateStore: batches, paging, exact values, all or nothing', { skip: postgresSkip() }, () => {
  let server: PostgresServer;
  let dataDir: string;

  before(async () => {
    server = await startPostgres();
    dataDir = mkdtempSync(join(tmpdir(), 'baton-migrate-unit-'));
    const store = openSqliteStore({ dataDir, durability: 'normal' });
    const log = new EventLog(store, Date.now, silent);
    for (let i = 0; i < EVENTS; i += 500) {
      await log.atomically(async (uow) => {
        for (let j = i; j < Math.min(EVENTS, i + 500); j++) {
          await uow.record(j % SERVICE_EVERY === 0 ? serviceEnrolled(`svc_${j}`) : policyChanged(j + 1));
        }
      });
    }
    // Request nonces claimed on the embedded store, their window open (migration 29's table).
    await store.ephemeral.claimMany(NONCE_KIND, NONCES, CLAIMED_AT);
    await store.close();
    // Values a careless copy changes: astral and line-separator text, an empty string, NULLs, a blob with
    // every byte value, integers beyond 2^32, a composite key.
    const db = new Database(join(dataDir, DATABASE_FILE));
    db.prepare(
      `INSERT INTO operators (id, display_name, roles, webauthn_user_id, created_at, failed_attempts)
       VALUES ('op-1', ?, '["teller"]', 'u1', 1733300000123, 0)`,
    ).run('Zoë 🙂\u2028Ω "quoted" \\ back');
    db.prepare(
      `INSERT INTO credentials (id, operator_id, public_key, counter, transports, device_bound, backed_up, aaguid,
         attestation_fmt, attestation_trust, registered_on_console, created_at)
       VALUES ('cred-1', 'op-1', ?, 4294967297, '[]', 1, 0, '', 'none', 'none', 'c-1', 1733300000123)`,
    ).run(Buffer.from(Array.from({ length: 256 }, (_, i) => i)));
    for (let epoch = 1; epoch <= 3; epoch++) {
      for (const consoleId of ['c-b', 'c-a']) {
        db.prepare('INSERT INTO revocation_deliveries (epoch, console_id, sent_at, acked_at) VALUES (?, ?, ?, ?)').run(
          epoch,
          consoleId,
          1733300000000 + epoch,
          epoch === 2 ? null : 1733300000500,
        );
      }
    }
    db.close();
  });

  after(async () => {
    await server?.stop();
    if (dataDir !== undefined) rmSync(dataDir, { recursive: true, force: true });
  });

  it('copies across many batches and pages, verifies, and new events follow the copied cursors', async () => {
    const url = await createDatabase(server.url, 'batched');
    const lines: string[] = [];
    const result = await migrateStore({ from: dataDir, to: url, batchRows: 7, print: (l) => lines.push(l) });
    assert.equal(result.ok, true, `${result.difference ?? ''}\n${lines.join('\n')}`);
    assert.equal(result.mode, 'copied');
    const events = result.tables.find((t) => t.table === 'events');
    assert.equal(events?.sourceRows, EVENTS);
    assert.equal(events.targetDigest, events.sourceDigest);
    for (const table of ['operators', 'credentials', 'revocation_deliveries', 'ephemeral_claims']) {
      const summary = result.tables.find((t) => t.table === table);
      assert.ok(summary !== undefined && summary.sourceRows > 0 && summary.sourceDigest === summary.targetDigest);
    }
    assert.deepEqual(
      result.chains.map((c) => [c.origin, c.copy.checked, c.copy.intact]),
      [['backend', EVENTS, true]],
    );
    await onDatabase(url, async (client) => {
      const blob = await client.query<{ public_key: Buffer; counter: string }>(
        "SELECT public_key, counter::text AS counter FROM credentials WHERE id = 'cred-1'",
      );
      assert.deepEqual(
        [...(blob.rows[0]?.public_key ?? [])],
        Array.from({ length: 256 }, (_, i) => i),
      );
      assert.equal(blob.rows[0]?.counter, '4294967297');
      const services = await client.query<{ seq: number; service_id: string }>(
        'SELECT seq::int AS seq, service_id FROM events WHERE service_id IS NOT NULL ORDER BY seq',
      );
      assert.deepEqual(
        services.rows,
        Array.from({ length: EVENTS / SERVICE_EVERY }, (_, k) => ({
          seq: k * SERVICE_EVERY + 1,
          service_id: `svc_${k * SERVICE_EVERY}`,
        })),
      );
    });
    // A node on the copy appends after the copied chain, at the next cursor.
    const store = await openPostgresStore({ url });
    try {
      const stored = await new EventLog(store, Date.now, silent).record(policyChanged(EVENTS + 1));
      assert.equal(stored.cursor, EVENTS + 1);
      assert.equal(stored.seq, EVENTS + 1);
      // A nonce claimed before the move is refused after it: a captured signed request is not replayed on the copy.
      assert.equal((await store.ephemeral.claimMany(NONCE_KIND, NONCES, CLAIMED_AT + 1000)).size, 0);
    } finally {
      await store.close();
    }
  });

  it('a copy that fails half-way leaves no row behind, and runs again cleanly', async () => {
    const url = await createDatabase(server.url, 'fails_half_way');
    await onDatabase(url, async (client) => {
      await migratePostgres(client);
      await client.query(`CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN IF NEW.seq = ${EVENTS - 10} THEN RAISE EXCEPTION 'disk full (simulated)'; END IF; RETURN NEW; END $$`);
      await client.query('CREATE TRIGGER refuse BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION refuse()');
    });
    await assert.rejects(migrateStore({ from: dataDir, to: url }), /disk full \(simulated\)/);
    await onDatabase(url, async (client) => {
      for (const table of ['operators', 'credentials', 'events', 'event_streams', 'revocation_deliveries']) {
        assert.equal((await client.query(`SELECT 1 FROM ${table}`)).rowCount, 0, table);
      }
      await client.query('DROP TRIGGER refuse ON events');
    });
    const again = await migrateStore({ from: dataDir, to: url });
    assert.equal(again.ok, true, again.difference);
  });

  it('a row missing from the copy is named by --verify-only', async () => {
    const url = await createDatabase(server.url, 'row_missing');
    assert.equal((await migrateStore({ from: dataDir, to: url })).ok, true);
    await onDatabase(url, (client) =>
      client.query("DELETE FROM revocation_deliveries WHERE epoch = 2 AND console_id = 'c-b'"),
    );
    const result = await migrateStore({ from: dataDir, to: url, verifyOnly: true });
    assert.equal(result.ok, false);
    assert.equal(result.mode, 'verified');
    assert.match(result.difference ?? '', /^table revocation_deliveries: 6 rows in the source, 5 in the copy/);
    assert.match(result.difference ?? '', /epoch=2, console_id=c-b/);
  });

  it('a target another client holds (a node running on it) is refused instead of waited for', async () => {
    const url = await createDatabase(server.url, 'in_use', { migrated: true });
    const holder = new pg.Client({ connectionString: url });
    await holder.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('SELECT COUNT(*) FROM consoles'); // a node's open transaction holds a share lock
      await assert.rejects(
        migrateStore({ from: dataDir, to: url, lockTimeoutMs: 300 }),
        (error: Error) => error.name === 'MigrationRefused' && /is in use .*Nothing was written/.test(error.message),
      );
    } finally {
      await holder.query('ROLLBACK');
      await holder.end();
    }
    await onDatabase(url, async (client) => {
      assert.equal((await client.query('SELECT 1 FROM events')).rowCount, 0);
    });
  });

  it('lists the key-encryption key first, not the imported key files, and refuses sealed rings whose KEK is missing', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'baton-migrate-kek-'));
    try {
      const store = openSqliteStore({ dataDir: dir, durability: 'normal' });
      await store.meta.set('key-ring:token', '{"sealed":"by a KEK that is not here"}');
      await store.close();
      writeFileSync(join(dir, 'bootstrap-admin-token'), 'x', { mode: 0o600 });
      writeFileSync(join(dir, 'token-signing-key.json.imported'), '{}', { mode: 0o600 });
      const url = await createDatabase(server.url, 'kek_missing');
      await assert.rejects(
        migrateStore({ from: dir, to: url }),
        (error: Error) =>
          error.name === 'MigrationRefused' &&
          /key-encryption-key does not exist.*KEY_ENCRYPTION_KEY_MISSING.*Nothing was written/.test(error.message),
      );
      await onDatabase(url, async (client) => {
        const tables = await client.query(`SELECT 1 FROM information_schema.tables WHERE table_name = 'events'`);
        if (tables.rowCount === 1) assert.equal((await client.query('SELECT 1 FROM events')).rowCount, 0);
      });
      writeFileSync(join(dir, 'key-encryption-key'), 'k', { mode: 0o600 });
      assert.deepEqual(filesOutsideDatabase(dir), ['key-encryption-key', 'bootstrap-admin-token']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  describe('the revocation epoch counter', () => {
    const revocation = {
      kind: 'operator' as const,
      targetId: 'op-r',
      operatorId: 'op-r',
      consoleId: null,
      reason: 'left',
      actor: 'admin',
      at: CLAIMED_AT,
    };
    /** Moved past epochs consoles may have seen (advance-revocation-epoch after a restore): above every stored one. */
    const ADVANCED = 1_000_003;
    let advancedDir: string;

    before(async () => {
      advancedDir = mkdtempSync(join(tmpdir(), 'baton-migrate-epoch-'));
      const store = openSqliteStore({ dataDir: advancedDir, durability: 'normal' });
      for (let i = 0; i < 3; i++) await store.revocations.insert(revocation);
      assert.deepEqual(await store.revocations.advanceEpoch(ADVANCED), { from: 3, to: ADVANCED });
      await store.close();
    });

    after(() => {
      if (advancedDir !== undefined) rmSync(advancedDir, { recursive: true, force: true });
    });

    it('is carried: the next revocation on the copy takes an epoch above the one advanced on SQLite', async () => {
      const url = await createDatabase(server.url, 'epoch_carried');
      const result = await migrateStore({ from: advancedDir, to: url });
      assert.equal(result.ok, true, result.difference);
      const store = await openPostgresStore({ url });
      try {
        assert.equal((await store.revocations.insert(revocation)).epoch, ADVANCED + 1);
      } finally {
        await store.close();
      }
      assert.deepEqual(result.revocationEpochs, { source: ADVANCED, copy: ADVANCED });
    });

    it('a copy whose counter differs fails the verification, --verify-only and a second run alike', async () => {
      const url = await createDatabase(server.url, 'epoch_differs');
      assert.equal((await migrateStore({ from: advancedDir, to: url })).ok, true);
      // What an older build's copy left: the counter at the highest copied epoch.
      await onDatabase(url, (client) => client.query('UPDATE revocation_epoch SET epoch = 3 WHERE id = 1'));
      for (const verifyOnly of [true, false]) {
        const result = await migrateStore({ from: advancedDir, to: url, verifyOnly });
        assert.equal(result.mode, verifyOnly ? 'verified' : 'already-copied');
        assert.equal(result.ok, false);
        assert.match(
          result.difference ?? '',
          new RegExp(
            `^revocation epoch counter: ${ADVANCED} on the source, 3 on the copy: the copy would hand out epochs 4–${ADVANCED} again`,
          ),
        );
      }
      // A higher one differs too: the copy is not this source's.
      await onDatabase(url, (client) =>
        client.query(`UPDATE revocation_epoch SET epoch = ${ADVANCED + 5} WHERE id = 1`),
      );
      const higher = await migrateStore({ from: advancedDir, to: url, verifyOnly: true });
      assert.equal(higher.ok, false);
      assert.match(higher.difference ?? '', new RegExp(`${ADVANCED} on the source, ${ADVANCED + 5} on the copy`));
    });
  });

  it('a target holding data at an older schema version is refused and left at that version', async () => {
    const url = await createDatabase(server.url, 'older_schema');
    const older = POSTGRES_MIGRATIONS.at(-2)?.version ?? 0;
    await onDatabase(url, async (client) => {
      await migratePostgres(client, POSTGRES_MIGRATIONS.slice(0, -1));
      await client.query("INSERT INTO meta (key, value) VALUES ('someone-else', 'theirs')");
    });
    await assert.rejects(
      migrateStore({ from: dataDir, to: url }),
      (error: Error) =>
        error.name === 'MigrationRefused' &&
        new RegExp(`already holds data at schema version ${older} \\(meta\\).*Nothing was written`).test(error.message),
    );
    await onDatabase(url, async (client) => {
      const version = await client.query<{ v: number }>('SELECT MAX(version)::int AS v FROM schema_migrations');
      assert.equal(version.rows[0]?.v, older);
      assert.deepEqual((await client.query('SELECT key, value FROM meta')).rows, [
        { key: 'someone-else', value: 'theirs' },
      ]);
    });
  });
});
