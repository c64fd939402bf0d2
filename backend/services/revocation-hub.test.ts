import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import type { RevocationMessage } from '../../shared/protocol.js';
import type { SessionRecord, Store } from '../store/repositories.js';
import { openSqliteStore } from '../store/sqlite-store.js';
import { onEachEngine } from '../store/test-kit.js';
import { EventLog, type UnitOfWork } from './event-log.js';
import { InProcessBus, PostgresBus, type ClusterBus } from '../cluster/bus.js';
import { openPostgresStore } from '../store/postgres-store.js';
import { createDatabase, postgresSkip, startPostgres } from '../store/postgres-throwaway.js';
import { wireServicePushes } from '../cluster/pushes.js';
import { RevocationHub, type ConsolePusher } from './revocation-hub.js';
import type { SessionService } from './session-service.js';

/** The one catch-up message of a catch-up that fits in one (undefined for none). */
function single(messages: RevocationMessage[]): RevocationMessage | undefined {
  assert.ok(messages.length <= 1, `one catch-up message, not ${messages.length}`);
  return messages[0];
}

const logger = pino({ level: 'silent' });
const clock = () => Date.UTC(2026, 0, 1);

/** The consoles connected to one node, recording what they were sent. */
function node(connected: string[]): ConsolePusher & { sent: Map<string, RevocationMessage[]>; cut: string[] } {
  const sent = new Map<string, RevocationMessage[]>();
  const cut: string[] = [];
  return {
    sent,
    cut,
    connectedConsoleIds: () => connected,
    isConnected: (id) => connected.includes(id),
    sendRaw: (id, data) => {
      if (!connected.includes(id)) return false;
      sent.set(id, [...(sent.get(id) ?? []), JSON.parse(String(data)) as RevocationMessage]);
      return true;
    },
    disconnect: (id, _reason, onReceived) => {
      cut.push(id);
      onReceived?.();
    },
  };
}

/** Sessions are closed through the unit of work, as SessionService does. */
const sessions = {
  close: async (uow: UnitOfWork, session: SessionRecord) => {
    await uow.store.sessions.update(session.id, { state: 'revoked', endedAt: clock(), endReason: 'revoked' });
  },
} as unknown as SessionService;

describe('RevocationHub on the async store', () => {
  let dir: string;
  let store: Store;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'baton-revocations-'));
    store = openSqliteStore({ dataDir: dir, durability: 'normal' });
    for (const id of ['con_a', 'con_b', 'con_c']) {
      await insertConsole(store, id, clock());
    }
    await insertOperator(store, 'op_1', clock());
  });
  after(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('pushes a revocation to the consoles of the node that took it and, through deliverUpTo (the bus pointer), of another node', async () => {
    const nodeA = node(['con_a']);
    const nodeB = node(['con_b', 'con_c']);
    const hubA = new RevocationHub(
      store,
      new EventLog(store, clock, logger, new InProcessBus({ nodeId: 'node-test', logger })),
      sessions,
      clock,
      nodeA,
      logger,
    );
    const hubB = new RevocationHub(
      store,
      new EventLog(store, clock, logger, new InProcessBus({ nodeId: 'node-test', logger })),
      sessions,
      clock,
      nodeB,
      logger,
    );
    const outcome = await hubA.revoke('operator', 'op_1', 'left the bank', 'admin:1');
    assert.equal(outcome.pushedTo, 1);
    assert.deepEqual([...nodeA.sent.keys()], ['con_a']);
    assert.equal(nodeB.sent.size, 0);
    await hubB.deliverUpTo(outcome.revocation.epoch);
    assert.deepEqual([...nodeB.sent.keys()].sort(), ['con_b', 'con_c']);
    // Once per epoch and node: a second pointer (or a resync) for the same epoch pushes nothing again.
    await hubB.deliverUpTo(outcome.revocation.epoch);
    await hubB.resync();
    assert.equal(nodeB.sent.get('con_b')?.length, 1);
    assert.deepEqual(nodeB.sent.get('con_b')?.[0]?.items[0]?.targetId, 'op_1');
    assert.equal(await hubB.currentEpoch(), outcome.revocation.epoch);
    // Each node's rows wait for its consoles' acks (these never answer): the admin's deliveries view waits for them.
    await hubA.flushAcks(outcome.revocation.epoch);
    await hubB.flushAcks();
    const deliveries = await store.revocations.deliveries(outcome.revocation.epoch);
    assert.deepEqual(deliveries.map((d) => d.consoleId).sort(), ['con_a', 'con_b', 'con_c']);
    await assert.rejects(hubB.revoke('operator', 'op_1', 'again', 'admin:2'), { code: 'OPERATOR_REVOKED' });
  });

  it('cuts off a revoked console on whichever node holds it, its close answer counting as the acknowledgement', async () => {
    const nodeA = node([]);
    const nodeB = node(['con_c']);
    const hubA = new RevocationHub(
      store,
      new EventLog(store, clock, logger, new InProcessBus({ nodeId: 'node-test', logger })),
      sessions,
      clock,
      nodeA,
      logger,
    );
    const hubB = new RevocationHub(
      store,
      new EventLog(store, clock, logger, new InProcessBus({ nodeId: 'node-test', logger })),
      sessions,
      clock,
      nodeB,
      logger,
    );
    const outcome = await hubA.revoke('console', 'con_c', 'stolen', 'admin:1');
    assert.equal(outcome.pushedTo, 0);
    await hubB.deliverUpTo(outcome.revocation.epoch);
    assert.deepEqual(nodeB.cut, ['con_c']);
    await hubB.flushAcks();
    const [delivery] = await store.revocations.deliveries(outcome.revocation.epoch);
    assert.equal(delivery?.consoleId, 'con_c');
    assert.notEqual(delivery?.ackedAt, null);
  });

  it('catches a console up from the store, whatever node it reconnects to', async () => {
    const hub = new RevocationHub(
      store,
      new EventLog(store, clock, logger, new InProcessBus({ nodeId: 'node-test', logger })),
      sessions,
      clock,
      node([]),
      logger,
    );
    const catchUp = single(await hub.catchUp('con_a', 0));
    assert.ok(catchUp !== undefined);
    // The operator revocation concerns every console; con_c's own revocation does not concern con_a.
    assert.deepEqual(
      catchUp.items.map((i) => i.kind),
      ['operator'],
    );
    assert.equal(catchUp.epoch, await hub.currentEpoch());
    assert.deepEqual(await hub.catchUp('con_a', catchUp.epoch), []);
  });

  it('keeps acknowledgements for a retry when writing them fails', async () => {
    let down = true;
    const flaky: Store = {
      ...store,
      // The store's repository with its ack write failing while the database is away.
      revocations: Object.assign(Object.create(store.revocations) as Store['revocations'], {
        recordAcks: (acks: Parameters<Store['revocations']['recordAcks']>[0]) =>
          down
            ? Promise.reject(Object.assign(new Error('database away'), { code: 'ECONNREFUSED' }))
            : store.revocations.recordAcks(acks),
      }),
    };
    const hub = new RevocationHub(
      flaky,
      new EventLog(store, clock, logger, new InProcessBus({ nodeId: 'node-test', logger })),
      sessions,
      clock,
      node([]),
      logger,
    );
    single(await hub.catchUp('con_b', 0)); // it reconnects: told of every epoch so far (an ack of one never sent is refused)
    assert.equal(hub.acknowledge('con_b', 1), true);
    await assert.rejects(hub.flushAcks(), /database away/);
    assert.equal((await store.consoles.get('con_b'))?.revocationEpoch, 0);
    down = false;
    await hub.flushAcks();
    assert.equal((await store.consoles.get('con_b'))?.revocationEpoch, 1);
  });
  it('writes the acknowledgements that arrive together in one write, each console up to its highest epoch', async () => {
    let transactions = 0;
    const counting: Store = {
      ...store,
      revocations: Object.assign(Object.create(store.revocations) as Store['revocations'], {
        recordAcks: (acks: Parameters<Store['revocations']['recordAcks']>[0]) => {
          transactions++;
          return store.revocations.recordAcks(acks);
        },
      }),
    };
    const hub = new RevocationHub(
      counting,
      new EventLog(store, clock, logger, new InProcessBus({ nodeId: 'node-test', logger })),
      sessions,
      clock,
      node([]),
      logger,
    );
    single(await hub.catchUp('con_a', 0)); // told of epochs 1 and 2
    hub.acknowledge('con_a', 1);
    hub.acknowledge('con_a', 2);
    hub.acknowledge('con_a', 1); // late and lower: the epoch stays 2
    await hub.flushAcks();
    assert.equal(transactions, 1);
    assert.equal((await store.consoles.get('con_a'))?.revocationEpoch, 2);
    const [delivery] = (await store.revocations.deliveries(1)).filter((d) => d.consoleId === 'con_a');
    assert.notEqual(delivery?.ackedAt, null);
    // Nothing pending: the write scheduled by those acks finds nothing left and writes nothing.
    await hub.flushAcks();
    assert.equal(transactions, 1);
  });
});

/**
 * A node's own revocation pointer, on each engine's bus. The in-process bus delivers it in the commit's
 * after-hooks, always before the revoke's own push (the SQLite case fails on the code before the wait).
 * PostgreSQL's NOTIFY comes first under load (the benchmark's statement log) but seldom in this quiet
 * test: there the case checks the same outcome on the real LISTEN/NOTIFY path, whichever comes first.
 */
async function ownPointerCase(store: Store, bus: ClusterBus): Promise<void> {
  const reads: number[] = [];
  // The hub's own reads are watched; the event log keeps the store itself (it finds its Kysely by it).
  const watched = watchSince(store, reads);
  const events = new EventLog(store, clock, logger, bus);
  const consoles = node(['con_a']);
  const hub = new RevocationHub(watched, events, sessions, clock, consoles, logger);
  const noop = () => Promise.resolve();
  wireServicePushes({
    bus,
    revocations: hub,
    policies: { version: { version: 1 }, refresh: noop },
    authenticators: { refresh: noop },
  });
  try {
    await bus.start(); // the first resync fixes the watermark
    const outcome = await hub.revoke('operator', 'op_own', 'left the bank', 'admin:1');
    const epoch = outcome.revocation.epoch;
    assert.deepEqual(reads, [], 'pushed as committed, not read back after the pointer');
    assert.equal(consoles.sent.get('con_a')?.filter((m) => m.epoch === epoch).length, 1, 'pushed once');
    // Committed by this node outside `revoke` (as a service revocation is): the pointer pushes it.
    const other = await events.atomically(async (uow) => {
      const stored = await uow.store.revocations.insert({
        kind: 'operator',
        targetId: 'op_own',
        operatorId: 'op_own',
        consoleId: null,
        reason: 'again',
        actor: 'test',
        at: clock(),
      });
      await uow.publish('revocation', { epoch: stored.epoch });
      return stored.epoch;
    });
    await eventually(() => (consoles.sent.get('con_a') ?? []).some((m) => m.epoch === other));
    // One read, for the second epoch only: the first pointer found its epoch pushed.
    assert.deepEqual(reads, [epoch], 'read from the store, from the watermark on');
    assert.equal(consoles.sent.get('con_a')?.filter((m) => m.epoch === epoch).length, 1, 'the first not pushed again');
    await hub.flushAcks(); // the second push's delivery row, written before the store closes
  } finally {
    events.stopFeed();
    await bus.close();
  }
}

describe('RevocationHub and its own bus pointer', () => {
  const title =
    'pushes a revocation it took without reading it back, though its own bus pointer arrives first; a pointer of its own that no revoke here pushed is still pushed';

  it(`${title} (embedded SQLite, in-process bus)`, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'baton-revocations-own-'));
    const store = openSqliteStore({ dataDir: dir, durability: 'normal' });
    try {
      await insertConsole(store, 'con_a', clock());
      await insertOperator(store, 'op_own', clock());
      await ownPointerCase(store, new InProcessBus({ nodeId: 'node-own', logger }));
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it(`${title} (PostgreSQL, LISTEN/NOTIFY)`, { skip: postgresSkip() }, async () => {
    const server = await startPostgres();
    try {
      const url = await createDatabase(server.url, 'own_pointer', { migrated: true });
      const store = await openPostgresStore({ url, poolSize: 2 });
      try {
        await insertConsole(store, 'con_a', clock());
        await insertOperator(store, 'op_own', clock());
        await ownPointerCase(store, new PostgresBus({ nodeId: 'node-own', logger, connection: url }));
      } finally {
        await store.close();
      }
    } finally {
      await server.stop();
    }
  });
});

/**
 * Two revocations back to back, `con_fast` answering each 10 ms (`tick`) after it, the second within the
 * first's wait (its rows are not written yet). Returns their epochs.
 */
async function backToBack(hub: RevocationHub, tick: () => void): Promise<[number, number]> {
  const first = (await hub.revoke('operator', 'op_t1', 'left the bank', 'admin:1')).revocation.epoch;
  tick();
  hub.acknowledge('con_fast', first);
  const second = (await hub.revoke('operator', 'op_t2', 'left the bank', 'admin:1')).revocation.epoch;
  tick();
  hub.acknowledge('con_fast', second);
  return [first, second];
}

/**
 * Each delivery row gets the time its console first acknowledged its epoch (the hub's clock), not that of
 * a later ack written with it: a console that answers fan-out E and then E + 1 while E's rows still wait
 * (another console is silent), and one that answers both late, after those rows were written, in one write.
 * Before, the hub kept one ack per console (its highest) and marked both rows with the second ack's time.
 */
async function ackTimesCase(store: Store): Promise<void> {
  let now = clock();
  const at = () => now;
  const consoles = node(['con_fast', 'con_late', 'con_silent']);
  const events = new EventLog(store, at, logger, new InProcessBus({ nodeId: 'node-times', logger }));
  const hub = new RevocationHub(store, events, sessions, at, consoles, logger);
  await hub.resync();
  const [first, second] = await backToBack(hub, () => (now += 10)); // the second within the first's wait
  await hub.flushAcks(first); // both fan-outs' rows, at the end of the first one's wait
  now += 10;
  hub.acknowledge('con_late', first);
  now += 10;
  hub.acknowledge('con_late', second); // in the same turn: one write, after the rows were written unacknowledged
  await hub.flushAcks();
  const ackedAt = async (epoch: number) =>
    Object.fromEntries((await store.revocations.deliveries(epoch)).map((d) => [d.consoleId, d.ackedAt]));
  const sent = clock();
  assert.deepEqual(await ackedAt(first), { con_fast: sent + 10, con_late: sent + 30, con_silent: null });
  assert.deepEqual(await ackedAt(second), { con_fast: sent + 20, con_late: sent + 40, con_silent: null });
  for (const id of ['con_fast', 'con_late']) assert.equal((await store.consoles.get(id))?.revocationEpoch, second);
}

/** The same, when the writes fail for a while (the database away): every row keeps its ack time for the retry. */
async function ackTimesRetryCase(store: Store): Promise<void> {
  let now = clock();
  const at = () => now;
  let down = true;
  const away = () => Promise.reject(new Error('database away'));
  const flaky: Store = {
    ...store,
    revocations: Object.assign(Object.create(store.revocations) as Store['revocations'], {
      recordDeliveries: (...args: Parameters<Store['revocations']['recordDeliveries']>) =>
        down ? away() : store.revocations.recordDeliveries(...args),
      recordAcks: (acks: Parameters<Store['revocations']['recordAcks']>[0]) =>
        down ? away() : store.revocations.recordAcks(acks),
    }),
  };
  const events = new EventLog(store, at, logger, new InProcessBus({ nodeId: 'node-retry', logger }));
  const hub = new RevocationHub(flaky, events, sessions, at, node(['con_fast', 'con_late']), logger);
  await hub.resync();
  const [first, second] = await backToBack(hub, () => (now += 10));
  await assert.rejects(hub.flushAcks(first), /database away/);
  now += 10;
  hub.acknowledge('con_late', first); // while the rows wait for the retry
  now += 10;
  hub.acknowledge('con_late', second);
  await assert.rejects(hub.flushAcks(), /database away/);
  down = false;
  await hub.flushAcks();
  const ackedAt = async (epoch: number) =>
    Object.fromEntries((await store.revocations.deliveries(epoch)).map((d) => [d.consoleId, d.ackedAt]));
  const sent = clock();
  assert.deepEqual(await ackedAt(first), { con_fast: sent + 10, con_late: sent + 30 });
  assert.deepEqual(await ackedAt(second), { con_fast: sent + 20, con_late: sent + 40 });
}

/**
 * A console's ack of an epoch this node never sent it (a bug, or tampering) is refused, logged at warn
 * with a stable code and records nothing: neither the console's epoch nor a row written while it would
 * have been pending. An epoch it was sent by a push of another node's revocation (the bus pointer) or
 * handed in a catch-up read from the store (newer than this node's pushes) is acknowledged as ever.
 */
async function unsentEpochCase(store: Store): Promise<void> {
  const warnings: { code?: string; console?: string; epoch?: number }[] = [];
  const watched = pino({ level: 'warn' }, { write: (line: string) => warnings.push(JSON.parse(line) as never) });
  const consoles = node(['con_fast']);
  const events = new EventLog(store, clock, logger, new InProcessBus({ nodeId: 'node-unsent', logger }));
  const hub = new RevocationHub(store, events, sessions, clock, consoles, watched);
  await hub.resync();
  const known = (await store.consoles.get('con_fast'))?.revocationEpoch;
  const epoch = (await hub.revoke('operator', 'op_u1', 'left the bank', 'admin:1')).revocation.epoch;
  const recorded = hub.acknowledge('con_fast', 1_000_000_000);
  await hub.flushAcks(epoch); // its row, written at the end of its wait: it was not answered
  assert.deepEqual(
    (await store.revocations.deliveries(epoch)).map((d) => [d.consoleId, d.ackedAt]),
    [['con_fast', null]],
  );
  assert.equal((await store.consoles.get('con_fast'))?.revocationEpoch, known, 'its epoch did not move');
  assert.equal(recorded, false, 'the caller is told (it tells the console)');
  assert.deepEqual(
    warnings.map((w) => [w.code, w.console, w.epoch]),
    [['REVOCATION_ACK_EPOCH_UNKNOWN', 'con_fast', 1_000_000_000]],
  );

  // Committed by another node and not pushed here yet: a console reconnecting here is handed it in its catch-up.
  const elsewhere = await store.revocations.insert({
    kind: 'operator',
    targetId: 'op_u2',
    operatorId: 'op_u2',
    consoleId: null,
    reason: 'left the bank',
    actor: 'admin:2',
    at: clock(),
  });
  const catchUp = single(await hub.catchUp('con_back', epoch));
  assert.equal(catchUp?.epoch, elsewhere.epoch);
  assert.equal(hub.acknowledge('con_back', elsewhere.epoch), true);
  // Its bus pointer arrives: pushed to the consoles here, which acknowledge it.
  await hub.deliverUpTo(elsewhere.epoch);
  assert.equal(hub.acknowledge('con_fast', elsewhere.epoch), true);
  assert.equal(hub.acknowledge('con_fast', elsewhere.epoch + 1), false, 'the next epoch is not sent yet');
  await hub.flushAcks();
  assert.equal((await store.consoles.get('con_fast'))?.revocationEpoch, elsewhere.epoch);
  assert.equal((await store.consoles.get('con_back'))?.revocationEpoch, elsewhere.epoch);
  assert.notEqual((await store.revocations.deliveries(epoch))[0]?.ackedAt ?? null, null, 'covered by the real ack');
}

describe('RevocationHub acknowledgements: each row at its own time, never an epoch not sent', () => {
  const cases: [string, (store: Store) => Promise<void>][] = [
    [
      'a console answering fan-out E, then E + 1 within its wait (or both late, in one write): the row of E has the time of the ack of E',
      ackTimesCase,
    ],
    [
      'the same when the database is away for a while: the rows and acks kept for the retry keep their times',
      ackTimesRetryCase,
    ],
    [
      'an ack of an epoch this node never pushed nor handed out is refused and records nothing; one it handed out in a catch-up or pushed from another node counts',
      unsentEpochCase,
    ],
  ];
  /** The rows both cases need. */
  async function seed(store: Store): Promise<void> {
    for (const id of ['con_fast', 'con_late', 'con_silent', 'con_back']) await insertConsole(store, id, clock());
    for (const id of ['op_t1', 'op_t2', 'op_u1', 'op_u2']) await insertOperator(store, id, clock());
  }

  onEachEngine('ack_times', cases, seed);
});

describe('RevocationHub fan-out: delivery rows and acknowledgements written in batches', () => {
  const CONSOLES = Array.from({ length: 200 }, (_, i) => `con_f${String(i).padStart(3, '0')}`);
  let dir: string;
  let store: Store;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'baton-fanout-'));
    store = openSqliteStore({ dataDir: dir, durability: 'normal' });
    for (const id of CONSOLES) {
      await insertConsole(store, id, clock());
    }
    for (const id of ['op_f1', 'op_f2', 'op_f3', 'op_f4', 'op_f5', 'op_f6', 'op_f7', 'op_f8']) {
      await insertOperator(store, id, clock());
    }
  });
  after(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** The store with its two fan-out writes counted, and how many of them ever ran at once; `down`: both fail. */
  function counted(down: () => boolean = () => false) {
    const stats = { deliveries: 0, acks: 0, inFlight: 0, maxInFlight: 0 };
    const track = async <T>(work: () => Promise<T>): Promise<T> => {
      stats.inFlight++;
      stats.maxInFlight = Math.max(stats.maxInFlight, stats.inFlight);
      try {
        return await work();
      } finally {
        stats.inFlight--;
      }
    };
    const wrapped: Store = {
      ...store,
      revocations: Object.assign(Object.create(store.revocations) as Store['revocations'], {
        recordDeliveries: (epoch: number, ids: string[], at: number) =>
          track(async () => {
            if (down()) throw new Error('database away');
            stats.deliveries++;
            // A write that takes a turn of the event loop, as any over a network does: acks scheduled meanwhile must wait.
            await new Promise((resolve) => setImmediate(resolve));
            await store.revocations.recordDeliveries(epoch, ids, at);
          }),
        recordAcks: (acks: Parameters<Store['revocations']['recordAcks']>[0]) =>
          track(async () => {
            if (down()) throw new Error('database away');
            stats.acks++;
            await store.revocations.recordAcks(acks);
          }),
      }),
    };
    return { stats, store: wrapped };
  }

  /** Consoles that answer every revocation at once, inside the send (before its delivery rows can be written). */
  function answering(connected: string[], unreachable: ReadonlySet<string> = new Set()) {
    const hubRef: { hub?: RevocationHub } = {};
    const pusher: ConsolePusher = {
      connectedConsoleIds: () => connected,
      isConnected: (id) => connected.includes(id) && !unreachable.has(id),
      sendRaw: (id, data) => {
        if (!connected.includes(id) || unreachable.has(id)) return false; // its socket closed mid-fan-out
        hubRef.hub?.acknowledge(id, (JSON.parse(String(data)) as RevocationMessage).epoch);
        return true;
      },
      disconnect: () => undefined,
    };
    return { hubRef, pusher };
  }

  /** Consoles that answer each revocation a turn of the event loop after it was sent, as over a network; `silent` never do. */
  function answeringLater(connected: string[], silent: ReadonlySet<string> = new Set()) {
    const hubRef: { hub?: RevocationHub } = {};
    const here = new Set(connected);
    const pusher: ConsolePusher = {
      connectedConsoleIds: () => connected,
      isConnected: (id) => here.has(id),
      sendRaw: (id, data) => {
        if (!here.has(id)) return false;
        const { epoch } = JSON.parse(String(data)) as RevocationMessage;
        if (!silent.has(id)) setImmediate(() => hubRef.hub?.acknowledge(id, epoch));
        return true;
      },
      disconnect: () => undefined,
    };
    return { hubRef, pusher };
  }

  function hubOn(s: Store, pusher: ConsolePusher): RevocationHub {
    return new RevocationHub(
      s,
      new EventLog(store, clock, logger, new InProcessBus({ nodeId: 'node-test', logger })),
      sessions,
      clock,
      pusher,
      logger,
    );
  }

  it("records the acknowledgements of 200 consoles that answer before their delivery rows exist: every row written by the acks' one write, acknowledged", async () => {
    const { stats, store: s } = counted();
    const { hubRef, pusher } = answering(CONSOLES);
    const hub = (hubRef.hub = hubOn(s, pusher));
    const outcome = await hub.revoke('operator', 'op_f1', 'left the bank', 'admin:1');
    assert.equal(outcome.pushedTo, CONSOLES.length);
    await hub.flushAcks();
    const deliveries = await store.revocations.deliveries(outcome.revocation.epoch);
    assert.equal(deliveries.length, CONSOLES.length);
    assert.deepEqual(
      deliveries.filter((d) => d.ackedAt === null).map((d) => d.consoleId),
      [],
      'every console that answered is recorded as acknowledged',
    );
    assert.deepEqual(stats, { deliveries: 0, acks: 1, inFlight: 0, maxInFlight: 1 });
    for (const id of [CONSOLES[0], CONSOLES.at(-1)]) {
      assert.equal((await store.consoles.get(id ?? ''))?.revocationEpoch, outcome.revocation.epoch);
    }
  });

  it('waits for the consoles that were sent a revocation, then writes every delivery row with its acknowledgement in one write; a read of the deliveries waits for it', async () => {
    const { stats, store: s } = counted();
    const { hubRef, pusher } = answeringLater(CONSOLES);
    const hub = (hubRef.hub = hubOn(s, pusher));
    const outcome = await hub.revoke('operator', 'op_f4', 'left the bank', 'admin:1');
    await hub.flushAcks(outcome.revocation.epoch); // what GET /v1/admin/revocations/:epoch/deliveries does first
    const deliveries = await store.revocations.deliveries(outcome.revocation.epoch);
    assert.equal(deliveries.length, CONSOLES.length);
    assert.deepEqual(
      deliveries.filter((d) => d.ackedAt === null).map((d) => d.consoleId),
      [],
    );
    assert.deepEqual(stats, { deliveries: 0, acks: 1, inFlight: 0, maxInFlight: 1 });
  });

  it('a console that never answers: after the wait, its row is written unacknowledged and the others acknowledged; a failed ack write keeps their rows for the retry', async () => {
    const silent = CONSOLES[3] ?? '';
    let acksDown = true;
    const { stats, store: s } = counted();
    const flaky: Store = {
      ...s,
      revocations: Object.assign(Object.create(s.revocations) as Store['revocations'], {
        recordAcks: (acks: Parameters<Store['revocations']['recordAcks']>[0]) =>
          acksDown ? Promise.reject(new Error('database away')) : s.revocations.recordAcks(acks),
      }),
    };
    const { hubRef, pusher } = answeringLater(CONSOLES, new Set([silent]));
    const hub = (hubRef.hub = hubOn(flaky, pusher));
    // The revocation stands although its bookkeeping could not all be written.
    const outcome = await hub.revoke('operator', 'op_f5', 'left the bank', 'admin:1');
    const epoch = outcome.revocation.epoch;
    await assert.rejects(hub.flushAcks(epoch), /database away/);
    assert.deepEqual(
      (await store.revocations.deliveries(epoch)).map((d) => [d.consoleId, d.ackedAt]),
      [[silent, null]],
      "only the silent console's row: the others were to be written with their acks",
    );
    acksDown = false;
    await hub.flushAcks();
    const deliveries = await store.revocations.deliveries(epoch);
    assert.equal(deliveries.length, CONSOLES.length, 'every console sent it has its row');
    assert.deepEqual(
      deliveries.filter((d) => d.ackedAt === null).map((d) => d.consoleId),
      [silent],
    );
    assert.equal((await store.consoles.get(CONSOLES[0] ?? ''))?.revocationEpoch, epoch);
    assert.equal(stats.maxInFlight, 1);
  });

  it('a console whose socket closed mid-fan-out gets the revocation when it reconnects, and its delivery and ack are recorded then', async () => {
    const gone = CONSOLES[7] ?? '';
    const { stats, store: s } = counted();
    const { hubRef, pusher } = answering(CONSOLES, new Set([gone]));
    const hub = (hubRef.hub = hubOn(s, pusher));
    const before = await hub.currentEpoch();
    const outcome = await hub.revoke('operator', 'op_f2', 'left the bank', 'admin:1');
    assert.equal(outcome.pushedTo, CONSOLES.length - 1);
    await hub.flushAcks();
    const epoch = outcome.revocation.epoch;
    assert.equal(
      (await store.revocations.deliveries(epoch)).find((d) => d.consoleId === gone),
      undefined,
    );
    assert.equal((await store.consoles.get(gone))?.revocationEpoch, before);

    // It reconnects (to this node or any other): its hello said `before`, so the catch-up carries the revocation.
    const catchUp = single(await hub.catchUp(gone, before));
    assert.ok(catchUp?.items.some((i) => i.kind === 'operator' && i.targetId === 'op_f2'));
    assert.equal(catchUp?.epoch, epoch);
    hub.acknowledge(gone, epoch);
    await hub.flushAcks();
    const row = (await store.revocations.deliveries(epoch)).find((d) => d.consoleId === gone);
    assert.ok(row !== undefined && row.ackedAt !== null, 'its delivery is recorded and acknowledged');
    assert.equal((await store.consoles.get(gone))?.revocationEpoch, epoch);
    assert.equal(stats.maxInFlight, 1);
  });

  it('keeps the delivery rows and the acknowledgements for a retry when the database is away, and writes both when it is back', async () => {
    let down = true;
    const { store: s } = counted(() => down);
    const { hubRef, pusher } = answering(CONSOLES);
    const hub = (hubRef.hub = hubOn(s, pusher));
    // The revocation itself stands (committed, pushed) although its bookkeeping could not be written.
    const outcome = await hub.revoke('operator', 'op_f3', 'left the bank', 'admin:1');
    assert.equal(outcome.pushedTo, CONSOLES.length);
    await assert.rejects(hub.flushAcks(), /database away/);
    assert.deepEqual(await store.revocations.deliveries(outcome.revocation.epoch), []);
    down = false;
    await hub.flushAcks();
    const deliveries = await store.revocations.deliveries(outcome.revocation.epoch);
    assert.equal(deliveries.length, CONSOLES.length);
    assert.equal(deliveries.filter((d) => d.ackedAt === null).length, 0);
  });

  it("fan-outs arriving back to back while a console stays silent do not hold the writer: the first one's rows are written while they keep coming", async () => {
    const silent = CONSOLES[5] ?? '';
    const { hubRef, pusher } = answeringLater(CONSOLES, new Set([silent]));
    const hub = (hubRef.hub = hubOn(store, pusher));
    await hub.resync();
    const { revocation } = await hub.revoke('operator', 'op_f6', 'left the bank', 'admin:1');
    const rows = await rowsWrittenWhileFanOutsCome(store, hub, revocation.epoch);
    assert.equal(rows.length, CONSOLES.length);
    assert.deepEqual(
      rows.filter((d) => d.ackedAt === null).map((d) => d.consoleId),
      [silent],
    );
    await hub.flushAcks(); // the later fan-outs' rows, before the next case
  });

  it(
    'two fan-outs to more consoles than the writer queues (100,000 rows) while one is silent: none is dropped, every row written',
    { timeout: 60_000 },
    async () => {
      const many = Array.from({ length: 60_000 }, (_, i) => `con_m${String(i).padStart(5, '0')}`);
      const silent = many[0] ?? '';
      const { hubRef, pusher } = answeringLater(many, new Set([silent]));
      const hub = (hubRef.hub = hubOn(store, pusher));
      const [a, b] = await Promise.all([
        hub.revoke('operator', 'op_f7', 'left the bank', 'admin:1'),
        hub.revoke('operator', 'op_f8', 'left the bank', 'admin:1'),
      ]);
      for (const outcome of [a, b]) {
        await hub.flushAcks(outcome.revocation.epoch);
        const rows = await store.revocations.deliveries(outcome.revocation.epoch);
        assert.equal(rows.length, many.length, `epoch ${outcome.revocation.epoch}: every console sent it has its row`);
      }
    },
  );
});

describe('RevocationHub fan-out waits: consoles that answer late, fan-outs back to back', () => {
  const CONSOLES = Array.from({ length: 20 }, (_, i) => `con_w${String(i).padStart(3, '0')}`);
  let dir: string;
  let store: Store;
  let operators = 0;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'baton-fanout-wait-'));
    store = openSqliteStore({ dataDir: dir, durability: 'normal' });
    for (const id of CONSOLES) await insertConsole(store, id, clock());
    for (let i = 0; i < 40; i++) await insertOperator(store, `op_w${i}`, clock());
  });
  after(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Consoles that answer each revocation `delayMs` after it was sent; `silent` never do. */
  function answeringAfter(delayMs: number, silent: ReadonlySet<string> = new Set(), sent = new Set<number>()) {
    const hubRef: { hub?: RevocationHub } = {};
    const pusher: ConsolePusher = {
      connectedConsoleIds: () => CONSOLES,
      isConnected: () => true,
      sendRaw: (id, data) => {
        const { epoch } = JSON.parse(String(data)) as RevocationMessage;
        sent.add(epoch);
        if (!silent.has(id)) setTimeout(() => hubRef.hub?.acknowledge(id, epoch), delayMs);
        return true;
      },
      disconnect: () => undefined,
    };
    const hub = (hubRef.hub = new RevocationHub(
      store,
      new EventLog(store, clock, logger, new InProcessBus({ nodeId: 'node-wait', logger })),
      sessions,
      clock,
      pusher,
      logger,
    ));
    return hub;
  }

  it("every console answers in 150 ms while fan-outs come every 100 ms: the first one's rows are written while they keep coming", async () => {
    const hub = answeringAfter(150);
    await hub.resync();
    const { revocation } = await hub.revoke('operator', `op_w${operators++}`, 'left the bank', 'admin:1');
    const rows = await rowsWrittenWhileFanOutsCome(store, hub, revocation.epoch);
    assert.equal(rows.length, CONSOLES.length);
    await hub.flushAcks();
  });

  it('the deliveries view of a revocation writes its late acks, though another fan-out still waits for a console', async () => {
    const silent = CONSOLES[0] ?? '';
    const sent = new Set<number>();
    const hub = answeringAfter(1, new Set([silent]), sent);
    await hub.resync();
    // Written after its wait, the silent console's row unacknowledged.
    const { revocation } = await hub.revoke('operator', `op_w${operators++}`, 'left the bank', 'admin:1');
    await hub.flushAcks(revocation.epoch);
    const next = hub.revoke('operator', `op_w${operators++}`, 'left the bank', 'admin:1'); // its fan-out waits for the silent console
    while (!sent.has(revocation.epoch + 1)) await new Promise((resolve) => setImmediate(resolve)); // it is pushed
    hub.acknowledge(silent, revocation.epoch); // it answers the first one at last
    await hub.flushAcks(revocation.epoch); // what GET /v1/admin/revocations/:epoch/deliveries does first
    const row = (await store.revocations.deliveries(revocation.epoch)).find((d) => d.consoleId === silent);
    assert.notEqual(row?.ackedAt ?? null, null, 'its acknowledgement is in the view');
    await next;
    await hub.flushAcks();
  });
});

let elsewhere = 0;

/**
 * This node's delivery rows of `epoch`, read as the deliveries view reads them, while other nodes' revocations are
 * pushed to `hub` through the bus pointer, one every 100 ms (each new wait ending later than the last): the rows must
 * be written while they keep coming, within 30 of them (3 s, twelve times a fan-out's wait).
 */
async function rowsWrittenWhileFanOutsCome(store: Store, hub: RevocationHub, epoch: number) {
  let written = false;
  const read = hub.flushAcks(epoch).then(() => (written = true));
  let pushes = 0;
  while (!written && pushes < 30) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    const other = await store.revocations.insert({
      kind: 'operator',
      targetId: `op_elsewhere_${elsewhere++}`,
      operatorId: null,
      consoleId: null,
      reason: 'left the bank',
      actor: 'admin:2',
      at: clock(),
    });
    await hub.deliverUpTo(other.epoch);
    pushes++;
  }
  assert.ok(written, `its rows still not written after ${pushes} later fan-outs`);
  await read;
  return store.revocations.deliveries(epoch);
}

/** A bare enrolled console row (no name, no site), as the fan-out reads it. */
async function insertConsole(store: Store, id: string, at: number): Promise<void> {
  await store.consoles.insert({
    id,
    name: null,
    channel: 'branch',
    site: null,
    publicJwk: '{}',
    jkt: id,
    enrolledAt: at,
    lastSeenAt: null,
    policyVersion: 0,
    revocationEpoch: 0,
    revokedAt: null,
    revokedReason: null,
  });
}

/** An active operator row named by its id. */
async function insertOperator(store: Store, id: string, at: number): Promise<void> {
  await store.operators.insert({
    id,
    displayName: id,
    roles: [],
    webauthnUserId: id,
    createdAt: at,
    failedAttempts: 0,
    revokedAt: null,
    revokedReason: null,
  });
}

/** `store`, with every read of revocations after an epoch noted in `reads`. */
function watchSince(store: Store, reads: number[]): Store {
  const revocations = new Proxy(store.revocations, {
    get(target, key) {
      const value: unknown = Reflect.get(target, key);
      if (key === 'since') {
        return (after: number) => {
          reads.push(after);
          return target.since(after);
        };
      }
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
  return new Proxy(store, {
    get(target, key) {
      if (key === 'revocations') return revocations;
      const value: unknown = Reflect.get(target, key);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}

/** Waits until `condition` holds, failing after two seconds. */
async function eventually(condition: () => boolean): Promise<void> {
  const deadline = Date.now() + 2000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met within 2 s');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
