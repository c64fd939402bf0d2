import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { BatonError } from '../../shared/errors.js';
import { createDatabase, postgresSkip, startPostgres, type PostgresServer } from '../store/postgres-throwaway.js';
import { InProcessBus, PostgresBus } from './bus.js';
import {
  FreshnessMonitor,
  MAX_CLOCK_SKEW_MS,
  STALE_CAUSE_TEXT,
  STALE_NODE_REASON,
  type FreshnessState,
} from './freshness.js';
import {
  CLUSTER_NODES_DDL_POSTGRES,
  MemoryNodeRegistry,
  nodeView,
  PostgresNodeRegistry,
  thisNode,
  type NodeRecord,
} from './nodes.js';
import { memoryLogger, nextStatus } from './test-kit.js';

/** A clock the test moves by hand: the bound is crossed by assignment, never by sleeping. */
function manualClock(start = 1_700_000_000_000) {
  const clock = { now: start, read: () => clock.now };
  return clock;
}

function nextChange(monitor: FreshnessMonitor, stale: boolean, timeoutMs = 20_000): Promise<FreshnessState> {
  if (monitor.state().stale === stale) return Promise.resolve(monitor.state());
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`freshness did not become stale=${stale}`)), timeoutMs);
    const off = monitor.onChange((state) => {
      if (state.stale !== stale) return;
      clearTimeout(timer);
      off();
      resolve(state);
    });
  });
}

describe('FreshnessMonitor on the in-process bus', () => {
  it('is fresh while pings come back, and proceeds with no reasons', async () => {
    const { logger } = memoryLogger();
    const clock = manualClock();
    const bus = new InProcessBus({ nodeId: 'embedded', logger, clock: clock.read });
    await bus.start();
    const monitor = new FreshnessMonitor({ bus, logger, boundMs: 10_000, clock: clock.read });
    const state = await monitor.check();
    assert.equal(state.stale, false);
    assert.equal(state.lastConfirmedAt, clock.now);
    clock.now += 60_000;
    assert.equal((await monitor.check()).stale, false, 'a confirmation resets the bound');
    assert.deepEqual(monitor.decide('strict'), { proceed: true, reasons: [] });
    await monitor.stop();
    await bus.close();
  });

  it('is stale once the bound passes with no confirmation: strict refuses NODE_STALE, best-effort proceeds and says so', async () => {
    const { logger } = memoryLogger();
    const clock = manualClock();
    const bus = new InProcessBus({ nodeId: 'embedded', logger, clock: clock.read });
    await bus.start();
    const monitor = new FreshnessMonitor({ bus, logger, boundMs: 10_000, clock: clock.read });
    await monitor.check();
    const confirmedAt = clock.now;
    await bus.close(); // the bus is gone: nothing can be confirmed any more
    clock.now += 10_000;
    assert.equal(monitor.state().stale, false, 'not stale at the bound itself');
    clock.now += 1;
    const state = await monitor.check();
    assert.equal(state.stale, true);
    assert.equal(state.since, confirmedAt + 10_000);
    assert.equal(state.cause, 'bus-disconnected');
    assert.equal(state.lastConfirmedAt, confirmedAt);
    assert.match(state.reason ?? '', /no confirmation of the cluster view/);

    const strict = monitor.decide('strict');
    assert.ok('refuse' in strict);
    assert.ok(strict.refuse instanceof BatonError);
    assert.equal(strict.refuse.code, 'NODE_STALE');
    assert.equal(strict.refuse.status, 503);

    const best = monitor.decide('best-effort');
    assert.ok('proceed' in best);
    assert.deepEqual(best.reasons, [STALE_NODE_REASON]);
    assert.match(STALE_NODE_REASON, /^[a-z0-9][a-z0-9._-]{0,63}$/, 'a valid event reason');
    assert.equal(best.stale?.stale, true);
    await monitor.stop();
  });

  it('counts a node that never confirmed as stale after the bound from its start', () => {
    const { logger } = memoryLogger();
    const clock = manualClock();
    const bus = new InProcessBus({ nodeId: 'embedded', logger, clock: clock.read });
    const monitor = new FreshnessMonitor({ bus, logger, boundMs: 5_000, clock: clock.read });
    assert.equal(monitor.state().stale, false);
    clock.now += 5_001;
    const state = monitor.state();
    assert.equal(state.stale, true);
    assert.equal(state.lastConfirmedAt, undefined);
    assert.ok(state.cause === 'not-confirmed' || state.cause === 'bus-disconnected');
  });

  it('runs its heartbeat on a timer and beats its row into the registry', async () => {
    const { logger } = memoryLogger();
    const bus = new InProcessBus({ nodeId: 'embedded', logger });
    await bus.start();
    const nodes = new MemoryNodeRegistry();
    const node = thisNode('embedded', Date.now());
    const monitor = new FreshnessMonitor({ bus, logger, boundMs: 3_000, intervalMs: 5, registry: { nodes, node } });
    const beats: number[] = [];
    const original = nodes.beat.bind(nodes);
    const twoBeats = new Promise<void>((resolve) => {
      nodes.beat = async (record: NodeRecord) => {
        const databaseNow = await original(record);
        beats.push(record.lastBeat);
        if (beats.length === 2) resolve();
        return databaseNow;
      };
    });
    monitor.start();
    // The monitor's timer is unref'd (it never holds a process open): keep this test's event loop alive while it
    // waits, or node --test may find the loop empty between two beats and cancel the file.
    const alive = setInterval(() => undefined, 1_000);
    try {
      await twoBeats;
    } finally {
      clearInterval(alive);
    }
    const [row] = await nodes.list();
    assert.equal(row?.nodeId, 'embedded');
    assert.equal(row?.pid, process.pid);
    assert.equal(row?.stale, false);
    await monitor.stop();
    assert.deepEqual(await nodes.list(), [], 'a clean stop removes the row');
    await bus.close();
  });
});

describe('nodeView', () => {
  const row: NodeRecord = {
    nodeId: 'n1',
    host: 'h',
    pid: 1,
    startedAt: 0,
    lastBeat: 1_000,
    stale: false,
    staleSince: null,
    staleReason: null,
  };
  it('shows a node live, stale by its own word, or silent when its beats stopped', () => {
    assert.equal(nodeView(row, 2_000, 5_000).state, 'live');
    assert.equal(nodeView({ ...row, stale: true }, 2_000, 5_000).state, 'stale');
    const silent = nodeView(row, 7_000, 5_000);
    assert.equal(silent.state, 'silent');
    assert.equal(silent.silentMs, 6_000);
  });
});

const skip = postgresSkip();
describe('FreshnessMonitor and the nodes registry on PostgreSQL', { skip }, () => {
  let server: PostgresServer;
  let url: string;
  let pool: pg.Pool;
  const { logger, records } = memoryLogger();

  before(async () => {
    server = await startPostgres();
    url = await createDatabase(server.url, 'freshness_test');
    pool = new pg.Pool({ connectionString: url, max: 2 });
    pool.on('error', () => undefined);
    // The lead adds this DDL to the migrations; the test creates it itself.
    await pool.query(CLUSTER_NODES_DDL_POSTGRES);
  });

  after(async () => {
    await pool?.end().catch(() => undefined);
    await server?.stop();
  });

  it('the registry upserts, lists, prunes and removes rows', async () => {
    const registry = new PostgresNodeRegistry(pool);
    const base: NodeRecord = {
      nodeId: 'reg-1',
      host: 'host-1',
      pid: 11,
      startedAt: 1_700_000_000_000,
      lastBeat: 1_700_000_000_500,
      stale: false,
      staleSince: null,
      staleReason: null,
    };
    await registry.beat(base);
    await registry.beat({ ...base, lastBeat: base.lastBeat + 1_000, stale: true, staleSince: 5, staleReason: 'why' });
    await registry.beat({ ...base, nodeId: 'reg-2', startedAt: base.startedAt + 1, lastBeat: 10 });
    const rows = await registry.list();
    assert.deepEqual(
      rows.map((r) => r.nodeId),
      ['reg-1', 'reg-2'],
    );
    assert.deepEqual(rows[0], {
      ...base,
      lastBeat: base.lastBeat + 1_000,
      stale: true,
      staleSince: 5,
      staleReason: 'why',
    });
    assert.equal(typeof rows[0]?.startedAt, 'number');
    assert.equal(await registry.prune(1_000), 1);
    await registry.remove('reg-1');
    assert.deepEqual(await registry.list(), []);
  });

  it('goes stale past the bound while PostgreSQL is down, and fresh again once it is back', async () => {
    const clock = manualClock(Date.now());
    const bus = new PostgresBus({
      nodeId: 'node-f',
      logger,
      connection: url,
      clock: clock.read,
      reconnect: { initialMs: 20, maxMs: 200 },
      connectTimeoutMs: 1_000,
    });
    await bus.start();
    const registry = new PostgresNodeRegistry(pool);
    const node = thisNode('node-f', clock.now);
    const monitor = new FreshnessMonitor({
      bus,
      logger,
      boundMs: 5_000,
      pingTimeoutMs: 1_000,
      clock: clock.read,
      registry: { nodes: registry, node },
    });
    try {
      const fresh = await monitor.check();
      assert.equal(fresh.stale, false);
      const confirmedAt = clock.now;
      let [row] = await registry.list();
      assert.equal(row?.nodeId, 'node-f');
      assert.equal(row?.stale, false);
      assert.equal(row?.lastBeat, confirmedAt);

      const lost = nextStatus(bus, false);
      await server.kill();
      await lost;
      clock.now += 4_000;
      assert.equal((await monitor.check()).stale, false, 'within the bound: still fresh');
      clock.now += 2_000;
      const becameStale = nextChange(monitor, true);
      const stale = await monitor.check();
      assert.equal(stale.stale, true);
      assert.equal(stale.cause, 'bus-disconnected');
      assert.equal(stale.since, confirmedAt + 5_000);
      await becameStale;
      const refused = monitor.decide('strict');
      assert.ok('refuse' in refused);
      // What the node shows (the NODE_STALE message, /healthz, the registry row) is its own plain words;
      // the driver's text (it names the host and port it could not reach) stays in the log.
      const driverSaid = bus.status().lastError ?? '';
      assert.ok(driverSaid.length > 0, 'the bus recorded why it lost its connection');
      for (const shown of [refused.refuse.message, stale.reason ?? '']) {
        assert.ok(!shown.includes(driverSaid), `no driver text in: ${shown}`);
        assert.doesNotMatch(shown, /ECONNREFUSED|terminat|127\.0\.0\.1|:\d{4,5}\b/, shown);
        assert.ok(shown.includes(STALE_CAUSE_TEXT['bus-disconnected']), shown);
      }
      const logged = records.find((r) => r.msg === 'freshness: this node is stale' && r.node === 'node-f');
      assert.ok(typeof logged?.detail === 'string' && logged.detail.length > 0, 'the detail is logged');

      // Back: the bus reconnects and resyncs by itself, the monitor confirms at once.
      const fresher = nextChange(monitor, false);
      await server.restart();
      const back = await fresher;
      assert.equal(back.stale, false);
      assert.ok((back.lastConfirmedAt ?? 0) >= confirmedAt + 6_000);
      assert.deepEqual(monitor.decide('strict'), { proceed: true, reasons: [] });
      [row] = await registry.list();
      assert.equal(row?.stale, false);
      assert.ok(records.some((r) => r.msg === 'freshness: this node is fresh again'));
    } finally {
      await monitor.stop();
      await bus.close();
    }
    assert.deepEqual(await registry.list(), [], 'a clean stop removes the row');
  });

  it("is stale while its clock is further than the bound from the database's (CLOCK_SKEW), fresh once it is back", async () => {
    const bus = new PostgresBus({ nodeId: 'node-s', logger, connection: url });
    await bus.start();
    const registry = new PostgresNodeRegistry(pool);
    /** How far this node's wall clock is off (ms): the database's clock is the real one. */
    let offsetMs = -(MAX_CLOCK_SKEW_MS + 60_000);
    const monitor = new FreshnessMonitor({
      bus,
      logger,
      boundMs: 5_000,
      wallClock: () => Date.now() + offsetMs,
      registry: { nodes: registry, node: thisNode('node-s', Date.now()) },
    });
    try {
      const behind = await monitor.check();
      assert.equal(behind.stale, true, 'pings come back, but its clock is 90 s behind');
      assert.equal(behind.cause, 'clock-skew');
      assert.match(behind.reason ?? '', /clock disagrees with the database's: 9\d s behind \(bound 30 s\)/);
      const refused = monitor.decide('strict');
      assert.ok('refuse' in refused && refused.refuse.code === 'NODE_STALE');
      assert.ok(records.some((r) => r.code === 'CLOCK_SKEW' && r.node === 'node-s' && (r.skewMs as number) > 80_000));
      // The admin console's node list shows it stale, with the reason (the row is written at the next beat).
      await monitor.check();
      const row = (await registry.list()).find((r) => r.nodeId === 'node-s');
      assert.equal(row?.stale, true);
      assert.match(row?.staleReason ?? '', /clock/);

      offsetMs = MAX_CLOCK_SKEW_MS + 5_000;
      const ahead = await monitor.check();
      assert.equal(ahead.cause, 'clock-skew');
      assert.match(ahead.reason ?? '', /3\d s ahead/);

      offsetMs = 1_000; // within the bound: NTP fixed it
      assert.equal((await monitor.check()).stale, false);
      assert.ok(!('refuse' in monitor.decide('strict')));
    } finally {
      await monitor.stop();
      await bus.close();
    }
  });

  it('a ping that does not come back while the bus believes it listens recycles the listening connection', async () => {
    const clock = manualClock(Date.now());
    const bus = new PostgresBus({ nodeId: 'node-h', logger, connection: url, clock: clock.read });
    await bus.start();
    // Stop listening behind the bus's back (as a lost LISTEN or a half-open connection would).
    const listening = (bus as unknown as { client: pg.Client }).client;
    await listening.query(`UNLISTEN ${bus.channel}`);
    const monitor = new FreshnessMonitor({ bus, logger, boundMs: 5_000, pingTimeoutMs: 200, clock: clock.read });
    const reconnected = new Promise<void>((resolve) => {
      const off = bus.onResync((info) => {
        if (info.reason !== 'reconnected') return;
        off();
        resolve();
      });
    });
    try {
      const state = await monitor.check();
      assert.equal(state.stale, false, 'one missed ping is not staleness');
      await reconnected;
      await nextStatus(bus, true);
      assert.ok((await bus.ping(5_000)) >= 0, 'listening again');
      assert.ok(records.some((r) => r.msg === 'cluster bus: recycling the listening connection'));
    } finally {
      await monitor.stop();
      await bus.close();
    }
  });
});
