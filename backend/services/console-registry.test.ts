/**
 * The consoles' last-seen times, noted in memory and written in batches: a flush under way (written in
 * several units on SQLite) is waited for by the next one, so the last flush before the store closes
 * loses nothing that an earlier one had taken.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import pino from 'pino';
import { DEFAULT_POLICY } from '../../shared/policy.js';
import { InProcessBus } from '../cluster/bus.js';
import { openSqliteStore } from '../store/sqlite-store.js';
import { consoleRow } from '../store/test-kit.js';
import { tempDir } from '../temp-dir.js';
import { ConsoleRegistry } from './console-registry.js';
import { EventLog } from './event-log.js';

const logger = pino({ level: 'silent' });
const T0 = 1_800_000_000_000;

describe('ConsoleRegistry last-seen flush', () => {
  it('makes the flush at shutdown wait for one under way, so the store closes with every sighting written', async () => {
    const dir = tempDir('baton-registry-');
    let now = T0;
    const clock = () => now;
    const ids = Array.from({ length: 1500 }, (_, i) => `c${String(i).padStart(4, '0')}`);
    const store = openSqliteStore({ dataDir: dir, durability: 'full' });
    try {
      await store.transaction(async (tx) => {
        for (const id of ids) await tx.consoles.insert(consoleRow(id, T0));
      });
      const events = new EventLog(store, clock, logger, new InProcessBus({ nodeId: 'node-test', logger }));
      const registry = new ConsoleRegistry(store, events, clock, () => DEFAULT_POLICY, 3600);
      now = T0 + 1000;
      for (const id of ids) registry.touch(id);
      // A console's socket closed: its sightings are being written (several units) when the node stops.
      registry.flushSoon();
      now = T0 + 2000;
      registry.touch('c0000');
      // What the node's shutdown does: the last flush, then the store closes.
      await registry.flushLastSeen();
    } finally {
      await store.close();
    }
    const reopened = openSqliteStore({ dataDir: dir, durability: 'full' });
    try {
      const rows = await reopened.consoles.list();
      assert.equal(rows.length, ids.length);
      assert.deepEqual(
        rows.filter((r) => r.id !== 'c0000' && r.lastSeenAt !== T0 + 1000).map((r) => r.id),
        [],
        'every sighting the earlier flush had taken is written',
      );
      assert.equal(rows.find((r) => r.id === 'c0000')?.lastSeenAt, T0 + 2000, 'the later sighting wins');
    } finally {
      await reopened.close();
    }
  });
});
