/**
 * `npm run migrate-store`: an embedded SQLite deployment populated through a real backend (a console, an
 * operator with a passkey, sign-ins, a revocation, a policy publish, console events, a checkpoint) is
 * moved to a throwaway PostgreSQL by the CLI in a child process; a backend started on the copy shows the
 * same (sign-in with the same passkey, the same audit events, intact chains and checkpoints). Bad inputs:
 * a running backend on the source, a target with other data, a wrong URL, a tampered copy.
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import pg from 'pg';
import pino from 'pino';
import { parseBackendConfig } from '../../backend/config.js';
import { startBackend, type Backend } from '../../backend/server.js';
import { migratePostgres } from '../../backend/store/postgres-migrations.js';
import { DEFAULT_POLICY } from '../../shared/policy.js';
import { AdminClient, TEST_ORIGIN, TestConsole, type Json } from '../helpers/backend-harness.js';
import { enrolOperator, signIn } from '../helpers/operator-flow.js';
import { spawnBackend } from '../helpers/backend-process.js';
import {
  createDatabase,
  freePort,
  postgresSkip,
  startPostgres,
  type PostgresServer,
} from '../helpers/postgres-server.js';
import { runCli, type CliRun } from '../helpers/run-cli.js';
import { TEST_ENGINE } from '../helpers/test-database.js';

/** The tool as IT runs it: a child process, its exit status and its output. */
function runTool(args: string[]): Promise<CliRun> {
  return runCli('backend/store/migrate-store-cli.ts', args);
}

interface Running {
  backend: Backend;
  url: string;
  admin: AdminClient;
}

/** A backend in this process on `dataDir`: embedded SQLite without `databaseUrl`, else that PostgreSQL database. */
async function start(dataDir: string, databaseUrl?: string, adminToken?: string): Promise<Running> {
  const config = parseBackendConfig(
    {
      port: 0,
      origins: [TEST_ORIGIN],
      logLevel: 'silent',
      durability: 'normal',
      dataDir,
      ...(databaseUrl === undefined ? {} : { databaseUrl }),
    },
    'test',
  );
  const backend = await startBackend(config, { logger: pino({ level: 'silent' }) });
  const token = backend.bootstrapAdminToken ?? adminToken;
  assert.ok(token !== undefined, 'an admin token');
  const url = `http://localhost:${backend.port}`;
  return { backend, url, admin: new AdminClient(url, token) };
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

/** Tables in the database's schema (0 = nothing was written, not even the schema). */
function tableCount(url: string): Promise<number> {
  return onDatabase(url, async (client) => {
    const result = await client.query<{ n: number }>(
      `SELECT COUNT(*)::int AS n FROM information_schema.tables WHERE table_schema = 'public'`,
    );
    return result.rows[0]?.n ?? -1;
  });
}

/** Every audit event the admin API returns, by cursor. */
async function auditEvents(admin: AdminClient): Promise<Map<number, Json>> {
  const page = (await admin.ok('GET', '/v1/admin/events?limit=1000')) as Json;
  return new Map((page.events as Json[]).map((e) => [e.cursor as number, e]));
}

const skip =
  TEST_ENGINE === 'postgres' ? 'runs once, in the SQLite pass of the suite (its source is SQLite)' : postgresSkip();

describe('migrate-store: an embedded deployment moved to PostgreSQL', { skip }, () => {
  const dirs: string[] = [];
  let server: PostgresServer;
  let source: string;
  let token: string;
  let consoleRef: TestConsole;
  let passkey: Awaited<ReturnType<typeof enrolOperator>>;
  let seen: Map<number, Json>;
  let policyVersion: number;
  let revokedSessionId: string;
  let copyUrl: string;

  const freshDir = (prefix: string) => {
    const dir = mkdtempSync(join(tmpdir(), prefix));
    dirs.push(dir);
    return dir;
  };

  before(async () => {
    server = await startPostgres();
    source = freshDir('baton-migrate-source-');
    const running = await start(source);
    token = running.admin.token;
    try {
      const admin = running.admin;
      consoleRef = await TestConsole.enrol(running.url, admin);
      passkey = await enrolOperator(admin, consoleRef, { displayName: 'Ada Teller' });
      // A sign-in whose session is revoked, and one that stays active.
      const first = (await signIn(consoleRef, passkey.authenticator)).body as Json;
      revokedSessionId = first.session.id as string;
      await admin.ok('POST', `/v1/admin/sessions/${revokedSessionId}/revoke`, { reason: 'card reported stolen' });
      const second = await signIn(consoleRef, passkey.authenticator);
      assert.equal(second.status, 200, JSON.stringify(second.body));
      // A second operator whose credential is revoked.
      const bob = await enrolOperator(admin, consoleRef, { displayName: 'Bob Teller' });
      await admin.ok('POST', `/v1/admin/credentials/${bob.credentialId}/revoke`, { reason: 'key lost' });
      // A policy publish.
      const current = (await admin.ok('GET', '/v1/admin/policy')) as Json;
      const policy = structuredClone(DEFAULT_POLICY);
      const kiosk = policy.channels['branch-kiosk'];
      assert.ok(kiosk !== undefined);
      kiosk.maxOfflineSeconds = 600;
      const published = (await admin.ok('POST', '/v1/admin/policy', {
        baseVersion: current.version as number,
        policy,
      })) as Json;
      policyVersion = published.version as number;
      // Console events ingested over the WebSocket.
      const socket = await consoleRef.connect({ policyVersion });
      await socket.next('welcome');
      socket.send({ type: 'events', events: [consoleRef.nextEvent(), consoleRef.nextEvent()] });
      await socket.next('events-ack', (m) => m.upToSeq >= consoleRef.seq);
      await consoleRef.roundTrip(socket);
      await socket.close();

      seen = await auditEvents(admin);
    } finally {
      await running.backend.stop(); // signs a checkpoint on shutdown
    }

    // The real backend CLI running on the source holds its lock: refused, nothing written to the target.
    const tokenFile = join(freshDir('baton-migrate-token-'), 'token');
    const cli = await spawnBackend({ dataDir: source, tokenFile, origin: TEST_ORIGIN });
    try {
      const target = await createDatabase(server.url, 'while_running');
      const refused = await runTool(['--from', source, '--to', target]);
      assert.equal(refused.code, 2, refused.stdout + refused.stderr);
      assert.match(refused.stderr, /is running on .*stop it first/);
      assert.equal(await tableCount(target), 0, 'nothing written while the backend runs');
    } finally {
      cli.child.kill('SIGTERM');
      await cli.exited;
    }
  });

  after(async () => {
    await server?.stop();
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  it('copies every table and chain, verifies them, and a backend on the copy shows the same', async () => {
    copyUrl = await createDatabase(server.url, 'the_copy');
    const run = await runTool(['--from', source, '--to', copyUrl]);
    assert.equal(run.code, 0, run.stdout + run.stderr);
    assert.match(run.stdout, /^events\s+\d+\s+[0-9a-f]{16}\s+equal$/m);
    assert.match(run.stdout, /^chain_checkpoints\s+[1-9]\d*\s+[0-9a-f]{16}\s+equal$/m);
    // The request nonces the sign-ins claimed (migration 29's table), copied and verified.
    assert.match(run.stdout, /^ephemeral_claims\s+[1-9]\d*\s+[0-9a-f]{16}\s+equal$/m);
    assert.match(run.stdout, /Event chains: \d+ re-walked on the copy .* \d+ intact/);
    assert.match(run.stdout, /^OK: /m);

    // The files the database does not hold are listed; a node's data directory gets exactly those.
    const listed = run.stdout
      .split('Not in the database')[1]
      ?.split('\n')
      .slice(1)
      .filter((line) => line.startsWith('  '))
      .map((line) => line.trim());
    assert.ok(listed !== undefined && listed.length > 0, run.stdout);
    // The key-encryption key first (every node needs it to open the sealed key rings); imported key files not at all.
    const others = readdirSync(source)
      .filter(
        (f) => !/^baton\.(db|db-wal|db-shm|lock)$/.test(f) && f !== 'key-encryption-key' && !f.endsWith('.imported'),
      )
      .sort();
    assert.deepEqual(listed, ['key-encryption-key', ...others]);
    const node = freshDir('baton-migrate-node-');
    for (const file of listed) copyFileSync(join(source, file), join(node, file));

    // Sources' cursors are kept: the copy's identity continues after them.
    const sourceDb = new Database(join(source, 'baton.db'), { readonly: true });
    const sourceMax = (sourceDb.prepare('SELECT MAX(cursor) AS m FROM events').get() as { m: number }).m;
    const sourceCount = (sourceDb.prepare('SELECT COUNT(*) AS n FROM events').get() as { n: number }).n;
    const sourceEpoch = (sourceDb.prepare('SELECT MAX(epoch) AS m FROM revocations').get() as { m: number }).m;
    sourceDb.close();

    const copy = await start(node, copyUrl, token);
    try {
      // The audit trail: every event the source showed, the same, at the same cursor.
      const events = await auditEvents(copy.admin);
      for (const [cursor, event] of seen) assert.deepEqual(events.get(cursor), event, `event at cursor ${cursor}`);
      assert.equal([...events.keys()].filter((c) => c <= sourceMax).length, sourceCount);
      // Chains and the signed checkpoint (its key file copied to the node) verify on the copy.
      for (const origin of ['backend', consoleRef.id]) {
        const report = (await copy.admin.ok('GET', `/v1/admin/events/verify?origin=${origin}`)) as Json;
        assert.equal(report.intact, true, `${origin}: ${JSON.stringify(report.problems)}`);
      }
      const checkpoints = (await copy.admin.ok('GET', '/v1/admin/events/checkpoints')) as Json;
      assert.ok(checkpoints.checkpoints.length >= 1);
      assert.ok(
        (checkpoints.checkpoints as Json[]).every((c) => c.valid === true),
        JSON.stringify(checkpoints.checkpoints),
      );
      // The policy as published.
      assert.equal(((await copy.admin.ok('GET', '/v1/admin/policy')) as Json).version, policyVersion);
      // The operator signs in with the same passkey on the same console (same key, same id).
      const sameConsole = new TestConsole(copy.url, consoleRef.key, consoleRef.id);
      const signedIn = await signIn(sameConsole, passkey.authenticator);
      assert.equal(signedIn.status, 200, JSON.stringify(signedIn.body));
      assert.equal((signedIn.body as Json).session.operatorId, passkey.operatorId);
      // New events get cursors after the copied ones.
      const after = await auditEvents(copy.admin);
      assert.ok(Math.max(...after.keys()) > sourceMax);
      // A revocation on the copy takes the epoch after the copied ones (consoles that saw them miss nothing).
      assert.ok(sourceEpoch >= 2, `the source holds its revocations (${sourceEpoch})`);
      const revoked = (await copy.admin.ok(
        'POST',
        `/v1/admin/sessions/${(signedIn.body as Json).session.id as string}/revoke`,
        {
          reason: 'after the move',
        },
      )) as Json;
      assert.equal(revoked.epoch, sourceEpoch + 1);
    } finally {
      await copy.backend.stop();
    }
  });

  it('run again on the same copy: verifies only, writes nothing; --verify-only agrees', async () => {
    const again = await runTool(['--from', source, '--to', copyUrl]);
    // The backend that ran on the copy added events: it is no longer exactly this copy.
    assert.equal(again.code, 2, again.stdout + again.stderr);
    assert.match(again.stderr, /already holds data that is not a copy of this source/);

    const fresh = await createDatabase(server.url, 'second_copy');
    assert.equal((await runTool(['--from', source, '--to', fresh])).code, 0);
    const rerun = await runTool(['--from', source, '--to', fresh]);
    assert.equal(rerun.code, 0, rerun.stdout + rerun.stderr);
    assert.match(rerun.stdout, /already holds exactly this copy/);
    const verify = await runTool(['--from', source, '--to', fresh, '--verify-only']);
    assert.equal(verify.code, 0, verify.stdout + verify.stderr);
  });

  it('a target holding other data is refused and left as it was', async () => {
    const other = await createDatabase(server.url, 'other_data');
    await onDatabase(other, async (client) => {
      await migratePostgres(client);
      await client.query(`INSERT INTO meta (key, value) VALUES ('someone-else', 'x')`);
    });
    const run = await runTool(['--from', source, '--to', other]);
    assert.equal(run.code, 2, run.stdout + run.stderr);
    assert.match(run.stderr, /already holds data .*meta \(1 rows\).*Nothing was written/);
    await onDatabase(other, async (client) => {
      assert.equal((await client.query('SELECT * FROM meta')).rowCount, 1);
      assert.equal((await client.query('SELECT * FROM operators')).rowCount, 0);
      assert.equal((await client.query('SELECT * FROM events')).rowCount, 0);
    });
  });

  it('a wrong URL is a clear error that never shows the password', async () => {
    const closed = await freePort();
    const secret = 'Sup3r-s3cret-pw';
    const unreachable = await runTool([
      '--from',
      source,
      '--to',
      `postgres://baton:${secret}@127.0.0.1:${closed}/baton`,
    ]);
    assert.equal(unreachable.code, 2);
    assert.match(unreachable.stderr, /cannot be reached/);
    const missing = await runTool([
      '--from',
      source,
      '--to',
      `postgres://baton:${secret}@127.0.0.1:${server.port}/no_such_database`,
    ]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /no_such_database/);
    const notPostgres = await runTool(['--from', source, '--to', `mysql://baton:${secret}@127.0.0.1/baton`]);
    assert.equal(notPostgres.code, 2);
    assert.match(notPostgres.stderr, /--to must be a postgres:\/\//);
    for (const run of [unreachable, missing, notPostgres]) {
      assert.ok(!`${run.stdout}${run.stderr}`.includes(secret), `${run.stdout}${run.stderr}`);
    }
  });

  it('--verify-only catches an event tampered with in the copy, naming it', async () => {
    const target = await createDatabase(server.url, 'tampered');
    assert.equal((await runTool(['--from', source, '--to', target])).code, 0);
    const cursor = await onDatabase(target, async (client) => {
      const row = (
        await client.query<{ cursor: string }>(
          `UPDATE events SET body = replace(body, '"outcome":"success"', '"outcome":"failure"')
            WHERE cursor = (SELECT MIN(cursor) FROM events WHERE origin = 'backend' AND body LIKE '%"outcome":"success"%')
            RETURNING cursor::text`,
        )
      ).rows[0];
      assert.ok(row !== undefined, 'an event to tamper with');
      return row.cursor;
    });
    const run = await runTool(['--from', source, '--to', target, '--verify-only']);
    assert.equal(run.code, 1, run.stdout + run.stderr);
    assert.match(
      run.stdout,
      new RegExp(`DIFFERENCE: table events: content differs \\(row cursor=${cursor} differs\\)`),
    );
    assert.match(run.stdout, /chain backend: DIFFERS on the copy .*hash-mismatch/);
  });
});
