/**
 * One implementation of the storage seam over both dialects (Kysely): `kyselyStore()` builds the
 * `Store` over a Kysely instance; sqlite-store.ts opens it on the embedded SQLite file (better-sqlite3
 * through Kysely's SQLite dialect, the event store hand-written), postgres-store.ts on a PostgreSQL pool.
 */
import {
  type Kysely,
  type KyselyPlugin,
  type PluginTransformQueryArgs,
  type PluginTransformResultArgs,
  type QueryResult,
  type RootOperationNode,
  type UnknownRow,
} from 'kysely';
import { BatonError } from '../../shared/errors.js';
import type { Store } from './repositories.js';
import type { BatonDatabase, Dialect, KyselyContext } from './kysely-schema.js';
import { KyselyConsoles } from './kysely-consoles.js';
import { KyselyOperators } from './kysely-operators.js';
import { KyselyAdminTokens, KyselyCommands, KyselyMeta, KyselyPolicies, KyselySessions } from './kysely-sessions.js';
import { KyselyEphemeral, KyselyRevocations } from './kysely-revocations.js';
import { KyselyCheckpoints, KyselyEvents } from './kysely-events.js';
import { KyselyAdmin } from './kysely-admin.js';
import { KyselyAuthenticatorModels } from './kysely-models.js';
import { KyselySsfInbound } from '../ssf/receiver/repository.js';
import { KyselyScim } from '../scim/repository.js';

const handles = new WeakMap<Store, Kysely<BatonDatabase>>();

/**
 * The Kysely instance behind a Kysely store: the pool (or the SQLite connection) for a store, the
 * transaction for a transaction-bound `tx`; undefined for another engine.
 * For what must run on the same connection as the unit of work, e.g. a NOTIFY sent at its COMMIT
 * (`kyselyTransaction(kyselyOf(tx))` in backend/cluster/bus.ts).
 */
export function kyselyOf(store: Store): Kysely<BatonDatabase> | undefined {
  return handles.get(store);
}

/** The repositories of a store (what an override may replace). */
export type RepositoryName = Exclude<keyof Store, 'transaction' | 'close' | 'engine'>;

/**
 * Where a hand-written repository runs its synchronous statements (better-sqlite3, same file and
 * connection as Kysely's): `run(fn)` inside a unit of work runs `fn` at once on that unit's open
 * transaction (and refuses once the unit has ended); outside one it first takes Kysely's one
 * connection, so a statement never lands inside another unit's open `BEGIN IMMEDIATE` (the embedded
 * store's driver runs it at once when nobody holds the connection: `ImmediateSqliteDriver.run`).
 */
export interface SyncRunner {
  readonly inTransaction: boolean;
  run<T>(fn: () => T): Promise<T>;
}

/**
 * Hand-written repositories that replace the Kysely ones on a hot path (measured; see ADR 0005). A
 * factory gets the runner for its statements and the Kysely context of the same store or unit (an
 * override usually extends the Kysely class, so a method it does not hand-write stays Kysely's).
 */
export type RepositoryOverrides = { [K in RepositoryName]?: (runner: SyncRunner, ctx: KyselyContext) => Store[K] };

/** A statement on a store bound to a unit of work that has already committed or rolled back. */
function unitEnded(): Error {
  return new Error(
    'A store bound to a unit of work was used after that unit committed or rolled back (a `tx` leaked out of Store.transaction)',
  );
}

/** Refuses every statement of a transaction-bound Kysely instance once its unit has ended. */
class UnitGuard implements KyselyPlugin {
  constructor(private readonly unit: { ended: boolean }) {}
  transformQuery(args: PluginTransformQueryArgs): RootOperationNode {
    if (this.unit.ended) throw unitEnded();
    return args.node;
  }
  transformResult(args: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
    return Promise.resolve(args.result);
  }
}

/** PostgreSQL's "try again" failures: the transaction was rolled back and re-running it may succeed. */
const RETRYABLE = new Set(['40P01', '40001']);
/** Re-runs of a unit of work after a deadlock or a serialization failure, before BACKEND_BUSY. */
export const TRANSACTION_RETRIES = 3;

function retryable(error: unknown): string | undefined {
  for (let e: unknown = error, depth = 0; typeof e === 'object' && e !== null && depth < 5; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && RETRYABLE.has(code)) return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/** A short pause before a re-run, jittered so two units that deadlocked do not collide again in step. */
function backoff(attempt: number): Promise<void> {
  const ms = 5 * 2 ** attempt * (0.5 + Math.random());
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * The `Store` over `db`. `transaction(fn)` is Kysely's `db.transaction().execute()`: `fn` gets a store
 * bound to that transaction (commit when it resolves, rollback when it throws); `transaction` called
 * on that store runs inline, in the same transaction. Once the unit has ended, its store refuses every
 * statement (a leaked `tx` throws; it never runs outside a transaction or inside another one).
 *
 * **A unit of work may run more than once.** On PostgreSQL a unit rolled back by a deadlock (40P01)
 * or a serialization failure (40001) is re-run, up to TRANSACTION_RETRIES times with a short
 * jittered backoff, then fails with BACKEND_BUSY (503). So `fn` must have no side effect outside the
 * transaction: anything else happens only after the commit (EventLog's `afterCommit` and `publish`).
 *
 * `overrides` replace a Kysely repository by a hand-written one where that measurably wins (the
 * embedded engine's event store); `raw` runs their statements (see SyncRunner).
 */
export function kyselyStore(
  db: Kysely<BatonDatabase>,
  dialect: Dialect,
  close: () => Promise<void>,
  overrides: RepositoryOverrides = {},
  /** How the overrides' statements hold the connection outside a unit (default: Kysely's `connection()`). */
  runOutside?: <T>(fn: () => T) => Promise<T>,
): Store {
  const outside: SyncRunner = {
    inTransaction: false,
    run: runOutside ?? (<T>(fn: () => T): Promise<T> => db.connection().execute(() => Promise.resolve().then(fn))),
  };
  const once = <T>(fn: (tx: Store) => Promise<T>): Promise<T> =>
    db.transaction().execute(async (trx) => {
      const unit = { ended: false };
      try {
        return await fn(build(trx.withPlugin(new UnitGuard(unit)), unit));
      } finally {
        unit.ended = true;
      }
    });
  const runUnit = async <T>(fn: (tx: Store) => Promise<T>): Promise<T> => {
    for (let attempt = 0; ; attempt++) {
      try {
        return await once(fn);
      } catch (error) {
        const code = dialect === 'postgres' ? retryable(error) : undefined;
        if (code === undefined) throw error;
        if (attempt >= TRANSACTION_RETRIES) {
          throw new BatonError(
            'BACKEND_BUSY',
            `The database rolled the unit of work back ${attempt + 1} times (${code === '40P01' ? 'deadlock' : 'serialization failure'}); retry shortly`,
            { cause: error },
          );
        }
        await backoff(attempt);
      }
    }
  };
  const build = (handle: Kysely<BatonDatabase>, unit: { ended: boolean } | undefined): Store => {
    const inTransaction = unit !== undefined;
    const ctx: KyselyContext = { db: handle, dialect, inTransaction };
    const runner: SyncRunner =
      unit === undefined
        ? outside
        : {
            inTransaction: true,
            run: <T>(fn: () => T): Promise<T> => {
              if (unit.ended) return Promise.reject(unitEnded());
              try {
                return Promise.resolve(fn());
              } catch (error) {
                return Promise.reject(error instanceof Error ? error : new Error(String(error)));
              }
            },
          };
    const self: Store = {
      consoles: overrides.consoles?.(runner, ctx) ?? new KyselyConsoles(ctx),
      operators: overrides.operators?.(runner, ctx) ?? new KyselyOperators(ctx),
      sessions: overrides.sessions?.(runner, ctx) ?? new KyselySessions(ctx),
      policies: overrides.policies?.(runner, ctx) ?? new KyselyPolicies(ctx),
      revocations: overrides.revocations?.(runner, ctx) ?? new KyselyRevocations(ctx),
      events: overrides.events?.(runner, ctx) ?? new KyselyEvents(ctx),
      commands: overrides.commands?.(runner, ctx) ?? new KyselyCommands(ctx),
      adminTokens: overrides.adminTokens?.(runner, ctx) ?? new KyselyAdminTokens(ctx),
      admin: overrides.admin?.(runner, ctx) ?? new KyselyAdmin(ctx),
      authenticatorModels: overrides.authenticatorModels?.(runner, ctx) ?? new KyselyAuthenticatorModels(ctx),
      meta: overrides.meta?.(runner, ctx) ?? new KyselyMeta(ctx),
      checkpoints: overrides.checkpoints?.(runner, ctx) ?? new KyselyCheckpoints(ctx),
      ephemeral: overrides.ephemeral?.(runner, ctx) ?? new KyselyEphemeral(ctx),
      ssfInbound: overrides.ssfInbound?.(runner, ctx) ?? new KyselySsfInbound(ctx),
      scim: overrides.scim?.(runner, ctx) ?? new KyselyScim(ctx),
      engine: dialect,
      transaction: <T>(fn: (tx: Store) => Promise<T>): Promise<T> => {
        if (unit === undefined) return runUnit(fn);
        return unit.ended ? Promise.reject(unitEnded()) : fn(self);
      },
      close: inTransaction ? () => Promise.reject(new Error('close() called on a transaction')) : close,
    };
    handles.set(self, handle);
    return self;
  };
  return build(db, undefined);
}

/** Kept for bench/cluster-ingest.ts until it imports it from sqlite-store.ts. */
export { openKyselySqliteStore } from './sqlite-store.js';
