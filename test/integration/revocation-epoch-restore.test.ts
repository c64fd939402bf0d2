/**
 * IT restores the database from a backup (docs/operations.md, "Backup and restore"): the store's
 * revocation epoch goes back while consoles remember the higher epochs they applied since the backup.
 * A console offline while an operator is revoked afterwards must still be told when it reconnects with
 * its (higher) remembered epoch: at once when the store is behind it (the backend catches up a console
 * ahead), and after the store passed its epoch too once IT advanced the counter at the restore
 * (backend/advance-revocation-epoch-cli.ts, a child process as IT runs it). On the suite's engine:
 * a SQLite data directory (the database file copied with SQLite's backup API, the backend stopped),
 * or a PostgreSQL database (copied as a template database).
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import pg from 'pg';
import { acquireDataDirLock } from '../../backend/data-dir-lock.js';
import { DATABASE_FILE } from '../../backend/store/sqlite-store.js';
import { startTestBackend, TestConsole, type Json, type TestBackend } from '../helpers/backend-harness.js';
import { enrolOperator, signIn } from '../helpers/operator-flow.js';
import { runCli, type CliRun } from '../helpers/run-cli.js';
import { tempDir } from '../helpers/temp-dir.js';
import { dropTestDatabase, sqliteOnly, testPostgresServer } from '../helpers/test-database.js';

/** The restore step as IT runs it: a child process, its exit status and its output. */
function advanceEpochs(t: { dataDir: string; databaseUrl: string | undefined }, more: string[] = []): Promise<CliRun> {
  const args = [
    ...['--data-dir', t.dataDir, ...(t.databaseUrl === undefined ? [] : ['--database', t.databaseUrl])],
    ...more,
  ];
  return runCli('backend/advance-revocation-epoch-cli.ts', args);
}

/** Plain SQL on the throwaway PostgreSQL server's maintenance database. */
async function onServer(statements: string[]): Promise<void> {
  const client = new pg.Client({ connectionString: (await testPostgresServer()).url });
  await client.connect();
  try {
    for (const statement of statements) await client.query(statement);
  } finally {
    await client.end();
  }
}

/** Backs up the database of a stopped backend; `restore()` puts the copy back in its place. */
async function backUp(t: TestBackend): Promise<{ restore: () => Promise<void>; discard: () => Promise<void> }> {
  if (t.databaseUrl === undefined) {
    const file = join(t.dataDir, DATABASE_FILE);
    const copy = join(tempDir('baton-backup-'), DATABASE_FILE);
    const db = new Database(file, { readonly: true });
    try {
      await db.backup(copy);
    } finally {
      db.close();
    }
    return {
      restore: async () => {
        for (const suffix of ['', '-wal', '-shm']) rmSync(`${file}${suffix}`, { force: true });
        const db = new Database(copy, { readonly: true });
        try {
          await db.backup(file);
        } finally {
          db.close();
        }
      },
      discard: () => Promise.resolve(),
    };
  }
  const name = new URL(t.databaseUrl).pathname.slice(1);
  await onServer([`CREATE DATABASE ${name}_backup TEMPLATE ${name}`]);
  return {
    restore: () => onServer([`DROP DATABASE ${name} WITH (FORCE)`, `CREATE DATABASE ${name} TEMPLATE ${name}_backup`]),
    discard: () => onServer([`DROP DATABASE IF EXISTS ${name}_backup WITH (FORCE)`]),
  };
}

/** A console's hello after reconnecting: the welcome, and every message the backend sent before its barrier. */
async function reconnect(console: TestConsole, revocationEpoch: number) {
  const socket = await console.connect({ revocationEpoch });
  const welcome = await socket.next('welcome');
  // The chain goes on where the (restored) backend has it, as the agent's uplink does.
  console.seq = welcome.ackedSeq;
  console.lastHash = welcome.lastHash;
  await console.roundTrip(socket); // everything sent before the ack is in `received`
  await socket.close();
  return { welcome, received: socket.received };
}

/**
 * A backend on its own data directory with a console and an operator (Ida) who is still active in the
 * backup; after the backup, more revocations the console applies (it remembers their epoch); then the
 * backup restored, the restore step run if `advance`, and the backend started again. Ida signs in on the
 * console (over HTTP: its socket stays closed) and is revoked while the console is offline.
 */
async function restoredDeployment(advance: boolean, running: { backend?: TestBackend }) {
  const dataDir = tempDir('baton-restore-');
  let t = await startTestBackend({ dataDir });
  running.backend = t;
  const token = t.admin.token;
  let console = await TestConsole.enrol(t.url, t.admin);
  const restart = async () => {
    t = await startTestBackend({ dataDir }, { adminToken: token });
    running.backend = t;
    console = new TestConsole(t.url, console.key, console.id); // the same console, at the backend's new port
  };
  const ida = await enrolOperator(t.admin, console, { displayName: 'Ida Restored' });
  await revokeNewOperator(t, 'Before Backup');
  await t.stop();
  const backup = await backUp(t);
  try {
    await restart();
    for (const name of ['After One', 'After Two', 'After Three']) await revokeNewOperator(t, name);
    const before = await reconnect(console, 0);
    const remembered = Math.max(...before.received.flatMap((m) => (m.type === 'revocation' ? [m.epoch] : [])));
    assert.equal(remembered, 4, 'the console applied every epoch up to 4 before the restore');
    await t.stop();
    await backup.restore();
    if (advance) {
      const run = await advanceEpochs(t);
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stdout, /moved from 1 to 1000001; the next revocation takes epoch 1000002/);
    }
    await restart();
    const session = ((await signIn(console, ida.authenticator)).body as Json).session as { id: string };
    const revoked = (await t.admin.ok('POST', `/v1/admin/operators/${ida.operatorId}/revoke`, {
      reason: 'card reported stolen',
    })) as Json;
    return { t, console, ida, session, remembered, revokedEpoch: revoked.epoch as number };
  } finally {
    await backup.discard();
  }
}

/** An operator created by the admin and revoked at once: the revocation's epoch. */
async function revokeNewOperator(t: TestBackend, displayName: string): Promise<number> {
  const { operator } = (await t.admin.ok('POST', '/v1/admin/operators', { displayName, roles: ['teller'] })) as Json;
  const revoked = (await t.admin.ok('POST', `/v1/admin/operators/${operator.id as string}/revoke`, {
    reason: 'left',
  })) as Json;
  return revoked.epoch as number;
}

/** What the console reconnecting with its remembered epoch is told of Ida's revocation. */
function revocationOf(received: readonly Json[], operatorId: string) {
  return received.find(
    (m: Json) =>
      m.type === 'revocation' && (m.items as Json[]).some((i) => i.kind === 'operator' && i.targetId === operatorId),
  ) as Json;
}

describe('revocations after a database restored from a backup', () => {
  const started: { backend?: TestBackend }[] = [];
  /** Where a test keeps the backend it runs now: stopped (and its data removed) after the tests. */
  const running = () => {
    const slot: { backend?: TestBackend } = {};
    started.push(slot);
    return slot;
  };
  after(async () => {
    for (const { backend } of started) {
      if (backend === undefined) continue;
      await backend.stop();
      rmSync(backend.dataDir, { recursive: true, force: true });
      await dropTestDatabase(backend.dataDir);
    }
  });

  it('a console ahead of the restored store is caught up on the revocation it missed, and told the store’s epoch', async () => {
    const { console, ida, session, remembered, revokedEpoch } = await restoredDeployment(false, running());
    assert.ok(revokedEpoch <= remembered, `the restored store handed out epoch ${revokedEpoch} again`);

    const { welcome, received } = await reconnect(console, remembered);
    assert.equal(welcome.revocationEpoch, revokedEpoch);
    const catchUp = revocationOf(received, ida.operatorId);
    assert.ok(catchUp !== undefined, `no revocation of Ida reached the console: ${JSON.stringify(received)}`);
    assert.equal(catchUp.epoch, revokedEpoch, 'the store’s epoch, which the console remembers from now on');
    // Ida's session is over: the console is told to end it, and the backend refuses it.
    const stepUp = await console.request('POST', `/v1/sessions/${session.id}/step-up/options`, {
      action: 'payment.approve',
    });
    assert.equal(stepUp.body.error?.code, 'SESSION_NOT_ACTIVE');
  });

  it('after the restore step, a console offline until the store passed its epoch is still caught up', async () => {
    const { t, console, ida, remembered, revokedEpoch } = await restoredDeployment(true, running());
    assert.equal(revokedEpoch, 1_000_002, 'above every epoch handed out before the restore');
    // More revocations while the console is still offline: the store is past what it remembers anyway.
    for (const name of ['Later One', 'Later Two', 'Later Three', 'Later Four']) {
      await revokeNewOperator(t, name);
    }
    const { welcome, received } = await reconnect(console, remembered);
    assert.ok(welcome.revocationEpoch > remembered);
    const catchUp = revocationOf(received, ida.operatorId);
    assert.ok(catchUp !== undefined, `no revocation of Ida reached the console: ${JSON.stringify(received)}`);
    // The admin's revocations list shows the gap as it is: no revocation made up in it.
    const list = (await t.admin.ok('GET', '/v1/admin/revocations')) as Json;
    assert.deepEqual(
      (list.revocations as Json[]).map((r) => r.epoch as number),
      [1, ...[2, 3, 4, 5, 6].map((n) => 1_000_000 + n)],
    );
  });

  it('the restore step with --past moves the counter past a known epoch; a bad argument changes nothing', async () => {
    const dataDir = tempDir('baton-restore-');
    const slot = running();
    const first = await startTestBackend({ dataDir });
    await first.stop();
    const bad = await advanceEpochs(first, ['--past', '12e3']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /usage: advance-revocation-epoch-cli/);
    const run = await advanceEpochs(first, ['--past', '5000']);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /moved from 0 to 5000; the next revocation takes epoch 5001/);
    const t = await startTestBackend({ dataDir }, { adminToken: first.admin.token });
    slot.backend = t;
    assert.equal(await revokeNewOperator(t, 'After Restore'), 5001);
  });

  it(
    'the restore step refuses while a backend runs on the data directory',
    { skip: sqliteOnly('the data directory lock guards the embedded database') },
    async () => {
      const t = await startTestBackend();
      running().backend = t;
      // What `npm start` holds while the backend runs (backend/cli.ts).
      const lock = acquireDataDirLock(t.dataDir);
      try {
        const run = await advanceEpochs(t);
        assert.equal(run.code, 1);
        assert.match(run.stderr, /DATA_DIR_LOCKED/);
      } finally {
        lock.release();
      }
      assert.equal(await revokeNewOperator(t, 'Untouched'), 1, 'the counter did not move');
    },
  );
});
