import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestBackend, type Json, type TestBackend } from '../helpers/backend-harness.js';
import { openRawDatabase, type RawDatabase } from '../helpers/raw-database.js';
import { answerWhileHeld, rowLockSkip } from '../helpers/row-lock.js';

/**
 * App servers refuse an operator's, a passkey's or a console's tokens by time (`iat` up to the revocation's `at`,
 * plus a few seconds of skew between Baton's nodes). So the revocation's time must be when it holds what it revokes,
 * not when it started: here another PostgreSQL session (another node's unit of work) holds the operator's row while
 * the admin's revocation waits for it, and the test clock moves on a minute meanwhile; the revocation's `at` must
 * be after that minute (tokens issued meanwhile, for sessions it then closes, have an `iat` in it). Before, `at` was
 * taken before the unit began, a minute too early.
 */
describe("a revocation's time is taken once it holds what it revokes", { skip: rowLockSkip() }, () => {
  let t: TestBackend;
  let holder: RawDatabase;
  let watcher: RawDatabase;
  let now = Date.now();

  before(async () => {
    t = await startTestBackend({}, { clock: () => now });
    holder = await openRawDatabase(t);
    watcher = await openRawDatabase(t);
  });
  after(async () => {
    await holder?.close();
    await watcher?.close();
    await t?.stop();
  });

  it("an operator's revocation that waited a minute for the operator's row is dated after that minute", async () => {
    const operatorId = ((await t.admin.ok('POST', '/v1/admin/operators', { displayName: 'Ada Teller' })) as Json)
      .operator.id as string;
    const startedAt = now;
    const outcome = (await answerWhileHeld(
      holder,
      watcher,
      async () => {
        const rows = await holder.all('SELECT id FROM operators WHERE id = ? FOR UPDATE', operatorId);
        assert.equal(rows.length, 1);
      },
      () => t.admin.ok('POST', `/v1/admin/operators/${operatorId}/revoke`, { reason: 'left the bank' }),
      /^select \* from "operators" where "id" = \$1 for no key update/i,
      () => {
        now += 60_000;
      },
    )) as Json;
    const listed = ((await t.admin.ok('GET', '/v1/admin/revocations')) as Json).revocations as Json[];
    const at = listed.find((r) => r.epoch === outcome.epoch)?.at as number;
    assert.equal(typeof at, 'number');
    assert.ok(at >= startedAt + 60_000, `dated ${at - startedAt} ms after the call began, not after the wait`);
  });
});
