import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { TestConsole, httpJson, type Json } from '../helpers/backend-harness.js';
import { Cluster, clusterSkip } from '../helpers/cluster-harness.js';
import { ConformanceReceiver } from '../helpers/ssf-receiver.js';

/**
 * The Shared Signals transmitter's periodic statements on PostgreSQL wait one at a time. Its sweep (every second)
 * renews the fan-out lease, and a delivery round renews its stream's lease every `leaseSeconds / 3` while a
 * receiver takes its time. Both are UPDATEs of one row: while another session holds that row (a node frozen inside
 * its fan-out unit, an operator's long transaction), each waits for it, holding one of the node's pooled
 * connections until the statement timeout (5 s). Started on a timer without waiting for the previous one, they
 * gathered one more waiting connection every second: half the pool of 10 within the timeout, taken from the
 * node's sign-ins and event batches. Here a second session holds each row for WINDOW_MS: the node must keep at
 * most one statement waiting on it, and still take a console's batch meanwhile.
 */

const PUSH = 'urn:ietf:rfc:8935';
const COMPLIANCE = 'https://schemas.openid.net/secevent/caep/event-type/device-compliance-change';
const ISSUER = 'https://baton.bank.example';
/** 3 s: a delivery round renews its stream's lease every second, as the sweep renews the fan-out lease. */
const LEASE_SECONDS = 3;
/** How long the row is held: three or four renewals fall due, fewer than the 5 s statement timeout lets end. */
const WINDOW_MS = 3_600;

describe(
  'Shared Signals leases on PostgreSQL: a row held by another session keeps at most one of the node’s statements waiting',
  { skip: clusterSkip() },
  () => {
    let cluster: Cluster;
    let rx: ConformanceReceiver | undefined;

    before(async () => {
      cluster = await Cluster.startWithConfig(['A'], {
        ssf: { issuer: ISSUER, leaseSeconds: LEASE_SECONDS, retryBaseMs: 50, retryMaxMs: 500 },
      });
    });

    after(async () => {
      rx?.setDown('no');
      await rx?.close();
      await cluster?.stop();
    });

    /**
     * Holds the row `lockSql` selects in a transaction of its own for WINDOW_MS, counting every 50 ms the node's
     * statements it blocks whose text starts with `renewal` (the lease renewal; the fan-out's own unit, mapping
     * the events written meanwhile, waits for the row too); meanwhile `during` runs. Returns the largest count.
     */
    async function holdRow(lockSql: string, renewal: string, during: () => Promise<void>): Promise<number> {
      const holder = new pg.Client({ connectionString: cluster.databaseUrl });
      const watcher = new pg.Client({ connectionString: cluster.databaseUrl });
      await holder.connect();
      await watcher.connect();
      try {
        await holder.query('BEGIN');
        const locked = await holder.query(lockSql);
        assert.equal(locked.rowCount, 1, `${lockSql} locked no row`);
        let most = 0;
        const deadline = Date.now() + WINDOW_MS;
        // Its failure is kept (not left unhandled meanwhile) and thrown once the row is free.
        const work = during().then(
          () => undefined,
          (error: unknown) => (error instanceof Error ? error : new Error(String(error))),
        );
        while (Date.now() < deadline) {
          const { rows } = await watcher.query<{ n: number }>(
            // Waiting for the row, directly or behind another waiter (PostgreSQL queues the second on the first's tuple lock).
            `SELECT count(*)::int AS n FROM pg_stat_activity
             WHERE datname = current_database() AND wait_event_type = 'Lock' AND cardinality(pg_blocking_pids(pid)) > 0
               AND starts_with(query, $1)`,
            [renewal],
          );
          most = Math.max(most, rows[0]?.n ?? 0);
          await sleep(50); // the sampling period of the count, not a wait for an outcome
        }
        // The row goes at the deadline, whatever `during` still does: no unit of the node waits past its timeout.
        await holder.query('ROLLBACK');
        const failed = await work;
        if (failed !== undefined) throw failed;
        return most;
      } finally {
        await holder.query('ROLLBACK').catch(() => undefined);
        await holder.end();
        await watcher.end();
      }
    }

    /** A console enrolled on the node sends one event and gets it acknowledged (committed). */
    async function batchAcknowledged(): Promise<void> {
      const console = await TestConsole.enrol(cluster.node('A').url, cluster.admin('A'));
      const socket = await console.connect();
      try {
        await socket.next('welcome');
        const event = console.nextEvent({ type: 'session-locked', reasons: ['idle'] });
        socket.send({ type: 'events', events: [event] });
        await socket.next('events-ack', (m: Json) => m.upToSeq >= event.seq, 4_000);
      } finally {
        socket.ws.terminate();
      }
    }

    it('the sweep renewing the fan-out lease: one waits, and a console’s batch is still committed', async () => {
      const admin = cluster.admin('A');
      for (let i = 0; ; i++) {
        const view = (await admin.ok('GET', '/v1/admin/ssf/streams')) as Json;
        if (view.node.fanout === true) break;
        assert.ok(i < 300, 'node A never took the fan-out lease');
        await sleep(50);
      }
      const most = await holdRow(
        `SELECT 1 FROM ssf_leases WHERE name = 'ssf:fanout' FOR UPDATE`,
        'update "ssf_leases" set "owner"',
        batchAcknowledged,
      );
      // At least one: the sweep did reach the held row (otherwise this test would show nothing).
      assert.equal(most, 1, `statements of the node waiting on the fan-out lease's row at once: ${most}`);
      for (let i = 0; ; i++) {
        const view = (await admin.ok('GET', '/v1/admin/ssf/streams')) as Json;
        if (view.node.fanout === true) break;
        assert.ok(i < 300, 'the node does not hold the fan-out lease again once the row is free');
        await sleep(50);
      }
    });

    it('a delivery round renewing its stream’s lease while the receiver holds a push: one waits', async () => {
      const admin = cluster.admin('A');
      const issued = (await admin.ok('POST', '/v1/admin/ssf/receivers', {
        name: 'Core banking',
        scopes: ['ssf.manage'],
      })) as Json;
      rx = await new ConformanceReceiver({
        issuer: ISSUER,
        audience: issued.receiver.audience as string,
        jwksUri: `${cluster.node('A').url}/ssf/jwks.json`,
        acceptDuplicates: true,
      }).listen();
      const created = await httpJson(`${cluster.node('A').url}/ssf/streams`, {
        method: 'POST',
        headers: { authorization: `Bearer ${issued.token as string}` },
        body: JSON.stringify({ delivery: { method: PUSH, endpoint_url: rx.url }, events_requested: [COMPLIANCE] }),
      });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      const streamId = created.body.stream_id as string;
      rx.setDown('hold');
      // Enrolling a console is a compliance change: one SET, pushed and held unanswered by the receiver.
      await TestConsole.enrol(cluster.node('A').url, admin);
      const receiver = rx;
      await receiver.until(() => receiver.holding >= 1, 'a push held by the receiver');
      const most = await holdRow(
        `SELECT 1 FROM ssf_streams WHERE id = '${streamId}' FOR UPDATE`,
        'update "ssf_streams" set "lease_owner"',
        () => Promise.resolve(),
      );
      assert.equal(most, 1, `statements of the node waiting on the stream's row at once: ${most}`);
      // The held push answered: the round commits (the SET leaves the queue), its lease renewed meanwhile.
      receiver.setDown('no');
      for (let i = 0; ; i++) {
        const view = (await admin.ok('GET', '/v1/admin/ssf/streams')) as Json;
        const stream = (view.streams as Json[]).find((s) => s.id === streamId) as Json;
        if (stream.backlog === 0 && stream.deliveredCount >= 1) break;
        assert.ok(i < 300, `the held SET never left the queue: ${JSON.stringify(stream)}`);
        await sleep(50);
      }
    });
  },
);
