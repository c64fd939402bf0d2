import type Database from 'better-sqlite3';
import type { Store, Sync } from './repositories.js';

/** The repositories of a store, synchronous, as the better-sqlite3 classes implement them. */
export type SyncRepositories = {
  [K in Exclude<keyof Store, 'transaction' | 'close' | 'engine'>]: Sync<Store[K]>;
};

/**
 * Serialises access to the one SQLite connection: a transaction holds it across its awaits, so a
 * statement from elsewhere waits for the commit instead of landing inside someone else's transaction.
 */
class ConnectionLock {
  private tail: Promise<unknown> = Promise.resolve();
  private held = false;

  run<T>(fn: () => T | Promise<T>): Promise<T> {
    if (!this.held) {
      // Fast path: nothing queued, run now (synchronously for a plain statement).
      this.held = true;
      let result: T | Promise<T>;
      try {
        result = fn();
      } catch (error) {
        this.held = false;
        return Promise.reject(asError(error));
      }
      if (!(result instanceof Promise)) {
        this.held = false;
        return Promise.resolve(result);
      }
      const done = result.finally(() => {
        this.held = false;
      });
      this.tail = done.catch(() => undefined);
      return done;
    }
    const next = this.tail.then(() => this.run(fn));
    this.tail = next.catch(() => undefined);
    return next;
  }
}

/** better-sqlite3 throws Errors; anything else is wrapped so a rejection always carries a stack. */
function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}

function wrap<T extends object>(repo: T, call: (fn: () => unknown) => Promise<unknown>): T {
  return new Proxy(repo, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver) as unknown;
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => call(() => (value as (...a: unknown[]) => unknown).apply(target, args));
    },
  });
}

/**
 * The async storage seam over the synchronous better-sqlite3 repositories: each call is atomic on
 * its own; `transaction` runs `BEGIN IMMEDIATE` … `COMMIT` around an async unit of work, holding
 * the connection (and so the single writer) until it settles.
 */
export function asyncSqliteStore(db: Database.Database, repos: SyncRepositories, close: () => void): Store {
  const lock = new ConnectionLock();
  const direct = (fn: () => unknown): Promise<unknown> => {
    try {
      return Promise.resolve(fn());
    } catch (error) {
      return Promise.reject(asError(error));
    }
  };
  const build = (call: (fn: () => unknown) => Promise<unknown>, inTransaction: boolean): Store => {
    const store = Object.fromEntries(
      Object.entries(repos).map(([name, repo]) => [name, wrap(repo as object, call)]),
    ) as unknown as Omit<Store, 'transaction' | 'close' | 'engine'>;
    const self: Store = {
      ...store,
      engine: 'sqlite',
      transaction: <T>(fn: (tx: Store) => Promise<T>): Promise<T> =>
        inTransaction ? fn(self) : lock.run(() => runTransaction(fn)),
      close: () => lock.run(() => close()),
    };
    return self;
  };
  const tx = build(direct, true);
  const runTransaction = async <T>(fn: (tx: Store) => Promise<T>): Promise<T> => {
    db.exec('BEGIN IMMEDIATE');
    try {
      const result = await fn(tx);
      db.exec('COMMIT');
      return result;
    } catch (error) {
      if (db.inTransaction) db.exec('ROLLBACK');
      throw error;
    }
  };
  return build((fn) => lock.run(fn), false);
}
