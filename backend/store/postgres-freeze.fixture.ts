/**
 * For postgres-freeze.test.ts: a process with the PostgreSQL store that the test stops (SIGSTOP) in the middle of
 * its database work. Opens the store on `BATON_FREEZE_URL` with a 5 s statement timeout (so a 6 s read
 * timeout, and a transaction idle 10 s is ended by the server), prints `ready`, then on each line from stdin:
 * - `write`: runs a unit of work writing `meta.frozen`, then prints what it and a read after it returned;
 * - `hold-head`: opens a unit that takes the backend's chain head, prints `holding`, and waits for a `commit`
 *   line to write `meta.frozen` in it; then prints what the unit and a read after it returned.
 * - `write-three`: runs three units at once writing `meta.frozen-1`, `-2` and `-3` on its pool of two connections
 *   (the third waits for one), then prints what each returned (`units`) and a read of the three (`after`).
 * One JSON line each; `quit` ends the process.
 */
import { createInterface } from 'node:readline';
import { openPostgresStore } from './postgres-store.js';

const url = process.env.BATON_FREEZE_URL;
if (url === undefined) throw new Error('BATON_FREEZE_URL is not set');
const store = await openPostgresStore({ url, statementTimeoutMs: 5_000, poolSize: 2, connectTimeoutMs: 3_000 });
const say = (line: object) => process.stdout.write(`${JSON.stringify(line)}\n`);
const outcome = (p: Promise<unknown>) =>
  p.then(
    (value) => ({ ok: true, value }),
    (error: unknown) => ({ ok: false, error: String(error) }),
  );
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const nextLine = async (): Promise<string> => {
  const next = await lines.next();
  return next.done === true ? 'quit' : String(next.value);
};
say({ ready: true });
for (let line = await nextLine(); line !== 'quit'; line = await nextLine()) {
  if (line === 'write') {
    say({ unit: await outcome(store.transaction((tx) => tx.meta.set('frozen', 'committed by the unit'))) });
  } else if (line === 'hold-head') {
    const unit = store.transaction(async (tx) => {
      await tx.events.lockHead('backend');
      say({ holding: true });
      while ((await nextLine()) !== 'commit');
      await tx.meta.set('frozen', 'written by the frozen unit');
    });
    say({ unit: await outcome(unit) });
  } else if (line === 'write-three') {
    const units = [1, 2, 3].map((n) => store.transaction((tx) => tx.meta.set(`frozen-${n}`, `unit ${n}`)));
    say({ units: await Promise.all(units.map(outcome)) });
    say({ after: await outcome(Promise.all([1, 2, 3].map((n) => store.meta.get(`frozen-${n}`)))) });
    continue;
  } else {
    continue;
  }
  say({ after: await outcome(store.meta.get('frozen')) });
}
await store.close();
process.exit(0);
