/**
 * The throwaway PostgreSQL server for tests: `startPostgres()` → `{ url, stop(), restart(), kill() }`,
 * `postgresAvailable()`, `postgresSkip()` and `createDatabase(url, name)`. The implementation lives in
 * backend/store/postgres-throwaway.ts so that backend tests (another TypeScript project) can use it too.
 */
export * from '../../backend/store/postgres-throwaway.js';
