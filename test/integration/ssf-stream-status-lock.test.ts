import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  httpJson,
  startTestBackend,
  TestConsole,
  type HttpResult,
  type Json,
  type TestBackend,
} from '../helpers/backend-harness.js';
import { openRawDatabase, type RawDatabase } from '../helpers/raw-database.js';
import { answerWhileHeld, rowLockSkip } from '../helpers/row-lock.js';

/**
 * A stream's status change (an admin's, the receiver's own `POST /ssf/status`) locks the stream's row
 * (`lockStream`) before it reads the status it replaces, so the `admin-action` event records as previous the
 * status committed last, not one another session was replacing meanwhile. Here another session (what a second
 * node's unit is to this one) holds the row, with its own status change written but not committed, until the
 * backend's unit is seen waiting for the lock (pg_stat_activity): then it commits, and the event must name the
 * status it committed as the previous one. Without the lock the unit reads the status before the other commit
 * and records `enabled` as previous.
 */

const POLL = 'urn:ietf:rfc:8936';
const COMPLIANCE = 'https://schemas.openid.net/secevent/caep/event-type/device-compliance-change';

describe(
  "a stream's status change waits for the stream's row and records the status committed before it",
  { skip: rowLockSkip() },
  () => {
    let t: TestBackend;
    let holder: RawDatabase;
    let watcher: RawDatabase;
    let admin: string;

    before(async () => {
      t = await startTestBackend();
      holder = await openRawDatabase(t);
      watcher = await openRawDatabase(t);
    });

    after(async () => {
      await holder?.close();
      await watcher?.close();
      await t?.stop();
    });

    async function receiverWithStream(name: string): Promise<{ id: string; token: string; streamId: string }> {
      const issued = (await t.admin.ok('POST', '/v1/admin/ssf/receivers', {
        name,
        scopes: ['ssf.manage', 'ssf.read'],
      })) as Json;
      const token = issued.token as string;
      const created = await httpJson(`${t.url}/ssf/streams`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}` },
        body: JSON.stringify({ delivery: { method: POLL }, events_requested: [COMPLIANCE] }),
      });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      // The admin's id as Baton records it (the actor of the receiver's issue).
      const issue = (await t.backend.events.query({ type: 'admin-action', limit: 10_000 })).find(
        (e) => e.reasons.includes('ssf-receiver-issued') && e.detail?.receiver === issued.receiver.id,
      );
      admin = issue?.detail?.actor as string;
      assert.equal(typeof admin, 'string');
      return { id: issued.receiver.id as string, token, streamId: (created.body as Json).stream_id as string };
    }

    const statusEvents = async (streamId: string) =>
      (await t.backend.events.query({ type: 'admin-action', limit: 10_000 }))
        .filter((e) => e.reasons.some((x) => x.startsWith('ssf-stream-')) && e.detail?.stream === streamId)
        .sort((a, b) => a.cursor - b.cursor);

    /** Waits until the admin's view of stream `id` shows `n` SETs queued. */
    async function backlogOf(id: string, n: number): Promise<void> {
      const deadline = Date.now() + 10_000;
      for (;;) {
        const { streams } = (await t.admin.ok('GET', '/v1/admin/ssf/streams')) as Json;
        if ((streams as Json[]).find((x) => x.id === id)?.backlog === n) return;
        assert.ok(Date.now() < deadline, `${n} SET(s) queued`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    }

    /** Holds the stream's row (SELECT … FOR UPDATE) and pauses it, uncommitted, while `change` runs (answerWhileHeld). */
    function changeWhileHeld(streamId: string, change: () => Promise<HttpResult<Json>>): Promise<HttpResult<Json>> {
      const hold = async () => {
        const locked = await holder.all<{ status: string }>(
          'SELECT id, status FROM ssf_streams WHERE id = ? FOR UPDATE',
          streamId,
        );
        assert.deepEqual(
          locked.map((r) => r.status),
          ['enabled'],
        );
        assert.equal(
          await holder.run(
            "UPDATE ssf_streams SET status = 'paused', status_reason = ? WHERE id = ?",
            'other node',
            streamId,
          ),
          1,
        );
      };
      // The waiter is an UPDATE of the stream's row (the status change's unit), its lock request not granted.
      return answerWhileHeld(holder, watcher, hold, change, /^update "ssf_streams"/i);
    }

    async function assertDisabledAfterPaused(streamId: string, receiverId: string, actor: string, reason: string) {
      // What the security team reads: the change replaced the pause committed before it, not `enabled`.
      const recorded = await statusEvents(streamId);
      assert.deepEqual(
        recorded.map((e) => ({
          reasons: e.reasons,
          outcome: e.outcome,
          actor: e.detail?.actor,
          stream: e.detail?.stream,
          receiver: e.detail?.receiver,
          previousStatus: e.detail?.previousStatus,
          status: e.detail?.status,
          reason: e.detail?.reason,
        })),
        [
          {
            reasons: ['ssf-stream-disabled'],
            outcome: 'success',
            actor,
            stream: streamId,
            receiver: receiverId,
            previousStatus: 'paused',
            status: 'disabled',
            reason,
          },
        ],
      );
      // The stream is disabled, in the store and in the admin view, as the last event says.
      const row = await watcher.get<{ status: string; status_reason: string | null }>(
        'SELECT status, status_reason FROM ssf_streams WHERE id = ?',
        streamId,
      );
      assert.deepEqual(row, { status: 'disabled', status_reason: reason });
      const view = ((await t.admin.ok('GET', '/v1/admin/ssf/streams')) as Json).streams.find(
        (x: Json) => x.id === streamId,
      ) as Json;
      assert.equal(view.status, 'disabled');
      assert.equal(recorded.at(-1)?.detail?.status, row?.status);
      // A request that changes nothing now records nothing: the sequence stays one event.
      assert.equal(
        (
          await t.admin.request('POST', `/v1/admin/ssf/streams/${streamId}/status`, {
            status: 'disabled',
            reason,
          })
        ).status,
        200,
      );
      assert.equal((await statusEvents(streamId)).length, 1);
    }

    it("an admin's disable, while another session's uncommitted pause holds the row, records previous `paused`", async () => {
      const r = await receiverWithStream('Status lock (admin)');
      const reason = 'incident 4711';
      const result = await changeWhileHeld(r.streamId, () =>
        t.admin.request('POST', `/v1/admin/ssf/streams/${r.streamId}/status`, { status: 'disabled', reason }),
      );
      assert.equal(result.status, 200, JSON.stringify(result.body));
      assert.deepEqual(result.body, { stream_id: r.streamId, status: 'disabled', reason });
      await assertDisabledAfterPaused(r.streamId, r.id, admin, reason);
    });

    it("the receiver's own POST /ssf/status, likewise: it waits for the row and records previous `paused`", async () => {
      const r = await receiverWithStream('Status lock (receiver)');
      const reason = 'receiver decommissioned';
      const result = await changeWhileHeld(r.streamId, () =>
        httpJson(`${t.url}/ssf/status`, {
          method: 'POST',
          headers: { authorization: `Bearer ${r.token}` },
          body: JSON.stringify({ stream_id: r.streamId, status: 'disabled', reason }),
        }),
      );
      assert.equal(result.status, 200, JSON.stringify(result.body));
      assert.deepEqual(result.body, { stream_id: r.streamId, status: 'disabled', reason });
      await assertDisabledAfterPaused(r.streamId, r.id, `receiver:${r.id}`, reason);
    });

    it('a poll taking SETs while another session pauses the stream hands out none once the pause commits', async () => {
      const r = await receiverWithStream('Status lock (poll)');
      await TestConsole.enrol(t.url, t.admin); // one device-compliance-change SET queued for the stream
      await backlogOf(r.streamId, 1);
      const poll = () =>
        httpJson(`${t.url}/ssf/poll/${r.streamId}`, {
          method: 'POST',
          headers: { authorization: `Bearer ${r.token}` },
          body: JSON.stringify({ returnImmediately: true }),
        });
      // The poll's unit has read the SET and waits for the stream's row; the pause commits first: nothing goes.
      const result = await changeWhileHeld(r.streamId, poll);
      assert.equal(result.status, 200, JSON.stringify(result.body));
      assert.deepEqual(result.body.sets, {}, 'no SET handed out from a stream paused before the hand-out committed');
    });

    it('two polls of one stream at once never hand out the same SET', async () => {
      const r = await receiverWithStream('Status lock (two polls)');
      for (let i = 0; i < 3; i++) await TestConsole.enrol(t.url, t.admin); // three SETs queued
      await backlogOf(r.streamId, 3);
      const poll = () =>
        httpJson(`${t.url}/ssf/poll/${r.streamId}`, {
          method: 'POST',
          headers: { authorization: `Bearer ${r.token}` },
          body: JSON.stringify({ returnImmediately: true }),
        });
      // Both have read the three SETs and wait for the stream's row (another session holds it, changing nothing).
      const [first, second] = await answerWhileHeld(
        holder,
        watcher,
        async () => {
          assert.equal((await holder.all('SELECT id FROM ssf_streams WHERE id = ? FOR UPDATE', r.streamId)).length, 1);
        },
        () => Promise.all([poll(), poll()]),
        /^update "ssf_streams"/i,
        undefined,
        2,
      );
      const jtis = [first, second].flatMap((answer) => Object.keys((answer.body as Json).sets as Json));
      assert.equal(jtis.length, 3, `each SET handed out once: ${jtis.join(', ')}`);
      assert.equal(new Set(jtis).size, 3);
    });
  },
);
