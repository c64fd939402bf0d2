/**
 * For postgres-freeze.test.ts: a process with the PostgreSQL store that the test stops (SIGSTOP) while one of
 * its units of work waits for the database. Opens the store on `BATON_FREEZE_URL` (a 1.5 s statement timeout,
 * so a 2.5 s read timeout), prints `ready`, runs the unit when a line arrives on stdin, then prints what the
 * unit and a read after it returned, one JSON line each.
 */
import { createInterface } from 'node:readline';
import { openPostgresStore } from './postgres-store.js';

const url = process.env.BATON_FREEZE_URL;
if (url === undefined) throw new Error('BATON_FREEZE_URL is not set');
const store = await openPostgresStore({ url, statementTimeoutMs: 1_500, poolSize: 2 });
const say = (line: object) => process.stdout.write(`${JSON.stringify(line)}\n`);
const outcome = (p: Promise<unknown>) =>
  p.then(
    (value) => ({ ok: true, value }),
    (error: unknown) => ({ ok: false, error: String(error) }),
  );
say({ ready: true });
const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  if (line !== 'go') continue;
  say({ unit: await outcome(store.transaction((tx) => tx.meta.set('frozen', 'committed by the unit'))) });
  say({ after: await outcome(store.meta.get('frozen')) });
  break;
}
lines.close();
await store.close();
