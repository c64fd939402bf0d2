/**
 * A database that cannot take writes, for real: an embedded SQLite file that is full (its connection
 * may use no page more than it has: `PRAGMA max_page_count`), and a PostgreSQL that answers but accepts
 * no writes (`default_transaction_read_only`, as a demoted primary after a failover). A write gets
 * `STORAGE_UNAVAILABLE` (503, retry later), never `INTERNAL`; nothing stored before changes; the node
 * says why on `/readyz` while the database refuses writes, and recovers by itself.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { kyselyOf } from '../../backend/store/kysely-store.js';
import { httpJson, startTestBackend, TestConsole, type Json, type TestBackend } from '../helpers/backend-harness.js';
import { assertIntactStream, eventually } from '../helpers/console-stream.js';
import { openRawDatabase, type RawDatabase } from '../helpers/raw-database.js';
import { sqliteOnly, TEST_ENGINE } from '../helpers/test-database.js';

/** Events with every reason a console may give (16 of 64 characters): a batch of them needs new pages. */
const bulky = (c: TestConsole, n: number) =>
  Array.from({ length: n }, (_, i) =>
    c.nextEvent({
      type: 'agent-online',
      reasons: Array.from({ length: 16 }, (_, r) => `reason-${i}-${r}-`.padEnd(64, 'x')),
    }),
  );

/** Creates operators until one is refused (an operator and its event fit in a page's free space at first). */
async function firstRefusedWrite(t: TestBackend): Promise<{ answer: Json; created: number }> {
  for (let created = 0; created < 500; created++) {
    const answer = await t.admin.request('POST', '/v1/admin/operators', {
      displayName: `Operator ${created}`.padEnd(100, '.'),
    });
    if (answer.status !== 201) return { answer, created };
  }
  return assert.fail('500 operators created on a full disk');
}

describe('a full disk (SQLite)', { skip: sqliteOnly('the embedded file filled up') }, () => {
  let t: TestBackend;
  before(async () => {
    t = await startTestBackend();
  });
  after(() => t.stop());

  it('refuses an HTTP write and a console batch with STORAGE_UNAVAILABLE; nothing stored before changes; all is stored once there is room', async () => {
    const c = await TestConsole.enrol(t.url, t.admin);
    const socket = await c.connect();
    await socket.next('welcome');
    socket.send({ type: 'events', events: bulky(c, 3) });
    assert.equal((await socket.next('events-ack')).upToSeq, 3);

    const db = kyselyOf(t.backend.store);
    assert.ok(db !== undefined);
    const { rows } = await sql<{ page_count: number }>`PRAGMA page_count`.execute(db);
    await sql.raw(`PRAGMA max_page_count = ${rows[0]?.page_count ?? 0}`).execute(db);

    const { answer, created } = await firstRefusedWrite(t);
    assert.equal(answer.status, 503, JSON.stringify(answer.body));
    assert.equal(answer.body.error.code, 'STORAGE_UNAVAILABLE');
    assert.doesNotMatch(
      answer.body.error.message,
      /disk|full|I\/O/,
      'the database’s state is for the log, not the caller',
    );

    const batch = bulky(c, 100);
    socket.send({ type: 'events', events: batch });
    assert.equal((await socket.next('error')).code, 'STORAGE_UNAVAILABLE');
    assert.equal((await socket.closed).code, 4500);

    await sql.raw('PRAGMA max_page_count = 1073741823').execute(db);
    const again = await c.connect();
    assert.equal((await again.next('welcome')).ackedSeq, 3, 'nothing of the refused batch was acknowledged');
    again.send({ type: 'events', events: batch });
    assert.equal((await again.next('events-ack')).upToSeq, 103);
    await again.close();
    await assertIntactStream(t.admin, c.id, 103);
    const backendChain = (await t.admin.ok('GET', '/v1/admin/events/verify?origin=backend')) as Json;
    assert.equal(backendChain.intact, true, JSON.stringify(backendChain.problems));
    const operators = (await t.admin.ok('GET', '/v1/admin/operators')) as Json;
    assert.equal(operators.operators.length, created, 'the operators created before are there, the refused one is not');
  });
});

describe(
  'a PostgreSQL that accepts no writes',
  { skip: TEST_ENGINE === 'postgres' ? false : 'PostgreSQL only: default_transaction_read_only' },
  () => {
    let t: TestBackend;
    let raw: RawDatabase;
    before(async () => {
      t = await startTestBackend();
      raw = await openRawDatabase(t);
    });
    after(async () => {
      await raw.close();
      await t.stop();
    });

    /** Sets the database read-only (or not) for new sessions, and ends the backend's sessions so that it opens new ones. */
    const readOnly = async (on: boolean) => {
      await raw.exec(
        `ALTER DATABASE ${new URL(t.databaseUrl ?? '').pathname.slice(1)} SET default_transaction_read_only = ${on ? 'on' : 'off'}`,
      );
      await raw.exec(
        'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()',
      );
    };
    const readyz = () => httpJson(`${t.url}/readyz`, { method: 'GET' });

    it('answers a write STORAGE_UNAVAILABLE, not INTERNAL; /readyz says database-read-only; recovers by itself', async () => {
      await t.admin.ok('POST', '/v1/admin/operators', { displayName: 'Before' });
      await readOnly(true);

      // The backend's first statements may meet a session just ended (DATABASE_UNREACHABLE); then each
      // write meets the read-only database. Never a 500, never a write that went through.
      const refused = await eventually(async () => {
        const answer = await t.admin.request('POST', '/v1/admin/operators', { displayName: 'During' });
        const code = answer.body.error?.code as string | undefined;
        assert.ok(code === 'DATABASE_UNREACHABLE' || code === 'STORAGE_UNAVAILABLE', JSON.stringify(answer.body));
        return code === 'STORAGE_UNAVAILABLE' && answer;
      }, 'a write refused STORAGE_UNAVAILABLE');
      assert.equal(refused.status, 503);
      assert.doesNotMatch(
        refused.body.error.message,
        /read-only|standby|recovery/,
        'the database’s state is for the log',
      );

      const notReady = await eventually(async () => {
        const answer = await readyz();
        return answer.status === 503 && (answer.body.problems as string[]).includes('database-read-only') && answer;
      }, '/readyz naming database-read-only');
      assert.equal(notReady.body.ready, false);
      const healthz = await httpJson(`${t.url}/healthz`, { method: 'GET' });
      assert.equal(healthz.status, 503);
      assert.equal((healthz.body.database as Json).error, 'STORAGE_UNAVAILABLE');

      await readOnly(false);
      await eventually(async () => (await readyz()).status === 200, '/readyz 200 again');
      await eventually(
        async () => (await t.admin.request('POST', '/v1/admin/operators', { displayName: 'After' })).status === 201,
        'a write accepted again',
      );
      const names = ((await t.admin.ok('GET', '/v1/admin/operators')) as Json).operators.map(
        (o: Json) => o.displayName as string,
      );
      assert.deepEqual(names.sort(), ['After', 'Before']);
    });
  },
);
