import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import type { EventDraft, StoredEvent } from '../../shared/events.js';
import type { Store } from '../store/repositories.js';
import { openSqliteStore } from '../store/sqlite-store.js';
import { IssuanceJournal } from '../tokens/issuance-journal.js';
import { BACKEND_ORIGIN, EventLog } from './event-log.js';

const logger = pino({ level: 'silent' });

const fact = (n: number): EventDraft => ({
  type: 'policy-changed',
  subject: {},
  outcome: 'success',
  reasons: [],
  detail: { version: n, previousVersion: n - 1, actor: 'test' },
});

/**
 * What links the events of one cause in the log (`detail.causeEventId`, docs/events.md), read by the
 * Shared Signals transmitter as a SET's `txn`: the later events of one unit of work name its first;
 * a unit that commits many requests together links none; a record refused before it is written
 * opens no cause.
 */
describe('event causes: the events of one unit of work, linked', () => {
  let dir: string;
  let store: Store;
  let log: EventLog;
  const seen: StoredEvent[] = [];

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'baton-event-causes-'));
    store = openSqliteStore({ dataDir: dir, durability: 'normal' });
    log = new EventLog(store, Date.now, logger);
    log.subscribe({ origin: BACKEND_ORIGIN }, (event) => seen.push(event));
  });
  after(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('the later events of a unit name its first; a unit of one event names nothing', async () => {
    const [first, second, third] = await log.atomically(async (uow) => [
      await uow.record(fact(1)),
      await uow.record(fact(2)),
      await uow.record(fact(3)),
    ]);
    assert.equal(first?.detail?.causeEventId, undefined);
    assert.equal(second?.detail?.causeEventId, first?.id);
    assert.equal(third?.detail?.causeEventId, first?.id);
    // The detail given is kept beside it.
    assert.equal(second?.detail?.version, 2);
    const alone = await log.record(fact(4));
    assert.equal(alone.detail?.causeEventId, undefined);
  });

  it('a unit that separates its causes links none', async () => {
    const events = await log.atomically(async (uow) => {
      uow.separateCauses();
      return [await uow.record(fact(5)), await uow.record(fact(6))];
    });
    assert.deepEqual(
      events.map((e) => e.detail?.causeEventId),
      [undefined, undefined],
    );
  });

  it('the token journal commits exchanges arriving together in one unit, none linked to another', async () => {
    const journal = new IssuanceJournal(log);
    const from = seen.length;
    // Queued in one turn of the event loop: one group, one unit of work.
    await Promise.all([journal.record(fact(7)), journal.record(fact(8)), journal.record(fact(9))]);
    const journalled = seen.slice(from);
    assert.equal(journalled.length, 3);
    assert.deepEqual(
      journalled.map((e) => e.detail?.causeEventId),
      [undefined, undefined, undefined],
    );
  });

  it('a record refused before it is written (and caught) opens no cause', async () => {
    const events = await log.atomically(async (uow) => {
      // A detail key the schema refuses: the event is built, checked and refused before it is written.
      await assert.rejects(uow.record({ ...fact(9), detail: { '1st': 1 } }), /fails its schema/);
      return [await uow.record(fact(10)), await uow.record(fact(11))];
    });
    assert.equal(events[0]?.detail?.causeEventId, undefined);
    assert.equal(events[1]?.detail?.causeEventId, events[0]?.id);
  });
});
