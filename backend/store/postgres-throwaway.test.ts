import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { describe, it } from 'node:test';
import pg from 'pg';
import { createDatabase, postgresSkip, startPostgres } from './postgres-throwaway.js';

async function select1(url: string): Promise<number> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
  await client.connect();
  try {
    const result = await client.query<{ n: number }>('SELECT 1::int AS n');
    return result.rows[0]?.n ?? 0;
  } finally {
    await client.end();
  }
}

describe('throwaway PostgreSQL server (test helper)', { skip: postgresSkip() }, () => {
  it('starts, gives each test its own database, survives kill + restart, and is removed on stop', async () => {
    const server = await startPostgres();
    try {
      assert.equal(await select1(server.url), 1);
      const url = await createDatabase(server.url, 'helper_check');
      assert.match(url, /\/helper_check$/);
      assert.equal(await select1(url), 1);
      await server.kill();
      await assert.rejects(select1(url));
      await server.restart();
      assert.equal(await select1(url), 1);
    } finally {
      await server.stop();
    }
    assert.equal(existsSync(server.dir), false);
  });
});
