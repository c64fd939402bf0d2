import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { httpJson, startTestBackend, TestConsole, type Json, type TestBackend } from '../helpers/backend-harness.js';
import { enrolOperator } from '../helpers/operator-flow.js';
import { openRawDatabase, type RawDatabase } from '../helpers/raw-database.js';
import { answerWhileHeld, rowLockSkip } from '../helpers/row-lock.js';
import { ConformanceReceiver, type ReceivedSet } from '../helpers/ssf-receiver.js';

/**
 * A revocation has one time. The revoked operator's, passkey's or console's own row (`revoked_at`, what the admin
 * console shows and the Shared Signals SETs report), the revocation record (`at`, what app servers compare tokens'
 * `iat` with) and the events it records (each SET's `event_timestamp`) must say the same instant: the one taken once
 * the revocation's unit holds the target's row and its live sessions. Here another PostgreSQL session (another node's
 * unit of work) holds the target's row while the admin's revocation waits for it, and the test clock moves a minute
 * meanwhile. Before, the row kept the time taken before the wait, a minute earlier than the revocation's `at`.
 */

const CAEP = 'https://schemas.openid.net/secevent/caep/event-type/';
const POLL = 'urn:ietf:rfc:8936';
const OPERATOR_REVOKED = 'urn:baton:event:operator-revoked';

describe('a revocation has one time: the revoked row, the revocation and its SETs', { skip: rowLockSkip() }, () => {
  let t: TestBackend;
  let console: TestConsole;
  let holder: RawDatabase;
  let watcher: RawDatabase;
  // Two and a half minutes behind real time: each test moves it a minute, and the SETs signed at it must not be in
  // the receiver's future (more than 60 s ahead), nor the consoles' signed requests out of the 5-minute window.
  let now = Date.now() - 150_000;
  let poller: { receiver: ConformanceReceiver; token: string; endpoint: string };

  before(async () => {
    t = await startTestBackend({}, { clock: () => now });
    console = await TestConsole.enrol(t.url, t.admin);
    holder = await openRawDatabase(t);
    watcher = await openRawDatabase(t);
    const issued = (await t.admin.ok('POST', '/v1/admin/ssf/receivers', {
      name: 'Revocation times',
      scopes: ['ssf.read', 'ssf.manage'],
    })) as Json;
    const token = issued.token as string;
    const created = await httpJson(`${t.url}/ssf/streams`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}` },
      body: JSON.stringify({
        delivery: { method: POLL },
        events_requested: [`${CAEP}credential-change`, `${CAEP}device-compliance-change`, OPERATOR_REVOKED],
      }),
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const receiver = new ConformanceReceiver({
      issuer: t.backend.adminOrigin,
      audience: issued.receiver.audience as string,
      jwksUri: `${t.url}/ssf/jwks.json`,
    });
    poller = { receiver, token, endpoint: (created.body as Json).delivery.endpoint_url as string };
  });
  after(async () => {
    await holder?.close();
    await watcher?.close();
    await t?.stop();
  });

  /**
   * Revokes through `path` while another session holds `table`'s row `id` (FOR UPDATE), moving the clock a minute
   * once the revocation is seen waiting for it; the revocation's epoch and `at`.
   */
  async function revokeWhileHeld(table: string, id: string, path: string): Promise<{ epoch: number; at: number }> {
    const startedAt = now;
    const outcome = (await answerWhileHeld(
      holder,
      watcher,
      async () => assert.equal((await holder.all(`SELECT id FROM ${table} WHERE id = ? FOR UPDATE`, id)).length, 1),
      () => t.admin.ok('POST', path, { reason: 'left the bank' }),
      // Its locking read of the row (or the UPDATE that revokes it, which took the lock before it read the time).
      new RegExp(`^(select \\* from "${table}" where "id" = \\$1 for no key update|update "${table}")`, 'i'),
      () => {
        now += 60_000;
      },
    )) as Json;
    const listed = ((await t.admin.ok('GET', '/v1/admin/revocations')) as Json).revocations as Json[];
    const at = listed.find((r) => r.epoch === outcome.epoch)?.at as number;
    assert.equal(at, startedAt + 60_000, "the revocation's time is taken after the wait");
    return { epoch: outcome.epoch as number, at };
  }

  /** The stored `revoked_at` of `table`'s row `id`, as the database has it. */
  async function revokedAtOf(table: string, id: string): Promise<unknown> {
    return (await watcher.get<{ revoked_at: number }>(`SELECT revoked_at FROM ${table} WHERE id = ?`, id))?.revoked_at;
  }

  /** The time of the backend event of `type` about `subject` the revocation recorded (the newest). */
  async function eventTime(type: string, match: (e: Json) => boolean): Promise<unknown> {
    const events = ((await t.admin.ok('GET', `/v1/admin/events?type=${type}&limit=1000`)) as Json).events as Json[];
    return events.filter(match).at(-1)?.time;
  }

  /** Polls the stream until a SET that `match`es has come (the fan-out maps events to SETs on its own time). */
  async function transmitted(match: (set: ReceivedSet) => boolean): Promise<ReceivedSet> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const found = poller.receiver.accepted.find(match);
      if (found !== undefined) return found;
      const answer = await poller.receiver.poll(poller.endpoint, poller.token, {
        ack: poller.receiver.accepted.map((s) => s.jti),
        maxEvents: 100,
        returnImmediately: true,
      });
      assert.deepEqual(answer.errors, {});
      assert.ok(Date.now() < deadline, 'the SET was transmitted');
      if (answer.accepted.length === 0) await new Promise((resolve) => setTimeout(resolve, 20)); // polling period
    }
  }
  const seconds = (ms: number) => Math.floor(ms / 1000);
  const subjectOf = (set: ReceivedSet) => set.claims.sub_id as Json;

  it("an operator's revocation that waited for the operator's row: one time in the row, the record, the event and the SET", async () => {
    const { operatorId } = await enrolOperator(t.admin, console, { displayName: 'Ada Teller' });
    const { at } = await revokeWhileHeld('operators', operatorId, `/v1/admin/operators/${operatorId}/revoke`);
    assert.equal(await revokedAtOf('operators', operatorId), at, "the operator's revoked_at");
    const shown = ((await t.admin.ok('GET', `/v1/admin/operators/${operatorId}`)) as Json).operator as Json;
    assert.equal(shown.revokedAt, at, 'what the admin console shows');
    assert.equal(await eventTime('operator-revoked', (e) => e.subject.operator === operatorId), at);
    const set = await transmitted((s) => s.type === OPERATOR_REVOKED && subjectOf(s).user?.sub === operatorId);
    assert.equal(set.event.event_timestamp, seconds(at));
  });

  it("a passkey's revocation that waited for the passkey's row: one time in the row, the record, the event and the SET", async () => {
    const { operatorId, credentialId } = await enrolOperator(t.admin, console, { displayName: 'Bo Teller' });
    const { at } = await revokeWhileHeld('credentials', credentialId, `/v1/admin/credentials/${credentialId}/revoke`);
    assert.equal(await revokedAtOf('credentials', credentialId), at, "the passkey's revoked_at");
    assert.equal(
      await eventTime(
        'credential-change',
        (e) => e.subject.credential === credentialId && e.detail.change_type === 'revoke',
      ),
      at,
    );
    const set = await transmitted(
      (s) =>
        s.type === `${CAEP}credential-change` &&
        s.event.change_type === 'revoke' &&
        subjectOf(s).user?.sub === operatorId,
    );
    assert.equal(set.event.event_timestamp, seconds(at));
  });

  it("a console's revocation that waited for the console's row: one time in the row, the record, the event and the SET", async () => {
    const target = await TestConsole.enrol(t.url, t.admin);
    const { at } = await revokeWhileHeld('consoles', target.id, `/v1/admin/consoles/${target.id}/revoke`);
    assert.equal(await revokedAtOf('consoles', target.id), at, "the console's revoked_at");
    assert.equal(
      await eventTime(
        'device-compliance-change',
        (e) => e.subject.console === target.id && e.detail.current_status === 'not-compliant',
      ),
      at,
    );
    const set = await transmitted(
      (s) =>
        s.type === `${CAEP}device-compliance-change` &&
        s.event.current_status === 'not-compliant' &&
        subjectOf(s).device?.id === target.id,
    );
    assert.equal(set.event.event_timestamp, seconds(at));
  });
});
