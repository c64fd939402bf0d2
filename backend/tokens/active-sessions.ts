import { CompiledQuery } from 'kysely';
import { kyselyOf } from '../store/kysely-store.js';
import type { Store } from '../store/repositories.js';

/** Statements compiled once per engine and number of sessions: `${engine}:${count}`. */
const compiled = new Map<string, string>();

/**
 * Which of `ids` (distinct, in ascending order) are `active` sessions, read in ONE statement inside
 * the unit of work whose store is `tx`, the rows locked until it ends on PostgreSQL (`FOR UPDATE`, in
 * ascending id: the lock order of repositories.ts); SQLite's `BEGIN IMMEDIATE` serialises the unit
 * whole. The statement is compiled once per engine and count, then re-run with the ids as parameters
 * (the issuance journal runs it for every group commit). A store that is not Kysely's is read through
 * its repositories, one session at a time.
 */
export async function activeSessions(tx: Store, ids: readonly string[]): Promise<Set<string>> {
  const active = new Set<string>();
  if (ids.length === 0) return active;
  const db = kyselyOf(tx);
  if (db === undefined) {
    for (const id of ids) if ((await tx.sessions.getForUpdate(id))?.state === 'active') active.add(id);
    return active;
  }
  const key = `${tx.engine}:${ids.length}`;
  let sql = compiled.get(key);
  if (sql === undefined) {
    const query = db
      .selectFrom('sessions')
      .select('id')
      .where('state', '=', 'active')
      .where('id', 'in', ids)
      .orderBy('id');
    sql = (tx.engine === 'postgres' ? query.forUpdate() : query).compile().sql;
    compiled.set(key, sql);
  }
  const result = await db.executeQuery<{ id: string }>(CompiledQuery.raw(sql, ['active', ...ids]));
  for (const row of result.rows) active.add(row.id);
  return active;
}
