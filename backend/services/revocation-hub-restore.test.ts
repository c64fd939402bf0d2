import assert from 'node:assert/strict';
import { describe } from 'node:test';
import pino from 'pino';
import { MAX_MESSAGE_BYTES, RevocationMessageSchema, type RevocationMessage } from '../../shared/protocol.js';
import { InProcessBus } from '../cluster/bus.js';
import type { RevocationRecord, Store } from '../store/repositories.js';
import { consoleRow, onEachEngine } from '../store/test-kit.js';
import { EventLog } from './event-log.js';
import { CATCH_UP_EPOCHS, RevocationHub, type ConsolePusher } from './revocation-hub.js';
import type { SessionService } from './session-service.js';

/** The one catch-up message of a catch-up that fits in one (undefined for none). */
function single(messages: RevocationMessage[]): RevocationMessage | undefined {
  assert.ok(messages.length <= 1, `one catch-up message, not ${messages.length}`);
  return messages[0];
}

/**
 * After IT restored the database from a backup, the store's epoch is below what consoles applied: a
 * console ahead is caught up on the recent revocations (it cannot say which it has), and once the
 * counter was advanced past what was seen (backend/advance-revocation-epoch-cli.ts) the gap it leaves
 * changes nothing for the readers of epochs (catch-up, the node's pushes, acknowledgements).
 */
const clock = () => Date.UTC(2026, 0, 1);
const sessions = {} as SessionService; // nothing here revokes through the hub's unit of work

interface Warning {
  code?: string;
  console?: string;
  consoleEpoch?: number;
  storeEpoch?: number;
}

function hubOn(store: Store, connected: string[] = []) {
  const warnings: Warning[] = [];
  const logger = pino({ level: 'warn' }, { write: (line: string) => warnings.push(JSON.parse(line) as Warning) });
  const sent: RevocationMessage[] = [];
  const pusher: ConsolePusher = {
    connectedConsoleIds: () => connected,
    isConnected: (id) => connected.includes(id),
    sendRaw: (id, data) => {
      if (!connected.includes(id)) return false;
      sent.push(JSON.parse(String(data)) as RevocationMessage);
      return true;
    },
    disconnect: () => undefined,
  };
  const events = new EventLog(store, clock, logger, new InProcessBus({ nodeId: 'node-test', logger }));
  return { hub: new RevocationHub(store, events, sessions, clock, pusher, logger), warnings, sent };
}

function revoke(store: Store, kind: 'operator' | 'session', targetId: string, consoleId: string | null) {
  return store.revocations.insert({
    kind,
    targetId,
    operatorId: kind === 'operator' ? targetId : null,
    consoleId,
    reason: `${kind} revoked`,
    actor: 'admin:1',
    at: clock(),
  });
}

const cases: [string, (store: Store) => Promise<void>][] = [
  [
    'a console owed more revocations than one message holds (new, or away for long) is caught up in several, each within the protocol’s bounds, in epoch order',
    async (store) => {
      // 1,100 short ones (more items than a message takes), then 300 with the longest reason (more bytes).
      const made: RevocationRecord[] = [];
      for (let i = 0; i < 1400; i++) {
        made.push(
          await store.revocations.insert({
            kind: 'operator',
            targetId: `op_${i}`,
            operatorId: `op_${i}`,
            consoleId: null,
            reason: i < 1100 ? 'left' : 'é'.repeat(500),
            actor: 'admin:1',
            at: clock(),
          }),
        );
      }
      const { hub } = hubOn(store);
      const messages = await hub.catchUp('con_new', 0);
      assert.ok(messages.length >= 3, `${messages.length} messages`);
      for (const message of messages) {
        // What the agent accepts: its schema (at most 10,000 items) and its frame (MAX_MESSAGE_BYTES, else 1009).
        assert.deepEqual(RevocationMessageSchema.parse(message), message);
        assert.ok(Buffer.byteLength(JSON.stringify(message)) <= MAX_MESSAGE_BYTES);
        assert.equal(message.epoch, message.items.at(-1)?.epoch, 'each message acknowledges up to its last item');
      }
      assert.deepEqual(
        messages.flatMap((m) => m.items.map((i) => i.epoch)),
        made.map((r) => r.epoch),
        'every revocation once, in epoch order',
      );
      // Dropped after the first message: it reconnects with that epoch and is owed only the rest.
      const rest = await hub.catchUp('con_new', messages[0]?.epoch ?? 0);
      assert.deepEqual(
        rest.flatMap((m) => m.items.map((i) => i.epoch)),
        made.slice(messages[0]?.items.length).map((r) => r.epoch),
      );
    },
  ],
  [
    'a console ahead of the store gets every revocation concerning it in the recent epochs, with the store’s epoch',
    async (store) => {
      const { hub, warnings } = hubOn(store);
      const operator = await revoke(store, 'operator', 'op_gone', null);
      await revoke(store, 'session', 'ses_elsewhere', 'con_b'); // another console's session: not its concern
      const own = await revoke(store, 'session', 'ses_here', 'con_a');
      // It applied epoch 1000 before the restore; the store is back at 3.
      const catchUp = single(await hub.catchUp('con_a', 1000));
      assert.deepEqual(
        catchUp?.items.map((i) => [i.epoch, i.kind, i.targetId]),
        [
          [operator.epoch, 'operator', 'op_gone'],
          [own.epoch, 'session', 'ses_here'],
        ],
      );
      assert.equal(catchUp.epoch, own.epoch, 'the store’s epoch, which the console then remembers');
      assert.equal(hub.acknowledge('con_a', own.epoch), true, 'its acknowledgement is recorded');
      assert.deepEqual(
        warnings.map((w) => [w.code, w.console, w.consoleEpoch, w.storeEpoch]),
        [['CONSOLE_EPOCH_AHEAD', 'con_a', 1000, own.epoch]],
      );
      assert.deepEqual(
        (await store.revocations.deliveries(operator.epoch)).map((d) => d.consoleId),
        ['con_a'],
        'the admin sees it sent to that console',
      );
    },
  ],
  [
    'a console ahead of a store with no revocation is sent nothing, and logged',
    async (store) => {
      const { hub, warnings } = hubOn(store);
      assert.deepEqual(await hub.catchUp('con_a', 12), []);
      assert.deepEqual(
        warnings.map((w) => [w.code, w.consoleEpoch, w.storeEpoch]),
        [['CONSOLE_EPOCH_AHEAD', 12, 0]],
      );
    },
  ],
  [
    `the window of a console ahead is the last ${CATCH_UP_EPOCHS} epochs`,
    async (store) => {
      // Epochs 1 and, after the counter moved, CATCH_UP_EPOCHS + 2: the first is out of the window.
      await revoke(store, 'operator', 'op_old', null);
      await store.revocations.advanceEpoch(CATCH_UP_EPOCHS + 1);
      const recent = await revoke(store, 'operator', 'op_recent', null);
      assert.equal(recent.epoch, CATCH_UP_EPOCHS + 2);
      const { hub } = hubOn(store);
      const catchUp = single(await hub.catchUp('con_a', CATCH_UP_EPOCHS * 5));
      assert.deepEqual(
        catchUp?.items.map((i) => i.targetId),
        ['op_recent'],
      );
    },
  ],
  [
    'the advanced counter: the next epoch is above what consoles saw, and the gap is crossed by every reader',
    async (store) => {
      const before = await revoke(store, 'operator', 'op_1', null);
      const { hub, sent } = hubOn(store, ['con_a']);
      await hub.resync(); // the node's watermark, as at its start
      assert.deepEqual(await store.revocations.advanceEpoch(1000), { from: before.epoch, to: 1000 });
      assert.deepEqual(await store.revocations.advanceEpoch(1000), { from: 1000, to: 1000 }, 'again: nothing moves');
      assert.deepEqual(await store.revocations.advanceEpoch(10), { from: 1000, to: 1000 }, 'never lowered');
      assert.equal(await store.revocations.currentEpoch(), before.epoch, 'no revocation is made up');
      const next: RevocationRecord = await revoke(store, 'operator', 'op_2', null);
      assert.equal(next.epoch, 1001);
      // Another node's revocation, told by the bus: pushed here across the gap, and acknowledged.
      await hub.deliverUpTo(next.epoch);
      assert.deepEqual(
        sent.map((m) => [m.epoch, m.items.map((i) => i.targetId)]),
        [[1001, ['op_2']]],
      );
      assert.equal(hub.acknowledge('con_a', 1001), true);
      // A console that applied 1000 before the restore, and one behind: both get it.
      assert.deepEqual(
        single(await hub.catchUp('con_b', 1000))?.items.map((i) => i.epoch),
        [1001],
      );
      assert.deepEqual(
        single(await hub.catchUp('con_c', before.epoch))?.items.map((i) => i.epoch),
        [1001],
      );
      assert.deepEqual(
        (await store.revocations.since(0)).map((r) => r.epoch),
        [before.epoch, 1001],
      );
    },
  ],
];

async function seed(store: Store): Promise<void> {
  for (const id of ['con_a', 'con_b', 'con_c']) await store.consoles.insert(consoleRow(id, clock()));
}

describe('RevocationHub after a database restored from a backup', () => {
  onEachEngine('restore', cases, seed);
});
