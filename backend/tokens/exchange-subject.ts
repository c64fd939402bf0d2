import { CompiledQuery, type Kysely } from 'kysely';
import { kyselyOf } from '../store/kysely-store.js';
import { optNum, optStr, type BatonDatabase } from '../store/kysely-schema.js';
import { sessionFrom } from '../store/kysely-sessions.js';
import type { SessionRecord, Store } from '../store/repositories.js';

/** What the exchange re-checks about the session behind a subject token, read in one statement. */
export interface ExchangeSubject {
  session: SessionRecord;
  /** Undefined when the operator row is gone. */
  operator: { id: string; revokedAt: number | null } | undefined;
  /** The passkey the session rests on; undefined when there is none (a break-glass session) or it is gone. */
  credential: { operatorId: string; revokedAt: number | null; suspendedAt: number | null } | undefined;
  /** Whether a break-glass grant stands behind the session (only asked when the break-glass cap is wired). */
  breakGlass: boolean;
}

/**
 * Reads the session, its operator, its passkey and whether it is a break-glass session in ONE
 * statement, as the store has them now (no cache: a revocation committed on any node is seen by the
 * next exchange). It replaces four point reads per issuance (session, break-glass grant, operator,
 * passkey); the statement is compiled once per store and re-run with the session id as parameter.
 * Undefined when the store is not a Kysely store (then the caller reads through the repositories).
 */
export class ExchangeSubjectReader {
  /** The statement compiled once per Kysely instance (the dialect decides the placeholders): [plain, with break-glass]. */
  private readonly compiled = new WeakMap<Kysely<BatonDatabase>, [CompiledQuery?, CompiledQuery?]>();

  constructor(private readonly store: Store) {}

  async read(sessionId: string, withBreakGlass: boolean): Promise<ExchangeSubject | undefined | 'unsupported'> {
    const db = kyselyOf(this.store);
    if (db === undefined) return 'unsupported';
    const query = this.query(db, withBreakGlass);
    const result = await db.executeQuery<Record<string, unknown>>(CompiledQuery.raw(query.sql, [sessionId]));
    const row = result.rows[0];
    if (row === undefined) return undefined;
    const operatorId = optStr(row, 'o_id');
    const credentialOperator = optStr(row, 'c_operator_id');
    return {
      session: sessionFrom(row),
      operator: operatorId === null ? undefined : { id: operatorId, revokedAt: optNum(row, 'o_revoked_at') },
      credential:
        credentialOperator === null
          ? undefined
          : {
              operatorId: credentialOperator,
              revokedAt: optNum(row, 'c_revoked_at'),
              suspendedAt: optNum(row, 'c_suspended_at'),
            },
      // COUNT(*) is a bigint on PostgreSQL (text or number by the driver's parser), a number on SQLite.
      breakGlass: withBreakGlass && Number(row.break_glass ?? 0) > 0,
    };
  }

  private query(db: Kysely<BatonDatabase>, withBreakGlass: boolean): CompiledQuery {
    const variants = this.compiled.get(db) ?? [];
    const known = variants[withBreakGlass ? 1 : 0];
    if (known !== undefined) return known;
    let select = db
      .selectFrom('sessions as s')
      .leftJoin('operators as o', 'o.id', 's.operator_id')
      .leftJoin('credentials as c', 'c.id', 's.credential_id')
      .selectAll('s')
      .select([
        'o.id as o_id',
        'o.revoked_at as o_revoked_at',
        'c.operator_id as c_operator_id',
        'c.revoked_at as c_revoked_at',
        'c.suspended_at as c_suspended_at',
      ])
      .where('s.id', '=', '');
    if (withBreakGlass) {
      select = select.select((eb) =>
        eb
          .selectFrom('break_glass_grants as g')
          .select((inner) => inner.fn.countAll().as('n'))
          .whereRef('g.session_id', '=', 's.id')
          .as('break_glass'),
      );
    }
    const compiled = select.compile();
    if (compiled.parameters.length !== 1) throw new Error('the exchange subject statement takes the session id only');
    variants[withBreakGlass ? 1 : 0] = compiled;
    this.compiled.set(db, variants);
    return compiled;
  }
}
