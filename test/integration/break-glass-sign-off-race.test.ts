import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DEFAULT_POLICY, type Policy } from '../../shared/policy.js';
import { TestConsole, assertError, startTestBackend, type Json, type TestBackend } from '../helpers/backend-harness.js';
import { openRawDatabase, type RawDatabase } from '../helpers/raw-database.js';
import { answerWhileHeld, rowLockSkip } from '../helpers/row-lock.js';

/**
 * A break-glass grant is never signed off while its session can act (docs/break-glass.md), also when the code is
 * redeemed on another node while the sign-off runs: here another PostgreSQL session (what that node's redeem is to
 * this one) marks the grant used by a running session, uncommitted, while the admin's sign-off has already read the
 * grant as unused; once it commits, the sign-off must be refused BREAK_GLASS_SESSION_ACTIVE and the grant stay on the
 * review list. Before, the sign-off's UPDATE only required the grant not to be signed off yet, and went through.
 */
describe(
  'a break-glass grant redeemed on another node during its sign-off is not signed off',
  { skip: rowLockSkip() },
  () => {
    let t: TestBackend;
    let holder: RawDatabase;
    let watcher: RawDatabase;

    before(async () => {
      t = await startTestBackend();
      holder = await openRawDatabase(t);
      watcher = await openRawDatabase(t);
      const current = (await t.admin.ok('GET', '/v1/admin/policy')) as { version: number };
      const policy: Policy = {
        ...DEFAULT_POLICY,
        breakGlass: { lifetimeSeconds: 900, actions: ['customer.view'], maxPerOperatorPerDay: 5, maxPerSitePerDay: 10 },
      };
      await t.admin.ok('POST', '/v1/admin/policy', { baseVersion: current.version, policy });
    });
    after(async () => {
      await holder?.close();
      await watcher?.close();
      await t?.stop();
    });

    it('refuses the sign-off BREAK_GLASS_SESSION_ACTIVE and keeps the grant for review', async () => {
      const kiosk = await TestConsole.enrol(t.url, t.admin);
      const operatorId = ((await t.admin.ok('POST', '/v1/admin/operators', { displayName: 'Ada Teller' })) as Json)
        .operator.id as string;
      const issue = async () =>
        (await t.admin.ok('POST', '/v1/admin/break-glass/codes', {
          operatorId,
          consoleId: kiosk.id,
          reason: 'key left at home',
        })) as { code: string; grantId: string };
      // A running break-glass session (redeemed for real), which the other node's redeem of the second code stands for.
      const first = await issue();
      const redeemed = await kiosk.request('POST', '/v1/break-glass/redeem', { operatorId, code: first.code });
      assert.equal(redeemed.status, 201, JSON.stringify(redeemed.body));
      const sessionId = (redeemed.body as Json).session.id as string;
      const second = await issue();
      const { grantId } = second;

      const hold = async () => {
        const changed = await holder.run(
          'UPDATE break_glass_grants SET used_at = ?, session_id = ? WHERE id = ? AND used_at IS NULL',
          Date.now(),
          sessionId,
          grantId,
        );
        assert.equal(changed, 1);
      };
      const signOff = answerWhileHeld(
        holder,
        watcher,
        hold,
        () => t.admin.request('POST', `/v1/admin/break-glass/${grantId}/sign-off`, { note: 'looked fine' }),
        /^update "break_glass_grants"/i,
      );
      assertError(await signOff, 409, 'BREAK_GLASS_SESSION_ACTIVE');
      const pending = ((await t.admin.ok('GET', '/v1/admin/break-glass')) as Json).grants as Json[];
      assert.ok(
        pending.some((g) => g.id === grantId && g.signedOffAt === null),
        'the grant stays on the review list',
      );
      const signedOff = ((await t.admin.ok('GET', '/v1/admin/events?type=break-glass-signed-off&limit=10')) as Json)
        .events as Json[];
      assert.equal(signedOff.length, 0, 'no sign-off recorded');
    });
  },
);
