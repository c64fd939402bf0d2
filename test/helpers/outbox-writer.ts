// Child process for the crash test: emits events as fast as it can and prints each sequence number
// once `emit` has resolved (that is, once the event counts as emitted). The parent kills it with SIGKILL.
import { EventOutbox } from '../../main/core/event-outbox.js';

const dir = process.argv[2];
if (dir === undefined) throw new Error('usage: outbox-writer <dir>');
const { outbox } = EventOutbox.open(dir, { max: 1_000_000 });
for (;;) {
  const batch = Array.from({ length: 50 }, () =>
    outbox.emit({ type: 'session-locked', subject: { session: 'ses_crash' }, outcome: 'info', reasons: ['idle'] }),
  );
  const events = await Promise.all(batch);
  process.stdout.write(`${events.map((e) => e.seq).join('\n')}\n`);
}
