import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { openPostgresStore } from '../store/postgres-store.js';
import { createDatabase, postgresSkip, startPostgres, type PostgresServer } from '../store/postgres-throwaway.js';
import type { CommandRecord, Store } from '../store/repositories.js';
import { InProcessBus, PostgresBus } from './bus.js';
import { wireConsoleCommands, wireServicePushes } from './pushes.js';
import { nextResync, nextStatus } from './test-kit.js';

const logger = pino({ level: 'silent' });
const tick = () => new Promise((resolve) => setImmediate(resolve));

function services() {
  const calls = {
    pointers: [] as { epoch: number; local: boolean }[],
    resync: 0,
    policyRefresh: 0,
    authenticatorRefresh: 0,
  };
  return {
    calls,
    revocations: {
      onPointer: (epoch: number, local: boolean) => {
        calls.pointers.push({ epoch, local });
        return Promise.resolve();
      },
      resync: () => {
        calls.resync++;
        return Promise.resolve();
      },
    },
    policies: {
      version: { version: 3 },
      refresh: () => {
        calls.policyRefresh++;
        return Promise.resolve();
      },
    },
    authenticators: {
      refresh: () => {
        calls.authenticatorRefresh++;
        return Promise.resolve();
      },
    },
  };
}

describe('cluster pushes (in-process bus)', () => {
  it('hands every revocation pointer to the hub, and refreshes policy and metadata only for other nodes', async () => {
    const bus = new InProcessBus({ nodeId: 'node-a', logger });
    const s = services();
    wireServicePushes({ bus, ...s });
    await bus.start();
    assert.equal(s.calls.resync, 1, 'the first resync fixes the revocation watermark');
    await bus.publish('revocation', { epoch: 7 });
    // This node's own policy and metadata pointers: it advanced already (no second push).
    await bus.publish('policy', { version: 4 });
    await bus.publish('authenticators', {});
    await tick();
    assert.deepEqual(s.calls.pointers, [{ epoch: 7, local: true }]);
    assert.equal(s.calls.policyRefresh, 1, 'only the resync refreshed');
    assert.equal(s.calls.authenticatorRefresh, 1, 'only the resync refreshed');
    // Another node's pointers (as PostgreSQL would deliver them).
    bus.injectRaw(JSON.stringify({ v: 1, t: 'policy', p: { version: 4 }, o: 'node-b' }));
    bus.injectRaw(JSON.stringify({ v: 1, t: 'policy', p: { version: 2 }, o: 'node-b' }));
    bus.injectRaw(JSON.stringify({ v: 1, t: 'authenticators', p: {}, o: 'node-b' }));
    bus.injectRaw(JSON.stringify({ v: 1, t: 'revocation', p: { epoch: 8 }, o: 'node-b' }));
    await tick();
    assert.deepEqual(s.calls.pointers.at(-1), { epoch: 8, local: false });
    assert.equal(s.calls.policyRefresh, 2, 'a newer version refreshes, an older one does not');
    assert.equal(s.calls.authenticatorRefresh, 2);
    await bus.close();
  });

  it('sends an announced command from the node holding its console, never twice from the announcing node', async () => {
    const bus = new InProcessBus({ nodeId: 'node-a', logger });
    const command: CommandRecord = { id: 'cmd_1', consoleId: 'con_1', sessionId: 'ses_1', reason: 'r', createdAt: 1 };
    const sent: string[] = [];
    wireConsoleCommands({
      bus,
      logger,
      commands: {
        pending: (consoleId) => Promise.resolve(consoleId === 'con_1' ? [command] : []),
        pendingAll: () => Promise.resolve([command]),
      },
      consoles: {
        connectedConsoleIds: () => ['con_1'],
        isConnected: (id) => id === 'con_1',
        sendCommand: (c) => {
          sent.push(c.id);
          return true;
        },
      },
    });
    await bus.start();
    await bus.publish('command', { consoleId: command.consoleId, id: command.id }); // as the storing unit does
    await tick();
    assert.deepEqual(sent, [], 'the publishing node sent it itself (ConsoleConnections.deliver)');
    bus.injectRaw(JSON.stringify({ v: 1, t: 'command', p: { consoleId: 'con_1', id: 'cmd_1' }, o: 'node-b' }));
    bus.injectRaw(JSON.stringify({ v: 1, t: 'command', p: { consoleId: 'con_2', id: 'cmd_2' }, o: 'node-b' }));
    await tick();
    await tick();
    assert.deepEqual(sent, ['cmd_1'], 'only the console connected here');
    await bus.close();
  });
});

describe('command catch-up after a reconnect, on PostgreSQL', { skip: postgresSkip() }, () => {
  let server: PostgresServer;
  let url: string;
  let store: Store;
  before(async () => {
    server = await startPostgres();
    url = await createDatabase(server.url, 'pushes_test', { migrated: true });
    store = await openPostgresStore({ url, poolSize: 2 });
  });
  after(async () => {
    await store?.close();
    await server?.stop();
  });

  it('reads the pending commands of every console connected here in one query, and sends each to its console', async () => {
    const connected = Array.from({ length: 50 }, (_, i) => `con_here_${i}`);
    const at = 1_700_000_000_000;
    for (const [i, consoleId] of connected.entries()) {
      await store.commands.insert({ id: `cmd_${i}`, consoleId, sessionId: `ses_${i}`, reason: 'r', createdAt: at + i });
    }
    await store.commands.insert({
      id: 'cmd_elsewhere',
      consoleId: 'con_other_node',
      sessionId: 's',
      reason: 'r',
      createdAt: at,
    });
    await store.commands.insert({
      id: 'cmd_acked',
      consoleId: 'con_here_0',
      sessionId: 's',
      reason: 'r',
      createdAt: at,
    });
    await store.commands.acknowledge('con_here_0', 'cmd_acked', at + 1);
    const reads = { perConsole: 0, all: 0 };
    const counted = {
      pending: (consoleId: string) => {
        reads.perConsole++;
        return store.commands.pending(consoleId);
      },
      pendingAll: () => {
        reads.all++;
        return store.commands.pendingAll();
      },
    };
    const sent: string[] = [];
    const bus = new PostgresBus({ nodeId: 'node-c', logger, connection: url, reconnect: { initialMs: 10, maxMs: 50 } });
    const off = wireConsoleCommands({
      bus,
      logger,
      commands: counted,
      consoles: {
        connectedConsoleIds: () => connected,
        isConnected: (id) => connected.includes(id),
        sendCommand: (c) => {
          sent.push(c.id);
          return true;
        },
      },
    });
    try {
      await bus.start();
      assert.deepEqual(sent, [], 'nothing at the first connect: consoles read their commands in their hello');
      const resynced = nextResync(bus);
      bus.recycle('test: notifications may have been missed');
      assert.equal((await resynced).reason, 'reconnected');
      // Connected again only once every resync handler finished.
      await nextStatus(bus, true);
      assert.deepEqual(
        sent.sort(),
        connected.map((_, i) => `cmd_${i}`).sort(),
        'every pending command of the consoles connected here, once; none of other consoles, none acknowledged',
      );
      assert.deepEqual(reads, { perConsole: 0, all: 1 }, 'one query for all of them');
    } finally {
      off();
      await bus.close();
    }
  });
});
