import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { canonicalJson } from '../../shared/canonical-json.js';
import {
  AssuranceEventSchema,
  EVENT_CLOCK_SKEW_MS,
  GENESIS_HASH,
  type AssuranceEvent,
  type EventDraft,
  type StoredEvent,
} from '../../shared/events.js';
import { sha256Hex } from '../crypto/secrets.js';
import type { Store } from '../store/repositories.js';
import { openSqliteStore } from '../store/sqlite-store.js';
import { openPostgresStore } from '../store/postgres-store.js';
import { createDatabase, postgresSkip, startPostgres, type PostgresServer } from '../store/postgres-throwaway.js';
import { PostgresBus } from '../cluster/bus.js';
import { BatonError } from '../../shared/errors.js';
import { BACKEND_ORIGIN, EventLog, IngestStream, backendEventProblem, eventCanonicalJson } from './event-log.js';

const logger = pino({ level: 'silent' });

function policyChanged(version: number): EventDraft {
  return {
    type: 'policy-changed',
    subject: {},
    outcome: 'success',
    reasons: [],
    detail: { version, previousVersion: version - 1, actor: 'test' },
  };
}

/** A console's own chain, as its outbox builds it. */
class ConsoleChain {
  seq = 0;
  prevHash = GENESIS_HASH;
  constructor(readonly id: string) {}

  next(time: number, overrides: Partial<AssuranceEvent> = {}): AssuranceEvent {
    const event: AssuranceEvent = {
      id: randomUUID(),
      seq: ++this.seq,
      time,
      type: 'agent-online',
      subject: {},
      outcome: 'info',
      reasons: [],
      prevHash: this.prevHash,
      ...overrides,
    };
    this.prevHash = sha256Hex(canonicalJson(event));
    return event;
  }
}

/**
 * One database and two stores on it: two nodes on PostgreSQL (two pools: the heads are locked in the
 * database), the one store twice on embedded SQLite (one process by design).
 */
interface Engine {
  name: string;
  skip: false | string;
  open(): Promise<{ store: Store; other: Store; close: () => Promise<void> }>;
}

const pgSkip = postgresSkip();
let server: PostgresServer | undefined;

const engines: Engine[] = [
  {
    name: 'embedded SQLite',
    skip: false,
    open() {
      const dir = mkdtempSync(join(tmpdir(), 'baton-event-log-'));
      const store = openSqliteStore({ dataDir: dir, durability: 'normal' });
      return Promise.resolve({
        store,
        other: store,
        close: async () => {
          await store.close();
          rmSync(dir, { recursive: true, force: true });
        },
      });
    },
  },
  {
    name: 'PostgreSQL, two nodes',
    skip: pgSkip,
    async open() {
      server ??= await startPostgres();
      const url = await createDatabase(server.url, 'event_log', { migrated: true });
      // Small pools so that units queue for connections; a generous wait for one, since 40 units serialised on the
      // chain head can take longer than the default 3 s on a loaded machine, and the wait is not what is tested here.
      const store = await openPostgresStore({ url, poolSize: 4, connectTimeoutMs: 30_000 });
      const other = await openPostgresStore({ url, poolSize: 4, connectTimeoutMs: 30_000 });
      return {
        store,
        other,
        close: async () => {
          await Promise.all([store.close(), other.close()]);
          await server?.stop();
        },
      };
    },
  },
];

for (const engine of engines) describe(`EventLog on ${engine.name}`, { skip: engine.skip }, () => suite(engine));

function suite(engine: Engine): void {
  let store: Store;
  let other: Store;
  let close: () => Promise<void>;
  const now = Date.UTC(2026, 0, 1);
  const clock = () => now;

  before(async () => {
    ({ store, other, close } = await engine.open());
  });
  after(() => close());

  it('keeps one intact backend chain when units of work interleave, also from two event logs on one store (two nodes)', async () => {
    const nodeA = new EventLog(store, clock, logger);
    const nodeB = new EventLog(other, clock, logger);
    const before = await nodeA.head(BACKEND_ORIGIN);
    const work: Promise<unknown>[] = [];
    for (let i = 0; i < 20; i++) {
      const log = i % 2 === 0 ? nodeA : nodeB;
      work.push(
        log.atomically(async (uow) => {
          await uow.record(policyChanged(100 + i));
          await uow.record(policyChanged(200 + i));
        }),
        log.record(policyChanged(300 + i)),
      );
    }
    await Promise.all(work);
    const head = await nodeB.head(BACKEND_ORIGIN);
    assert.equal(head.lastSeq, before.lastSeq + 60);
    const report = await nodeA.verifyChain(BACKEND_ORIGIN);
    assert.equal(report.intact, true, JSON.stringify(report.problems));
    assert.equal(report.lastSeq, head.lastSeq);
  });

  it(
    'two units locking two rows in opposite order both commit (the deadlock victim is re-run), each event stored and published once',
    { skip: engine.name.startsWith('PostgreSQL') ? false : 'SQLite serialises writers: a unit cannot deadlock' },
    async () => {
      const nodeA = new EventLog(store, clock, logger);
      const nodeB = new EventLog(other, clock, logger);
      const seen: StoredEvent[] = [];
      nodeA.subscribe({ origin: BACKEND_ORIGIN }, (event) => seen.push(event));
      nodeB.subscribe({ origin: BACKEND_ORIGIN }, (event) => seen.push(event));
      const headBefore = await nodeA.head(BACKEND_ORIGIN);
      const rows = [`deadlock-${randomUUID()}`, `deadlock-${randomUUID()}`] as const;
      // Both units hold their first row before either asks for its second: a real deadlock, once.
      let arrived = 0;
      let release!: () => void;
      const bothHoldOne = new Promise<void>((resolve) => (release = resolve));
      const attempts: [number, number] = [0, 0];
      const hooks: [number, number] = [0, 0];
      const unit = (log: EventLog, i: 0 | 1, first: string, second: string) =>
        log.atomically(async (uow) => {
          attempts[i]++;
          await uow.store.events.lockHead(first);
          if (attempts[i] === 1) {
            if (++arrived === 2) release();
            await bothHoldOne;
          }
          await uow.store.events.lockHead(second);
          uow.afterCommit(() => hooks[i]++);
          return uow.record(policyChanged(700 + i));
        });
      const [a, b] = await Promise.all([unit(nodeA, 0, rows[0], rows[1]), unit(nodeB, 1, rows[1], rows[0])]);
      assert.equal(attempts[0] + attempts[1], 3, `one unit was re-run once (attempts ${attempts.join(', ')})`);
      assert.deepEqual(hooks, [1, 1], 'each afterCommit hook ran once, for the attempt that committed');
      const stored = await nodeA.query({ origin: BACKEND_ORIGIN, afterSeq: headBefore.lastSeq, limit: 10 });
      assert.deepEqual(
        stored.map((e) => e.id).sort(),
        [a.id, b.id].sort(),
        'each recorded event stored exactly once (nothing of the rolled-back attempt)',
      );
      assert.deepEqual(seen.map((e) => e.id).sort(), [a.id, b.id].sort(), 'each event handed to live followers once');
      const report = await nodeA.verifyChain(BACKEND_ORIGIN);
      assert.equal(report.intact, true, JSON.stringify(report.problems));
      assert.equal(report.lastSeq, headBefore.lastSeq + 2);
    },
  );

  it('publishes to live followers only after the commit, and nothing of a rolled-back unit', async () => {
    const log = new EventLog(store, clock, logger);
    const seen: StoredEvent[] = [];
    log.subscribe({ origin: BACKEND_ORIGIN }, (event) => seen.push(event));
    const headBefore = await log.head(BACKEND_ORIGIN);
    await assert.rejects(
      log.atomically(async (uow) => {
        await uow.record(policyChanged(1));
        assert.equal(seen.length, 0, 'not published inside the unit');
        throw new Error('roll back');
      }),
      /roll back/,
    );
    assert.equal(seen.length, 0);
    assert.deepEqual(await log.head(BACKEND_ORIGIN), headBefore);
    let hookRan = false;
    const recorded = await log.atomically(async (uow) => {
      const event = await uow.record(policyChanged(2));
      uow.afterCommit(() => (hookRan = true));
      assert.equal(seen.length, 0);
      assert.equal(hookRan, false);
      return event;
    });
    assert.equal(hookRan, true);
    assert.deepEqual(
      seen.map((e) => e.seq),
      [recorded.seq],
    );
    // The rolled-back event left no hole: the committed one took its number.
    assert.equal(recorded.seq, headBefore.lastSeq + 1);
    assert.equal(recorded.prevHash, headBefore.lastHash);
  });

  it('hands live followers committed events in cursor order while units of work interleave', async () => {
    const log = new EventLog(store, clock, logger);
    const seen: number[] = [];
    log.subscribe({}, (event) => seen.push(event.cursor));
    let wrote!: () => void;
    const written = new Promise<void>((resolve) => (wrote = resolve));
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const slow = log.atomically(async (uow) => {
      await uow.record(policyChanged(7));
      wrote();
      await gate;
    });
    await written;
    const chain = new ConsoleChain('con_order');
    const fast = log.ingest(chain.id, [chain.next(now)]);
    if (store.engine === 'postgres') {
      // The console's batch commits while the slow unit, holding a lower cursor, is still open.
      await fast;
      assert.deepEqual(seen, [], 'held until the unit with the lower cursor ends');
    }
    // (On SQLite, one unit at a time: the batch waits for the slow unit.)
    release();
    await Promise.all([slow, fast]);
    assert.equal(seen.length, 2);
    assert.deepEqual(
      seen,
      [...seen].sort((a, b) => a - b),
    );
  });

  it('refuses a nested unit of work (or the outer store) inside a unit instead of deadlocking', async () => {
    const log = new EventLog(store, clock, logger);
    await assert.rejects(
      log.atomically(async () => {
        await log.record(policyChanged(1));
      }),
      /inside a unit of work/,
    );
    await assert.rejects(
      log.atomically(async () => {
        await log.head(BACKEND_ORIGIN);
      }),
      /inside a unit of work/,
    );
    // After the unit ends, the same calls are fine.
    await log.record(policyChanged(2));
  });

  it('commits batches arriving together in one unit and acknowledges each only after it', async () => {
    const log = new EventLog(store, clock, logger);
    const a = new ConsoleChain('con_group_a');
    const b = new ConsoleChain('con_group_b');
    let unitsSeen = 0;
    const units = new Set<unknown>();
    const effects = (uow: unknown) => {
      units.add(uow);
      unitsSeen++;
      return undefined;
    };
    const results = await Promise.all([
      log.ingest(a.id, [a.next(now), a.next(now)], effects),
      log.ingest(b.id, [b.next(now)], effects),
    ]);
    assert.deepEqual(
      results.map((r) => [r.upToSeq, r.inserted]),
      [
        [2, 2],
        [1, 1],
      ],
    );
    assert.equal(unitsSeen, 3);
    assert.equal(units.size, 1, 'one unit of work for the group');
    assert.equal((await log.head(a.id)).lastSeq, 2);
  });

  it("reads a console's head from the store in each unit: a console that moved to another node goes on where it was", async () => {
    const nodeA = new EventLog(store, clock, logger);
    const nodeB = new EventLog(other, clock, logger);
    const chain = new ConsoleChain('con_moving');
    assert.deepEqual((await nodeA.ingest(chain.id, [chain.next(now), chain.next(now)])).findings, []);
    // Node A has seen this console; it now sends to node B, then back to A.
    assert.deepEqual((await nodeB.ingest(chain.id, [chain.next(now)])).findings, []);
    const back = await nodeA.ingest(chain.id, [chain.next(now)]);
    assert.deepEqual(back.findings, []);
    assert.equal(back.upToSeq, 4);
    const report = await nodeB.verifyChain(chain.id);
    assert.equal(report.intact, true, JSON.stringify(report.problems));
  });

  it('keeps the gap, chain and idempotency checks with their codes', async () => {
    const log = new EventLog(store, clock, logger);
    const chain = new ConsoleChain('con_checks');
    const first = chain.next(now);
    await log.ingest(chain.id, [first]);
    // The same event again: idempotent, nothing stored, no finding.
    assert.deepEqual(await log.ingest(chain.id, [first]), { upToSeq: 1, inserted: 0, findings: [] });
    // seq 1 again with other content: a conflict.
    const conflict = await log.ingest(chain.id, [{ ...first, reasons: ['changed'] }]);
    assert.deepEqual(conflict.findings, [{ code: 'EVENT_SEQUENCE_CONFLICT', seq: 1 }]);
    chain.next(now); // seq 2 never sent
    const gap = await log.ingest(chain.id, [chain.next(now)]);
    assert.deepEqual(gap.findings, [{ code: 'EVENT_SEQUENCE_GAP', seq: 3 }]);
    const broken = await log.ingest(chain.id, [{ ...chain.next(now), prevHash: GENESIS_HASH }]);
    assert.deepEqual(broken.findings, [{ code: 'EVENT_CHAIN_BROKEN', seq: 4 }]);
  });

  it("keeps a console's time floor in the store: another node flags a backdated event as the first would have", async () => {
    const nodeA = new EventLog(store, clock, logger);
    const chain = new ConsoleChain('con_clock');
    await nodeA.ingest(chain.id, [chain.next(now)]);
    // Backdated against the first: flagged, and it does not lower the floor.
    const backdated = await nodeA.ingest(chain.id, [chain.next(now - 2 * EVENT_CLOCK_SKEW_MS)]);
    assert.deepEqual(backdated.findings, [{ code: 'EVENT_TIME_BACKDATED', seq: 2 }]);
    // A fresh node (or a restarted one) knows nothing of this console in memory: the floor comes
    // from the store, not from the flagged head event's time.
    const nodeB = new EventLog(other, clock, logger);
    const again = await nodeB.ingest(chain.id, [chain.next(now - 2 * EVENT_CLOCK_SKEW_MS)]);
    assert.deepEqual(again.findings, [{ code: 'EVENT_TIME_BACKDATED', seq: 3 }]);
    const fine = await nodeB.ingest(chain.id, [chain.next(now)]);
    assert.deepEqual(fine.findings, []);
  });

  it("runs ingest effects inside the batch's unit of work: a failing effect stores nothing of the batch", async () => {
    const log = new EventLog(store, clock, logger);
    const chain = new ConsoleChain('con_effects');
    await log.ingest(chain.id, [chain.next(now)]);
    const batch = [chain.next(now), chain.next(now)];
    await assert.rejects(
      log.ingest(chain.id, batch, (uow, event) => ({
        apply: async () => {
          await uow.store.meta.set('effect-test', String(event.seq));
          if (event.seq === 3) throw new Error('effect failed');
        },
      })),
      /effect failed/,
    );
    assert.equal((await log.head(chain.id)).lastSeq, 1);
    assert.equal(await store.meta.get('effect-test'), undefined);
    // Sent again, it is stored, and the effects' writes commit with it.
    const stored = await log.ingest(chain.id, batch, (uow, event) => ({
      apply: () => uow.store.meta.set('effect-test', String(event.seq)),
    }));
    assert.equal(stored.upToSeq, 3);
    assert.equal(await store.meta.get('effect-test'), '3');
  });

  it("stores nothing of a connection's batches after one of them failed (the database away for a moment): no gap, no events acknowledged past it", async () => {
    const flaky = flakyStore(store);
    const log = new EventLog(flaky.store, clock, logger);
    const chain = new ConsoleChain('con_stream_group');
    const connection = new IngestStream();
    const a = [chain.next(now), chain.next(now)];
    const b = [chain.next(now), chain.next(now)];
    // Both batches in one group commit: the group's unit fails, then A's own retry; the database is back for B's.
    flaky.refuse(2);
    const [ra, rb] = await Promise.allSettled([
      log.ingest(chain.id, a, undefined, connection),
      log.ingest(chain.id, b, undefined, connection),
    ]);
    assert.equal(codeOf(ra), 'DATABASE_UNREACHABLE');
    assert.equal(codeOf(rb), 'DATABASE_UNREACHABLE', 'B is refused as A was: the console sends both again');
    // What the next welcome reports as ackedSeq: nothing past events the backend does not hold.
    assert.equal((await log.head(chain.id)).lastSeq, 0);
    assert.deepEqual(await recordedGaps(log, chain.id), []);
    // The console's resend on its next connection is stored whole, with no finding.
    assert.deepEqual(await log.ingest(chain.id, [...a, ...b], undefined, new IngestStream()), {
      upToSeq: 4,
      inserted: 4,
      findings: [],
    });
    assert.deepEqual(await recordedGaps(log, chain.id), []);
    assert.equal((await log.verifyChain(chain.id)).intact, true);
  });

  it("refuses a connection's queued batches with the one that failed, in the same step, and any it sends after", async () => {
    const flaky = flakyStore(store);
    const log = new EventLog(flaky.store, clock, logger);
    const chain = new ConsoleChain('con_stream_queue');
    const bystander = new ConsoleChain('con_stream_bystander');
    const connection = new IngestStream();
    const a = [chain.next(now), chain.next(now)];
    const b = [chain.next(now), chain.next(now)];
    const c = [chain.next(now)];
    // A's unit is under way (alone in its group) when B arrives and waits in the queue, with another console's batch.
    const unit = flaky.hold();
    const ra = log.ingest(chain.id, a, undefined, connection);
    await unit.running;
    const rb = log.ingest(chain.id, b, undefined, connection);
    const other = log.ingest(bystander.id, [bystander.next(now)], undefined, new IngestStream());
    const settledB = Promise.allSettled([rb]);
    // A's unit fails; the database is back at once for whatever is committed next.
    unit.fail();
    const [failedA] = await Promise.allSettled([ra]);
    assert.equal(codeOf(failedA), 'DATABASE_UNREACHABLE');
    // Sent on the same connection after the failure (the socket not yet closed): refused too.
    const [failedC] = await Promise.allSettled([log.ingest(chain.id, c, undefined, connection)]);
    assert.equal(codeOf(failedC), 'DATABASE_UNREACHABLE');
    const [failedB] = await settledB;
    assert.equal(codeOf(failedB), 'DATABASE_UNREACHABLE');
    assert.equal((await other).upToSeq, 1, "another console's batch queued with B is stored");
    await log.drain();
    assert.equal((await log.head(chain.id)).lastSeq, 0);
    assert.deepEqual(await recordedGaps(log, chain.id), []);
    const resent = await log.ingest(chain.id, [...a, ...b, ...c], undefined, new IngestStream());
    assert.deepEqual(resent, { upToSeq: 5, inserted: 5, findings: [] });
    assert.equal((await log.verifyChain(chain.id)).intact, true);
  });

  it("refuses a connection's later batch with one whose effect fails (a permanent fault): it is not stored past it", async () => {
    const log = new EventLog(store, clock, logger);
    const chain = new ConsoleChain('con_stream_effect');
    const connection = new IngestStream();
    const a = [chain.next(now), chain.next(now)];
    const b = [chain.next(now)];
    const [ra, rb] = await Promise.allSettled([
      log.ingest(chain.id, a, () => ({ apply: () => Promise.reject(new Error('session update failed')) }), connection),
      log.ingest(chain.id, b, undefined, connection),
    ]);
    assert.equal(ra.status, 'rejected');
    assert.equal(rb.status === 'rejected' ? (rb.reason as Error).message : rb.status, 'session update failed');
    assert.equal((await log.head(chain.id)).lastSeq, 0);
    assert.deepEqual(await recordedGaps(log, chain.id), []);
  });

  it('refuses only the failing batch of a group', async () => {
    const log = new EventLog(store, clock, logger);
    const good = new ConsoleChain('con_good');
    const bad = new ConsoleChain('con_bad');
    const [okResult, failed] = await Promise.allSettled([
      log.ingest(good.id, [good.next(now)]),
      log.ingest(bad.id, [bad.next(now)], () => ({
        apply: () => Promise.reject(new Error('bad batch')),
      })),
    ]);
    assert.equal(okResult.status, 'fulfilled');
    assert.equal(failed.status, 'rejected');
    assert.equal((await log.head(good.id)).lastSeq, 1);
    assert.equal((await log.head(bad.id)).lastSeq, 0);
    await log.drain();
  });
}

/**
 * The store, with units of work refused as they are while the database is unreachable for a moment:
 * `refuse(n)` refuses the next n at once; `hold()` holds the next one until its `fail()` refuses it.
 */
function flakyStore(real: Store) {
  let refusals = 0;
  let held: { started: () => void; fail: Promise<void> } | undefined;
  const unreachable = () => new BatonError('DATABASE_UNREACHABLE', 'the database is unreachable');
  const store = new Proxy(real, {
    get(target, prop) {
      if (prop === 'transaction') {
        return async (fn: Parameters<Store['transaction']>[0]) => {
          const hold = held;
          held = undefined;
          if (hold !== undefined) {
            hold.started();
            await hold.fail;
            throw unreachable();
          }
          if (refusals > 0) {
            refusals--;
            throw unreachable();
          }
          return target.transaction(fn);
        };
      }
      const value: unknown = Reflect.get(target, prop, target);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
  return {
    store,
    refuse(n: number) {
      refusals = n;
    },
    hold() {
      let fail!: () => void;
      let started!: () => void;
      const running = new Promise<void>((resolve) => (started = resolve));
      held = { started, fail: new Promise<void>((resolve) => (fail = resolve)) };
      return { running, fail };
    },
  };
}

/** What the security team would be shown about a console's chain: the gaps the backend recorded. */
async function recordedGaps(log: EventLog, consoleId: string): Promise<StoredEvent[]> {
  return log.query({ origin: BACKEND_ORIGIN, console: consoleId, type: 'integrity-sequence-gap', limit: 10 });
}

const codeOf = (settled: PromiseSettledResult<unknown>): string | undefined =>
  settled.status === 'rejected' && settled.reason instanceof BatonError ? settled.reason.code : settled.status;

describe('EventLog live feed on a PostgreSQL cluster (two nodes, real buses)', { skip: pgSkip }, () => {
  let feedServer: PostgresServer;
  let stores: Store[] = [];
  let buses: PostgresBus[] = [];
  let logs: EventLog[] = [];

  before(async () => {
    feedServer = await startPostgres();
    const url = await createDatabase(feedServer.url, 'event_feed', { migrated: true });
    stores = [await openPostgresStore({ url }), await openPostgresStore({ url })];
    buses = [
      new PostgresBus({ nodeId: 'node-a', logger, connection: url }),
      new PostgresBus({ nodeId: 'node-b', logger, connection: url }),
    ];
    // A clock that moves with every call: what a follower gets must carry the receive time the store holds.
    let tick = Date.UTC(2026, 0, 1);
    const clock = () => ++tick;
    logs = stores.map((store, i) => new EventLog(store, clock, logger, buses[i]));
    await Promise.all(buses.map((bus) => bus.start()));
  });

  after(async () => {
    for (const log of logs) log.stopFeed();
    await Promise.allSettled(buses.map((bus) => bus.close()));
    await Promise.allSettled(stores.map((store) => store.close()));
    await feedServer?.stop();
  });

  it("hands each node's followers every committed event once, in cursor order, as the store holds it (own and the other node's)", async () => {
    const [a, b] = logs as [EventLog, EventLog];
    const seenA: StoredEvent[] = [];
    const seenB: StoredEvent[] = [];
    a.subscribe({}, (event) => seenA.push(event));
    b.subscribe({}, (event) => seenB.push(event));
    const start = Date.UTC(2026, 0, 1);
    const one = new ConsoleChain('con_feed_a');
    const two = new ConsoleChain('con_feed_b');
    await Promise.all([
      a.ingest(one.id, [one.next(start), one.next(start), one.next(start)]),
      b.ingest(two.id, [two.next(start), two.next(start)]),
      a.record(policyChanged(11)),
      b.atomically(async (uow) => {
        await uow.record(policyChanged(12));
      }),
      a.ingest(one.id, [one.next(start, { detail: { note: 'with "quotes" and \\ backslash' } })]),
    ]);
    const expected = 3 + 2 + 1 + 1 + 1;
    const deadline = Date.now() + 30_000;
    while ((seenA.length < expected || seenB.length < expected) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const stored = await a.query({ afterCursor: 0, limit: 100 });
    assert.equal(stored.length, expected);
    assert.deepEqual(seenA, stored, 'node A: its own events as stored, the other node’s read from the store');
    assert.deepEqual(seenB, stored, 'node B: the same');
    assert.equal((await a.verifyChain(one.id)).intact, true);
  });

  it("reads the other node's events only for a listener that is active, and hands an active one every event above where the feed stood", async () => {
    const [a, b] = logs as [EventLog, EventLog];
    let on = false;
    const seen: StoredEvent[] = [];
    const backendSeen: StoredEvent[] = [];
    const offAll = b.subscribe({}, (event) => seen.push(event), { active: () => on });
    const offBackend = b.subscribe({ origin: BACKEND_ORIGIN }, (event) => backendSeen.push(event));
    const passed = async (cursor: number) => {
      const deadline = Date.now() + 30_000;
      while ((b.liveFeedCursor ?? -1) < cursor && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      assert.ok((b.liveFeedCursor ?? -1) >= cursor, 'node B’s feed passed what node A committed');
    };
    try {
      const start = Date.UTC(2026, 0, 1);
      const chain = new ConsoleChain('con_feed_idle');
      await a.ingest(chain.id, [chain.next(start), chain.next(start)]);
      const fact = await a.record(policyChanged(21));
      await passed(fact.cursor);
      assert.deepEqual(seen, [], 'an inactive listener is not handed the other node’s events');
      assert.deepEqual(
        backendSeen.map((e) => e.cursor),
        [fact.cursor],
        'a listener of the backend origin still gets the backend’s facts, and no console event',
      );
      // Turned active: the feed stands at `bound`; every event above it reaches the listener, in order.
      on = true;
      const bound = b.liveFeedCursor ?? 0;
      await a.ingest(chain.id, [chain.next(start), chain.next(start), chain.next(start)]);
      const last = await a.record(policyChanged(22));
      await passed(last.cursor);
      const stored = await a.query({ afterCursor: bound, limit: 100 });
      assert.equal(stored.length, 4);
      assert.deepEqual(seen, stored);
      assert.equal((await a.verifyChain(chain.id)).intact, true);
    } finally {
      offAll();
      offBackend();
    }
  });
});

describe('eventCanonicalJson', () => {
  it('writes exactly what canonicalJson writes, for events of every shape and for anything else', () => {
    const base: AssuranceEvent = {
      id: randomUUID(),
      seq: 7,
      time: 1_767_225_600_000,
      type: 'session-switched',
      subject: { session: 'ses_1', operator: 'op_1', console: 'con_1' },
      outcome: 'success',
      reasons: ['operator-tapped-in', 'b', 'a'],
      prevHash: 'a'.repeat(64),
    };
    const assurance = { level: 'verified', aal: 2, acr: 'urn:x', amr: ['user', 'hwk'], authTime: 5 } as const;
    const cases: unknown[] = [
      base,
      { ...base, assurance },
      { ...base, detail: { z: 1, a: 'é "q" \\ \u2028', m: null, b: true } },
      { detail: { x: -0 }, assurance, ...base },
      { ...base, subject: {} },
      // Not of the schema's shape: the generic serialisation, still identical.
      { ...base, assurance: undefined },
      { ...base, extra: { b: 1, a: 2 } },
      { ...base, seq: '7' },
      Object.assign(Object.create({ id: 'inherited' }) as object, { ...base, id: undefined }),
      // Flat members take a path of their own: undefined dropped, keys sorted by code unit and escaped,
      // "__proto__" as a member, nested or non-plain values, non-string reasons.
      { ...base, detail: { b: undefined, é: 1, Z: 2, a: '\u0000', 'k"q': 3.5e-7 } },
      { ...base, detail: JSON.parse('{"__proto__":{"x":1},"a":1}') as unknown },
      { ...base, detail: JSON.parse('{"__proto__":"p","a":1}') as unknown },
      { ...base, detail: { nested: { b: 2, a: 1 }, list: [{ d: 1, c: 2 }] } },
      { ...base, detail: Object.assign(Object.create(null) as object, { b: 1, a: 2 }) },
      { ...base, detail: { at: new Date(5) } },
      { ...base, reasons: ['a', 1, null] },
      { ...base, subject: { operator: 'op_1', console: 'con_1', session: undefined } },
      // Arrays of strings as members (an assurance's amr) take the flat path; any other array does not.
      { ...base, detail: { list: ['b', 'a', 'é\u2028'], empty: [], z: 1 } },
      { ...base, detail: { mixed: ['a', 1, null], nested: [['a']], objects: [{ b: 1, a: 2 }] } },
      { ...base, detail: { holes: Object.assign(new Array<string>(3), { 1: 'a' }) } },
      // Members already in code-unit order are written by one JSON.stringify: the same bytes.
      { ...base, detail: { A: 1, a: ['x', 'é'], b: undefined, c: null, d: -0, e: 'q"\u2028', toJSON: 'x' } },
      { ...base, detail: { 1: 'one', 2: 'two', a: 3 } },
      { ...base, detail: { 10: 'ten', 9: 'nine' } },
      { ...base, detail: { a: 1, toJSON: () => 'x' } },
      { ...base, detail: { extra: Object.assign(['a'], { b: 'x' }) } },
    ];
    for (const value of cases) {
      assert.equal(eventCanonicalJson(value as AssuranceEvent), canonicalJson(value), JSON.stringify(value));
    }
    assert.throws(() => eventCanonicalJson({ ...base, time: Number.NaN }), /non-finite/);
    assert.throws(() => eventCanonicalJson({ ...base, detail: { n: Number.POSITIVE_INFINITY } }), /non-finite/);
  });
});

describe("backendEventProblem (the check of the backend's own events, in place of parsing them with zod)", () => {
  const good: AssuranceEvent = {
    id: randomUUID(),
    seq: 3,
    time: 1_767_225_600_000,
    type: 'action-token-issued',
    subject: { console: 'con_1', operator: 'op_1', session: 'ses_1', service: 'svc.1', credential: 'AbC-_9' },
    assurance: { level: 'verified', aal: 2, acr: 'urn:x', amr: ['user', 'hwk'], authTime: 0 },
    outcome: 'success',
    reasons: ['a', 'b.c_d-9'],
    detail: { action: 'x'.repeat(500), n: -1.5, t: true, z: null, K_9: 0 },
    prevHash: 'f'.repeat(64),
  };
  const withMember = (key: string, value: unknown): unknown => ({ ...good, [key]: value });
  const subject = (value: Record<string, unknown>): unknown => withMember('subject', { ...good.subject, ...value });
  const assurance = (value: Record<string, unknown>): unknown =>
    withMember('assurance', { ...good.assurance, ...value });
  const detail = (value: Record<string, unknown>): unknown => withMember('detail', { ...good.detail, ...value });

  it('accepts what the schema accepts, of every member', () => {
    const { assurance: _a, detail: _d, ...bare } = good;
    const cases: unknown[] = [
      good,
      bare,
      { ...good, subject: {}, reasons: [], detail: {} },
      withMember('assurance', undefined),
      withMember('id', '00000000-0000-0000-0000-000000000000'),
      withMember('time', 0),
      withMember('seq', Number.MAX_SAFE_INTEGER),
      withMember(
        'reasons',
        Array.from({ length: 16 }, (_, i) => `r${i}`),
      ),
      assurance({ aal: 1, amr: [], acr: '' }),
      assurance({ aal: 3, level: 'hardware', amr: Array.from({ length: 10 }, () => 'x'.repeat(20)) }),
      subject({ operator: undefined }),
      detail({ ['A'.repeat(40)]: 'v' }),
      withMember('detail', Object.assign(Object.create(null) as object, { a: 1 })),
    ];
    for (const value of cases) {
      assert.equal(AssuranceEventSchema.safeParse(value).success, true, JSON.stringify(value));
      assert.equal(backendEventProblem(value), undefined, JSON.stringify(value));
    }
  });

  it('refuses every malformed form the schema refuses (and a few non-plain objects besides)', () => {
    const schemaRefuses: unknown[] = [
      null,
      [],
      'event',
      withMember('extra', 1),
      withMember('id', undefined),
      withMember('id', 'not-a-uuid'),
      withMember('id', '123e4567-e89b-02d3-a456-426614174000'),
      withMember('id', 5),
      withMember('seq', 0),
      withMember('seq', 1.5),
      withMember('seq', '3'),
      withMember('seq', Number.MAX_SAFE_INTEGER + 1),
      withMember('seq', Number.NaN),
      withMember('time', -1),
      withMember('time', Number.POSITIVE_INFINITY),
      withMember('time', undefined),
      withMember('type', 'made-up'),
      withMember('type', 'toString'),
      withMember('outcome', 'maybe'),
      withMember('outcome', undefined),
      withMember('prevHash', 'F'.repeat(64)),
      withMember('prevHash', 'f'.repeat(63)),
      withMember('prevHash', undefined),
      withMember('subject', undefined),
      withMember('subject', null),
      withMember('subject', []),
      subject({ operator: '' }),
      subject({ console: 'a b' }),
      subject({ session: 'x'.repeat(129) }),
      subject({ service: 7 }),
      subject({ credential: 'a.b' }),
      subject({ credential: 'x'.repeat(1025) }),
      subject({ other: 'x' }),
      withMember('assurance', null),
      withMember('assurance', []),
      assurance({ level: 'root' }),
      assurance({ aal: 0 }),
      assurance({ aal: 4 }),
      assurance({ aal: 2.5 }),
      assurance({ acr: 'x'.repeat(101) }),
      assurance({ acr: 1 }),
      assurance({ amr: 'user' }),
      assurance({ amr: Array.from({ length: 11 }, () => 'x') }),
      assurance({ amr: ['x'.repeat(21)] }),
      assurance({ amr: [1] }),
      assurance({ authTime: -1 }),
      assurance({ authTime: undefined }),
      assurance({ extra: 1 }),
      withMember('reasons', undefined),
      withMember('reasons', 'a'),
      withMember(
        'reasons',
        Array.from({ length: 17 }, (_, i) => `r${i}`),
      ),
      withMember('reasons', ['Upper']),
      withMember('reasons', ['-lead']),
      withMember('reasons', ['x'.repeat(65)]),
      withMember('reasons', [1]),
      withMember('detail', null),
      withMember('detail', []),
      withMember('detail', 'x'),
      detail({ action: 'x'.repeat(501) }),
      detail({ n: Number.NaN }),
      detail({ n: Number.NEGATIVE_INFINITY }),
      detail({ o: { a: 1 } }),
      detail({ l: ['a'] }),
      detail({ u: undefined }),
      detail({ '9lead': 1 }),
      detail({ 'with space': 1 }),
      detail({ ['A'.repeat(41)]: 1 }),
      withMember('detail', { [Symbol('s')]: 1 }),
    ];
    for (const value of schemaRefuses) {
      const label = `case ${schemaRefuses.indexOf(value)}: ${String(JSON.stringify(value)).slice(-160)}`;
      assert.equal(AssuranceEventSchema.safeParse(value).success, false, label);
      assert.notEqual(backendEventProblem(value), undefined, label);
    }
    // Stricter than the schema where a plain object is all the backend builds: a class instance, and
    // an own "__proto__" member (zod skips it; canonical JSON would write it).
    assert.notEqual(backendEventProblem(withMember('detail', JSON.parse('{"__proto__":"p"}'))), undefined);
    class Detail {
      a = 1;
    }
    assert.notEqual(backendEventProblem(withMember('detail', new Detail())), undefined);
    assert.notEqual(backendEventProblem(Object.assign(new (class Event {})(), good)), undefined);
  });

  it("keeps a malformed event of the backend's own out of the chain", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'baton-event-check-'));
    const local = openSqliteStore({ dataDir: dir, durability: 'normal' });
    try {
      const log = new EventLog(local, () => 1_767_225_600_000, logger);
      await assert.rejects(
        log.record({ ...policyChanged(1), reasons: ['Not A Reason'] }),
        /backend event policy-changed fails its schema/,
      );
      await assert.rejects(
        log.record({ ...policyChanged(1), detail: { nested: { a: 1 } } as unknown as Record<string, string> }),
        /fails its schema/,
      );
      assert.equal((await log.head(BACKEND_ORIGIN)).lastSeq, 0);
      const stored = await log.record(policyChanged(1));
      assert.equal(stored.seq, 1);
    } finally {
      await local.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
