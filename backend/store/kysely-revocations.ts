/**
 * Revocations (epochs monotonic across nodes, and gapless but where IT advanced the counter after a
 * restore: `advanceEpoch`) and the ephemeral single-use state
 * (challenges, nonces) shared by every node (Kysely, both dialects).
 */
import { sql } from 'kysely';
import { REVOCATION_KINDS } from '../../shared/protocol.js';
import type { EphemeralRepository, RevocationRecord, RevocationRepository } from './repositories.js';
import { atomic, changed, num, oneOf, optNum, optStr, str, type KyselyContext, type Row } from './kysely-schema.js';

/** Rows per statement of `claimMany` (PostgreSQL allows 65,535 parameters; 3 per row). */
const CLAIM_CHUNK = 1000;

/**
 * Claims a sweep statement walks at most (`KyselyEphemeral.sweep`): on SQLite a statement holds the
 * event loop (about a millisecond per thousand), on PostgreSQL a round trip.
 */
const SWEEP_CHUNK = { sqlite: 1000, postgres: 10_000 } as const;

/**
 * How far a node's clock may be from the PostgreSQL server's (docs/operations.md: run NTP on every
 * node): expired ephemeral entries are kept this long before a sweep deletes them (`sweep`).
 */
export const EPHEMERAL_SKEW_MARGIN_MS = 10 * 60 * 1000;

export class KyselyRevocations implements RevocationRepository {
  constructor(private readonly ctx: KyselyContext) {}

  /**
   * The next epoch, and with it (`deliveredTo`) the delivery rows of consoles it is pushed to right
   * after the commit. PostgreSQL: one statement, one round trip. It raises the counter row
   * `revocation_epoch` (migration 25), which stays locked until this transaction ends: a second
   * writer waits for it and then reads the committed value (or the old one after a rollback), so
   * epochs are handed out and become visible in commit order with no gap even when a writer rolls
   * back, and a console that has seen epoch N can never later miss an epoch below N. The epoch handed
   * out is always above the highest one stored, even when the counter is behind them (rows copied in
   * by migrate-store). SQLite: one writer anyway.
   */
  async insert(
    record: Omit<RevocationRecord, 'epoch'>,
    deliveredTo?: { consoleIds: readonly string[]; at: number },
  ): Promise<RevocationRecord> {
    const values = {
      kind: record.kind,
      target_id: record.targetId,
      operator_id: record.operatorId,
      console_id: record.consoleId,
      reason: record.reason,
      actor: record.actor,
      created_at: record.at,
    };
    const consoleIds = deliveredTo?.consoleIds ?? [];
    if (this.ctx.dialect === 'sqlite') {
      return atomic(this.ctx, async (db) => {
        const row = await db.insertInto('revocations').values(values).returning('epoch').executeTakeFirstOrThrow();
        const epoch = num(row, 'epoch');
        if (deliveredTo !== undefined) {
          await new KyselyRevocations({ ...this.ctx, db, inTransaction: true }).recordDeliveries(
            epoch,
            [...consoleIds],
            deliveredTo.at,
          );
        }
        return { ...record, epoch };
      });
    }
    const result = await sql<{ epoch: number }>`WITH n AS (
        UPDATE revocation_epoch
          SET epoch = GREATEST(epoch, (SELECT COALESCE(MAX(epoch), 0) FROM revocations)) + 1
          WHERE id = 1 RETURNING epoch
      ), r AS (
        INSERT INTO revocations (epoch, kind, target_id, operator_id, console_id, reason, actor, created_at)
        SELECT n.epoch, ${values.kind}, ${values.target_id}, ${values.operator_id}, ${values.console_id},
          ${values.reason}, ${values.actor}, ${values.created_at}::bigint FROM n
        RETURNING epoch
      ), d AS (
        INSERT INTO revocation_deliveries (epoch, console_id, sent_at)
        SELECT r.epoch, a.id, ${deliveredTo?.at ?? 0}::bigint FROM r, unnest(${[...consoleIds]}::text[]) AS a(id)
        ON CONFLICT DO NOTHING
      )
      SELECT epoch FROM r`.execute(this.ctx.db);
    const row = result.rows[0];
    if (row === undefined) throw new Error('database: the revocation epoch counter is missing (migration 25)');
    return { ...record, epoch: num(row, 'epoch') };
  }
  async currentEpoch(): Promise<number> {
    const row = await this.ctx.db
      .selectFrom('revocations')
      .select(sql<number>`COALESCE(MAX(epoch), 0)`.as('epoch'))
      .executeTakeFirstOrThrow();
    return num(row, 'epoch');
  }
  async since(epoch: number): Promise<RevocationRecord[]> {
    const rows = await this.ctx.db
      .selectFrom('revocations')
      .selectAll()
      .where('epoch', '>', epoch)
      .orderBy('epoch')
      .execute();
    return rows.map((row) => ({
      epoch: num(row, 'epoch'),
      kind: oneOf(REVOCATION_KINDS, str(row, 'kind'), 'kind'),
      targetId: str(row, 'target_id'),
      operatorId: optStr(row, 'operator_id'),
      consoleId: optStr(row, 'console_id'),
      reason: str(row, 'reason'),
      actor: str(row, 'actor'),
      at: num(row, 'created_at'),
    }));
  }
  async recordDeliveries(epoch: number, consoleIds: string[], at: number): Promise<void> {
    if (consoleIds.length === 0) return;
    if (this.ctx.dialect === 'postgres') {
      // One statement whatever the number of consoles (arrays, not three parameters a row): atomic
      // on its own, so no transaction around it. In ascending console id, as `recordAcks` inserts its
      // rows: two nodes writing rows of the same consoles (a console connected to both for a moment)
      // take the rows' locks in the same order.
      const ids = [...consoleIds].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
      await sql`INSERT INTO revocation_deliveries (epoch, console_id, sent_at)
        SELECT ${epoch}::bigint, id, ${at}::bigint FROM unnest(${ids}::text[]) AS a(id)
        ON CONFLICT DO NOTHING`.execute(this.ctx.db);
      return;
    }
    // SQLite: one statement too, the ids as one JSON array parameter (json_each), atomic on its own.
    await sql`INSERT INTO revocation_deliveries (epoch, console_id, sent_at)
      SELECT ${epoch}, value, ${at} FROM json_each(${JSON.stringify(consoleIds)}) WHERE true
      ON CONFLICT DO NOTHING`.execute(this.ctx.db);
  }
  async advanceEpoch(past: number): Promise<{ from: number; to: number }> {
    return atomic(this.ctx, async (db) => {
      // The counter first (PostgreSQL: locked, so no revocation commits meanwhile), then the highest stored.
      const counter =
        this.ctx.dialect === 'sqlite'
          ? sql<Row>`SELECT seq AS epoch FROM sqlite_sequence WHERE name = 'revocations'`
          : sql<Row>`SELECT epoch FROM revocation_epoch WHERE id = 1 FOR UPDATE`;
      const row = (await counter.execute(db)).rows[0];
      if (row === undefined && this.ctx.dialect === 'postgres') {
        throw new Error('database: the revocation epoch counter is missing (migration 25)');
      }
      const counted = row === undefined ? 0 : num(row, 'epoch');
      const stored = await new KyselyRevocations({ ...this.ctx, db, inTransaction: true }).currentEpoch();
      const from = Math.max(counted, stored);
      const to = Math.max(from, past);
      if (to === counted) return { from, to };
      if (this.ctx.dialect === 'postgres')
        await sql`UPDATE revocation_epoch SET epoch = ${to} WHERE id = 1`.execute(db);
      // SQLite's AUTOINCREMENT hands out the rowid after the larger of its sequence row and the highest rowid.
      else if (row === undefined)
        await sql`INSERT INTO sqlite_sequence (name, seq) VALUES ('revocations', ${to})`.execute(db);
      else await sql`UPDATE sqlite_sequence SET seq = ${to} WHERE name = 'revocations'`.execute(db);
      return { from, to };
    });
  }
  async recordCatchUp(consoleId: string, epochs: readonly number[], at: number): Promise<void> {
    if (epochs.length === 0) return;
    // In ascending epoch: one console's rows in the order `recordAcks` takes them (console, then epoch).
    const sorted = [...epochs].sort((a, b) => a - b);
    if (this.ctx.dialect === 'postgres') {
      await sql`INSERT INTO revocation_deliveries (epoch, console_id, sent_at)
        SELECT e, ${consoleId}::text, ${at}::bigint FROM unnest(${sorted}::bigint[]) AS a(e)
        ON CONFLICT DO NOTHING`.execute(this.ctx.db);
      return;
    }
    await sql`INSERT INTO revocation_deliveries (epoch, console_id, sent_at)
      SELECT value, ${consoleId}, ${at} FROM json_each(${JSON.stringify(sorted)}) WHERE true
      ON CONFLICT DO NOTHING`.execute(this.ctx.db);
  }
  async recordAck(consoleId: string, epoch: number, at: number): Promise<void> {
    await this.ctx.db
      .updateTable('revocation_deliveries')
      .set({ acked_at: at })
      .where('console_id', '=', consoleId)
      .where('epoch', '<=', epoch)
      .where('acked_at', 'is', null)
      .execute();
  }
  async recordAcks(acks: readonly { consoleId: string; epoch: number; at: number; sentAt?: number }[]): Promise<void> {
    if (acks.length === 0) return;
    // Lock order (repositories.ts): consoles in ascending id, then their deliveries. Each console's entries
    // in ascending epoch, one per epoch, with the range of rows each one marks.
    const r = ackRanges(acks);
    const n = r.ids.length;
    if (this.ctx.dialect === 'postgres' && n === 1 && !this.ctx.inTransaction) {
      // One console, one epoch (the single-console revocation): one statement, atomic on its own, one round
      // trip. Its one console row is locked first (UPDATE), then its deliveries (the scalar
      // subqueries on `c` and `d` run before the statements that use them).
      const [consoleId, epoch, at, sentAt] = [
        r.ids[0] as string,
        r.epochs[0] as number,
        r.ats[0] as number,
        r.sentAts[0],
      ];
      const upsert =
        sentAt === null || sentAt === undefined
          ? sql`SELECT 1 WHERE false`
          : sql`INSERT INTO revocation_deliveries (epoch, console_id, sent_at, acked_at)
              SELECT ${epoch}::bigint, ${consoleId}::text, ${sentAt}::bigint, ${at}::bigint
              WHERE (SELECT count(*) FROM c) > 0 AND NOT EXISTS (SELECT 1 FROM d WHERE d.epoch = ${epoch})
              ON CONFLICT (epoch, console_id) DO UPDATE SET acked_at = excluded.acked_at
              WHERE revocation_deliveries.acked_at IS NULL`;
      await sql`WITH c AS (
          UPDATE consoles SET revocation_epoch = GREATEST(revocation_epoch, ${epoch}::bigint)
          WHERE id = ${consoleId} RETURNING id
        ), d AS (
          UPDATE revocation_deliveries SET acked_at = ${at}
          WHERE console_id = ${consoleId} AND epoch <= ${epoch} AND acked_at IS NULL
            AND (SELECT count(*) FROM c) > 0
          RETURNING epoch
        ), i AS (${upsert})
        SELECT 1`.execute(this.ctx.db);
      return;
    }
    /** Acks whose delivery row the node may not have written yet (`sentAt`): written here if missing (an upsert). */
    const upserts: number[] = [];
    for (let i = 0; i < n; i++) if (r.sentAts[i] !== null) upserts.push(i);
    await atomic(this.ctx, async (db) => {
      if (this.ctx.dialect === 'postgres') {
        // Each console's highest epoch (its last entry), for its own row.
        const ids: string[] = [];
        const highest: number[] = [];
        for (let i = 0; i < n; i++) {
          if (r.ids[i + 1] === r.ids[i]) continue;
          ids.push(r.ids[i] as string);
          highest.push(r.epochs[i] as number);
        }
        await sql`SELECT id FROM consoles WHERE id = ANY(${ids}::text[]) ORDER BY id FOR UPDATE`.execute(db);
        await sql`UPDATE consoles c SET revocation_epoch = GREATEST(c.revocation_epoch, a.epoch)
          FROM unnest(${ids}::text[], ${highest}::bigint[]) AS a(console_id, epoch)
          WHERE c.id = a.console_id`.execute(db);
        // The ranges of one console do not overlap: a row is matched by one entry at most.
        await sql`UPDATE revocation_deliveries d SET acked_at = a.at
          FROM unnest(${r.ids}::text[], ${r.above}::bigint[], ${r.epochs}::bigint[], ${r.ats}::bigint[])
            AS a(console_id, above, epoch, at)
          WHERE d.console_id = a.console_id AND d.epoch > a.above AND d.epoch <= a.epoch
            AND d.acked_at IS NULL`.execute(db);
        if (upserts.length > 0) {
          // A row committed meanwhile (after the UPDATE read) conflicts: marked acknowledged too.
          const all = upserts.length === n;
          await sql`INSERT INTO revocation_deliveries (epoch, console_id, sent_at, acked_at)
            SELECT * FROM unnest(${all ? r.epochs : upserts.map((i) => r.epochs[i])}::bigint[],
              ${all ? r.ids : upserts.map((i) => r.ids[i])}::text[],
              ${all ? r.sentAts : upserts.map((i) => r.sentAts[i])}::bigint[],
              ${all ? r.ats : upserts.map((i) => r.ats[i])}::bigint[])
            ON CONFLICT (epoch, console_id) DO UPDATE SET acked_at = excluded.acked_at
            WHERE revocation_deliveries.acked_at IS NULL`.execute(db);
        }
        return;
      }
      // SQLite: three statements whatever the number of acks (one writer, so no lock order to keep), the
      // acks as one JSON array parameter of [console, above, epoch, at, sentAt | null] (json_each).
      const tuples: unknown[] = new Array(n);
      for (let i = 0; i < n; i++) tuples[i] = [r.ids[i], r.above[i], r.epochs[i], r.ats[i], r.sentAts[i]];
      const rows = JSON.stringify(tuples);
      const acks = sql`(SELECT value ->> 0 AS console_id, value ->> 1 AS above, value ->> 2 AS epoch,
        value ->> 3 AS at, value ->> 4 AS sent_at FROM json_each(${rows}))`;
      await sql`UPDATE consoles SET revocation_epoch = MAX(revocation_epoch, a.epoch)
        FROM (SELECT console_id, MAX(epoch) AS epoch FROM ${acks} GROUP BY console_id) AS a
        WHERE consoles.id = a.console_id`.execute(db);
      await sql`UPDATE revocation_deliveries SET acked_at = a.at FROM ${acks} AS a
        WHERE revocation_deliveries.console_id = a.console_id AND revocation_deliveries.epoch > a.above
          AND revocation_deliveries.epoch <= a.epoch AND revocation_deliveries.acked_at IS NULL`.execute(db);
      if (upserts.length > 0) {
        await sql`INSERT INTO revocation_deliveries (epoch, console_id, sent_at, acked_at)
          SELECT a.epoch, a.console_id, a.sent_at, a.at FROM ${acks} AS a WHERE a.sent_at IS NOT NULL
          ON CONFLICT DO NOTHING`.execute(db);
      }
    });
  }
  async deliveries(epoch: number): Promise<{ consoleId: string; sentAt: number; ackedAt: number | null }[]> {
    const rows = await this.ctx.db
      .selectFrom('revocation_deliveries')
      .selectAll()
      .where('epoch', '=', epoch)
      .orderBy('sent_at')
      .orderBy('console_id')
      .execute();
    return rows.map((row) => ({
      consoleId: str(row, 'console_id'),
      sentAt: num(row, 'sent_at'),
      ackedAt: optNum(row, 'acked_at'),
    }));
  }
}

/**
 * `recordAcks`' entries in ascending console id, then epoch, one per console and epoch (a `sentAt` if
 * any has one, else null), each with `above`: the epoch of its console's previous entry (0 for its
 * first). An entry marks its console's unacknowledged rows above that and up to its epoch, at the
 * earliest `at` of its console's entries of its epoch or higher: the first acknowledgement that covered
 * them. As columns, the arrays the statements take (a fan-out's 10,000 acks: no object per entry).
 */
function ackRanges(acks: readonly { consoleId: string; epoch: number; at: number; sentAt?: number }[]): {
  ids: string[];
  above: number[];
  epochs: number[];
  ats: number[];
  sentAts: (number | null)[];
} {
  const order = acks.length < 2 ? [...acks] : [...acks].sort(byConsoleThenEpoch);
  const ids: string[] = [];
  const above: number[] = [];
  const epochs: number[] = [];
  const ats: number[] = [];
  const sentAts: (number | null)[] = [];
  for (const ack of order) {
    const last = ids.length - 1;
    const same = last >= 0 && ids[last] === ack.consoleId;
    if (same && epochs[last] === ack.epoch) {
      ats[last] = Math.min(ats[last] as number, ack.at);
      if (ack.sentAt !== undefined) sentAts[last] = ack.sentAt;
      continue;
    }
    ids.push(ack.consoleId);
    above.push(same ? (epochs[last] as number) : 0);
    epochs.push(ack.epoch);
    ats.push(ack.at);
    sentAts.push(ack.sentAt ?? null);
  }
  // An entry's rows were covered too by any later epoch of its console acknowledged earlier: the earliest counts.
  for (let i = ids.length - 2; i >= 0; i--) {
    if (ids[i + 1] === ids[i] && (ats[i + 1] as number) < (ats[i] as number)) ats[i] = ats[i + 1] as number;
  }
  return { ids, above, epochs, ats, sentAts };
}

function byConsoleThenEpoch(a: { consoleId: string; epoch: number }, b: { consoleId: string; epoch: number }): number {
  return a.consoleId < b.consoleId ? -1 : a.consoleId > b.consoleId ? 1 : a.epoch - b.epoch;
}

/**
 * Challenges and nonces. `take` is one DELETE … RETURNING and `claimOnce` one INSERT … ON CONFLICT
 * DO UPDATE … WHERE expired: of two nodes racing for the same key, exactly one gets it.
 *
 * Two tables. `ephemeral` holds what `put` stores (a value, and an owner whose newest entries are
 * kept: `created_seq` orders them for eviction, a sequence in PostgreSQL, MAX + 1 on the one SQLite
 * connection), with its owner, expiry and creation indexes. `ephemeral_claims` (migration 29) holds
 * what `claimOnce` and `claimMany` record (request nonces, sign-in challenges, jtis: no owner, no
 * value) in one b-tree, its `(kind, key)` primary key: each claim writes one index instead of four.
 * Claims have no cap per owner (they never had one): what bounds them is their expiry, at most the
 * freshness window ahead for a request nonce, and the sweep.
 */
export class KyselyEphemeral implements EphemeralRepository {
  constructor(private readonly ctx: KyselyContext) {}

  private nextSeq() {
    return this.ctx.dialect === 'postgres'
      ? sql<number>`nextval('ephemeral_seq')`
      : sql<number>`(SELECT COALESCE(MAX(created_seq), 0) + 1 FROM ephemeral)`;
  }

  async put(
    entry: { kind: string; key: string; owner: string; value: string; expiresAt: number },
    maxPerOwner?: number,
  ): Promise<void> {
    const { db } = this.ctx;
    if (this.ctx.dialect === 'postgres' && maxPerOwner !== undefined) {
      // One statement (one round trip, atomic on its own): the DELETE reads the snapshot from before
      // the INSERT, so it keeps the newest maxPerOwner - 1 others and the new entry makes maxPerOwner.
      await sql`WITH i AS (
          INSERT INTO ephemeral (kind, key, owner, value, expires_at, created_seq)
          VALUES (${entry.kind}, ${entry.key}, ${entry.owner}, ${entry.value}, ${entry.expiresAt}, nextval('ephemeral_seq'))
          RETURNING 1
        )
        DELETE FROM ephemeral WHERE kind = ${entry.kind} AND owner = ${entry.owner} AND created_seq NOT IN (
          SELECT created_seq FROM ephemeral WHERE kind = ${entry.kind} AND owner = ${entry.owner}
          ORDER BY created_seq DESC LIMIT ${Math.max(0, maxPerOwner - 1)}
        ) AND EXISTS (SELECT 1 FROM i)`.execute(db);
      return;
    }
    await db
      .insertInto('ephemeral')
      .values({
        kind: entry.kind,
        key: entry.key,
        owner: entry.owner,
        value: entry.value,
        expires_at: entry.expiresAt,
        created_seq: this.nextSeq(),
      })
      .execute();
    if (maxPerOwner === undefined) return;
    await db
      .deleteFrom('ephemeral')
      .where('kind', '=', entry.kind)
      .where('owner', '=', entry.owner)
      .where('created_seq', 'not in', (eb) =>
        eb
          .selectFrom('ephemeral')
          .select('created_seq')
          .where('kind', '=', entry.kind)
          .where('owner', '=', entry.owner)
          .orderBy('created_seq', 'desc')
          .limit(maxPerOwner),
      )
      .execute();
  }

  /**
   * A key `put` stored, or one claimed (`claimOnce`: owner and value ''; taking it withdraws the
   * claim, as the Shared Signals receiver does for a SET it did not keep). A kind is used with one
   * or the other, so a key is never in both tables. PostgreSQL: one statement.
   */
  async take(kind: string, key: string): Promise<{ owner: string; value: string; expiresAt: number } | undefined> {
    const { db } = this.ctx;
    let row: Row | undefined;
    if (this.ctx.dialect === 'postgres') {
      const result = await sql<Row>`WITH e AS (
          DELETE FROM ephemeral WHERE kind = ${kind} AND key = ${key} RETURNING owner, value, expires_at
        ), c AS (
          DELETE FROM ephemeral_claims WHERE kind = ${kind} AND key = ${key} RETURNING '' AS owner, '' AS value, expires_at
        )
        SELECT * FROM e UNION ALL SELECT * FROM c`.execute(db);
      row = result.rows[0];
    } else {
      row =
        (await db
          .deleteFrom('ephemeral')
          .where('kind', '=', kind)
          .where('key', '=', key)
          .returning(['owner', 'value', 'expires_at'])
          .executeTakeFirst()) ??
        (await db
          .deleteFrom('ephemeral_claims')
          .where('kind', '=', kind)
          .where('key', '=', key)
          .returning([sql<string>`''`.as('owner'), sql<string>`''`.as('value'), 'expires_at'])
          .executeTakeFirst());
    }
    return row && { owner: str(row, 'owner'), value: str(row, 'value'), expiresAt: num(row, 'expires_at') };
  }

  async claimOnce(kind: string, key: string, expiresAt: number, now: number): Promise<boolean> {
    const rows = await this.ctx.db
      .insertInto('ephemeral_claims')
      .values({ kind, key, expires_at: expiresAt })
      .onConflict((oc) =>
        oc
          .columns(['kind', 'key'])
          .doUpdateSet((eb) => ({ expires_at: eb.ref('excluded.expires_at') }))
          .where('ephemeral_claims.expires_at', '<=', now),
      )
      .returning('kind')
      .execute();
    return rows.length === 1;
  }

  async claimMany(
    kind: string,
    entries: readonly { key: string; expiresAt: number }[],
    now: number,
  ): Promise<Set<string>> {
    const distinct = [...new Map(entries.map((e) => [e.key, e])).values()];
    const claimed = new Set<string>();
    if (distinct.length === 0) return claimed;
    // One statement per chunk; a single chunk needs no transaction around it (one round trip).
    const run = (fn: (db: typeof this.ctx.db) => Promise<void>) =>
      distinct.length <= CLAIM_CHUNK ? fn(this.ctx.db) : atomic(this.ctx, fn);
    await run(async (db) => {
      for (let i = 0; i < distinct.length; i += CLAIM_CHUNK) {
        const rows = await db
          .insertInto('ephemeral_claims')
          .values(distinct.slice(i, i + CLAIM_CHUNK).map((e) => ({ kind, key: e.key, expires_at: e.expiresAt })))
          .onConflict((oc) =>
            oc
              .columns(['kind', 'key'])
              .doUpdateSet((eb) => ({ expires_at: eb.ref('excluded.expires_at') }))
              .where('ephemeral_claims.expires_at', '<=', now),
          )
          .returning('key')
          .execute();
        for (const row of rows) claimed.add(str(row, 'key'));
      }
    });
    return claimed;
  }

  /**
   * Deletes what expired, from both tables. SQLite (one process, one clock): what expired by `now`.
   * PostgreSQL: nodes decide expiry on their own clocks (a nonce's freshness and its claim on the
   * same clock, which is safe whatever the skew between nodes), but a sweep deletes for every node:
   * one whose clock runs ahead would delete nonces the others still need to refuse a replay. So only
   * what expired before the earlier of `now` and the database server's clock, less
   * EPHEMERAL_SKEW_MARGIN_MS, is deleted: safe as long as every node's clock is within that margin of
   * the database server's.
   *
   * `ephemeral` has an expiry index: one DELETE. `ephemeral_claims` has none (one b-tree is what
   * makes a claim cheap), so it is walked in primary-key order, SWEEP_CHUNK rows per statement, the
   * event loop free between chunks: bounded work per statement, however many claims are live.
   */
  async sweep(now: number): Promise<number> {
    const before =
      this.ctx.dialect === 'postgres'
        ? sql<number>`LEAST(${now}::bigint, (extract(epoch from clock_timestamp()) * 1000)::bigint) - ${EPHEMERAL_SKEW_MARGIN_MS}::bigint`
        : sql<number>`${now}`;
    const { db } = this.ctx;
    let swept = changed(await db.deleteFrom('ephemeral').where('expires_at', '<=', before).executeTakeFirst());
    const chunk = SWEEP_CHUNK[this.ctx.dialect];
    const after = (from: { kind: string; key: string } | undefined) =>
      from === undefined ? sql<boolean>`TRUE` : sql<boolean>`(kind, key) > (${from.kind}, ${from.key})`;
    for (let from: { kind: string; key: string } | undefined; ; ) {
      // The chunk's last key: the SWEEP_CHUNK-th after `from` (none: the rest of the table is the chunk).
      const last = await db
        .selectFrom('ephemeral_claims')
        .select(['kind', 'key'])
        .where(after(from))
        .orderBy('kind')
        .orderBy('key')
        .limit(1)
        .offset(chunk - 1)
        .executeTakeFirst();
      const result = await db
        .deleteFrom('ephemeral_claims')
        .where(after(from))
        .$if(last !== undefined, (q) => q.where(sql<boolean>`(kind, key) <= (${last?.kind}, ${last?.key})`))
        .where('expires_at', '<=', before)
        .executeTakeFirst();
      swept += changed(result);
      if (last === undefined) return swept;
      from = { kind: str(last, 'kind'), key: str(last, 'key') };
      if (!this.ctx.inTransaction) await new Promise((resolve) => setImmediate(resolve));
    }
  }
}
