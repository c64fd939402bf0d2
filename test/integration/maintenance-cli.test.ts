/**
 * The maintenance commands as IT runs them (child processes), given a wrong place: a mistyped data
 * directory or a PostgreSQL database that is not Baton's must be refused with a non-zero exit and one
 * line naming it, and nothing created there (no directory, no `baton.db`, no key-encryption key, no
 * table): otherwise IT reads "rotated" or "moved" for a store nobody uses, and believes a leaked key
 * rotated or the restore step done. A wrong argument ends every one of them with exit code 2 and one
 * usage line, never a stack trace.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import pg from 'pg';
import { createDatabase } from '../helpers/postgres-server.js';
import { runCli, type CliRun } from '../helpers/run-cli.js';
import { tempDir } from '../helpers/temp-dir.js';
import { sqliteOnly, TEST_ENGINE, testPostgresServer } from '../helpers/test-database.js';

const ROTATE = 'backend/rotate-key-cli.ts';
const ADVANCE = 'backend/advance-revocation-epoch-cli.ts';
const MIGRATE = 'backend/store/migrate-store-cli.ts';

/** The refusal a mistyped place gets: exit 1, one line, the stable code, the place named. */
function assertNotFound(run: CliRun, place: string): void {
  assert.equal(run.code, 1, run.stderr);
  assert.equal(run.stdout, '');
  const lines = run.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, run.stderr);
  assert.match(lines[0] ?? '', /^DATABASE_NOT_FOUND: /);
  assert.ok(lines[0]?.includes(place), `${lines[0] ?? ''} names ${place}`);
}

async function publicTables(url: string): Promise<string[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const result = await client.query<{ table_name: string }>(
      `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1`,
    );
    return result.rows.map((r) => r.table_name);
  } finally {
    await client.end();
  }
}

describe(
  'maintenance commands on a data directory without a Baton database',
  { skip: sqliteOnly('the embedded data directory') },
  () => {
    it('rotate-key refuses a mistyped data directory and creates neither it nor a key', async () => {
      const missing = join(tempDir('baton-maint-'), 'var-lib-batn');
      const run = await runCli(ROTATE, ['--data-dir', missing, '--key', 'token']);
      assertNotFound(run, join(missing, 'baton.db'));
      assert.equal(existsSync(missing), false);
    });

    it('advance-revocation-epoch refuses a mistyped data directory and creates nothing', async () => {
      const missing = join(tempDir('baton-maint-'), 'var-lib-batn');
      const run = await runCli(ADVANCE, ['--data-dir', missing]);
      assertNotFound(run, join(missing, 'baton.db'));
      assert.equal(existsSync(missing), false);
    });

    it('both refuse an existing directory that holds no database, and leave it empty', async () => {
      const empty = tempDir('baton-maint-empty-');
      for (const args of [
        [ROTATE, '--data-dir', empty, '--key', 'checkpoint'],
        [ADVANCE, '--data-dir', empty, '--past', '5000'],
      ] as const) {
        const [cli, ...rest] = args;
        assertNotFound(await runCli(cli, rest), join(empty, 'baton.db'));
        assert.deepEqual(readdirSync(empty), [], cli);
      }
    });

    it('migrate-store refuses a mistyped source and does not create it', async () => {
      const missing = join(tempDir('baton-maint-'), 'var-lib-batn');
      const run = await runCli(MIGRATE, ['--from', missing, '--to', 'postgres://baton@127.0.0.1:1/baton']);
      assert.equal(run.code, 2, run.stderr);
      assert.match(run.stderr, /^Refused: There is no baton\.db in .*var-lib-batn/);
      assert.equal(existsSync(missing), false);
    });
  },
);

const postgresPass = TEST_ENGINE === 'postgres' ? false : 'runs in the PostgreSQL pass (BATON_TEST_DATABASE=postgres)';

describe('maintenance commands on a PostgreSQL database without Baton schema', { skip: postgresPass }, () => {
  it('rotate-key and advance-revocation-epoch refuse it, create no table and no key', async () => {
    const server = await testPostgresServer();
    const name = `maint_empty_${process.pid}`;
    const url = await createDatabase(server.url, name);
    const dataDir = tempDir('baton-maint-pg-');
    for (const [cli, ...rest] of [
      [ROTATE, '--key', 'token'],
      [ADVANCE, '--past', '1000'],
    ] as const) {
      const run = await runCli(cli, ['--data-dir', dataDir, '--database', url, ...rest]);
      assert.equal(run.code, 1, run.stderr);
      assert.match(run.stderr, /^DATABASE_NOT_FOUND: The PostgreSQL database \S+ holds no Baton schema/);
      assert.ok(run.stderr.includes(`/${name} holds no Baton schema`), run.stderr);
      assert.deepEqual(await publicTables(url), [], cli);
      assert.deepEqual(readdirSync(dataDir), [], cli);
    }
  });
});

describe('maintenance commands given a wrong argument', () => {
  const cases: [string, string[], RegExp][] = [
    [ROTATE, ['--data-dir', '/nonexistent', '--key', 'token', '--force'], /^Unknown option '--force'/],
    [ROTATE, ['--data-dir', '/nonexistent', '--key', 'tokens'], /^--key must be token or checkpoint \(given: tokens\)/],
    [ROTATE, ['--key', 'token'], /^--data-dir is required/],
    [ROTATE, ['--data-dir', '/nonexistent', '--key', 'token', 'now'], /^Unexpected argument 'now'/],
    [ADVANCE, ['--data-dir', '/nonexistent', '--pasts', '5'], /^Unknown option '--pasts'/],
    [ADVANCE, ['--data-dir', '/nonexistent', '--past', '1e6'], /^--past must be a whole number/],
    [ADVANCE, [], /^--data-dir is required/],
  ];
  for (const [cli, args, problem] of cases) {
    it(`${cli.replace(/^backend\//, '')} ${args.join(' ') || '(no arguments)'}: exit 2, one usage line`, async () => {
      const run = await runCli(cli, args);
      assert.equal(run.code, 2, run.stderr);
      assert.equal(run.stdout, '');
      const lines = run.stderr.trimEnd().split('\n');
      assert.equal(lines.length, 1, run.stderr);
      assert.match(lines[0] ?? '', problem);
      assert.match(lines[0] ?? '', /\. usage: (rotate-key|advance-revocation-epoch)-cli --data-dir <dir> /);
    });
  }
});
