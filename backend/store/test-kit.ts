/**
 * Helpers for the store tests (not imported by the backend): a console row, and store cases run on both
 * engines.
 */
import { rmSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { tempDir } from '../temp-dir.js';
import { openPostgresStore } from './postgres-store.js';
import { createDatabase, postgresSkip, startPostgres, type PostgresServer } from './postgres-throwaway.js';
import type { ConsoleRecord, Store } from './repositories.js';
import { openSqliteStore } from './sqlite-store.js';

/** A console row as an enrolment would write it, seen last at `lastSeenAt`. */
export function consoleRow(id: string, lastSeenAt: number): ConsoleRecord {
  return {
    id,
    name: null,
    channel: 'branch-kiosk',
    site: null,
    publicJwk: '{}',
    jkt: `jkt-${id}`,
    enrolledAt: lastSeenAt,
    lastSeenAt,
    policyVersion: 0,
    revocationEpoch: 0,
    revokedAt: null,
    revokedReason: null,
  };
}

/**
 * Declares one test per case and engine: each on a fresh embedded SQLite store, and (when PostgreSQL can
 * run here) on a fresh migrated database of one throwaway server per call; `seed` runs first on each.
 */
export function onEachEngine(
  name: string,
  cases: readonly (readonly [string, (store: Store) => Promise<void>])[],
  seed: (store: Store) => Promise<void>,
): void {
  for (const [title, run] of cases) {
    void it(`${title} (embedded SQLite)`, async () => {
      const dir = tempDir(`baton-${name}-`);
      const store = openSqliteStore({ dataDir: dir, durability: 'normal' });
      try {
        await seed(store);
        await run(store);
      } finally {
        await store.close();
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }
  void describe('on PostgreSQL', { skip: postgresSkip() }, () => {
    let server: PostgresServer | undefined;
    let databases = 0;
    before(async () => {
      server = await startPostgres();
    });
    after(async () => {
      await server?.stop();
    });
    for (const [title, run] of cases) {
      void it(`${title} (PostgreSQL)`, async () => {
        const url = await createDatabase(server?.url ?? '', `${name}_${++databases}`, { migrated: true });
        const store = await openPostgresStore({ url, poolSize: 2 });
        try {
          await seed(store);
          await run(store);
        } finally {
          await store.close();
        }
      });
    }
  });
}
