import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import pino from 'pino';
import { sha256Hex } from '../crypto/secrets.js';
import { openSqliteStore } from '../store/sqlite-store.js';
import { ChainCheckpoints } from './chain-checkpoints.js';
import { EventLog } from './event-log.js';
import { tempDir } from '../temp-dir.js';

describe('ChainCheckpoints on a shared store', () => {
  const dataDir = tempDir('baton-checkpoints-');
  const store = openSqliteStore({ dataDir, durability: 'normal' });
  after(() => store.close());
  const logger = pino({ level: 'silent' });
  const events = new EventLog(store, Date.now, logger);
  const open = () => ChainCheckpoints.open({ store, dataDir, clock: Date.now, logger });
  const record = () =>
    events.record({ type: 'admin-action', subject: {}, outcome: 'success', reasons: ['test'], detail: { actor: 't' } });

  it('signs the heads the store holds; two nodes signing at once take consecutive numbers, chained', async () => {
    // (Opened one after the other: the first creates the key file the second then reads.)
    const a = await open();
    const b = await open();
    const event = await record();
    const [first, second] = await Promise.all([a.checkpoint('interval'), b.checkpoint('interval')]);
    assert.deepEqual([first?.seq, second?.seq].sort(), [1, 2], 'each node signed once, under its own number');
    const rows = await store.checkpoints.list(0, 10);
    assert.deepEqual(
      rows.map((r) => r.seq),
      [1, 2],
    );
    const [one, two] = rows;
    assert.equal((JSON.parse(two?.body ?? '{}') as { prev: string }).prev, sha256Hex(one?.body ?? ''));
    assert.deepEqual(first?.heads.backend, { lastSeq: event.seq, lastHash: event.hash });
    // Nothing moved since: neither node signs again.
    assert.equal(await a.checkpoint('interval'), undefined);
    assert.equal(await b.checkpoint('interval'), undefined);
    assert.equal((await a.check('backend')).problems.length, 0);
  });
});
