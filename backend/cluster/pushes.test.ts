import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import type { AuthenticatorModelView } from '../../shared/authenticator-metadata.js';
import { DEFAULT_POLICY } from '../../shared/policy.js';
import { AuthenticatorMetadata } from '../services/authenticator-metadata.js';
import { openPostgresStore } from '../store/postgres-store.js';
import { createDatabase, postgresSkip, startPostgres, type PostgresServer } from '../store/postgres-throwaway.js';
import type { CommandRecord, Store } from '../store/repositories.js';
import { InProcessBus, PostgresBus } from './bus.js';
import { wireConsoleCommands, wireServicePushes } from './pushes.js';
import { memoryLogger, nextResync, nextStatus } from './test-kit.js';

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

const MODEL_X = '0132d110-bf4e-4208-a403-ab4f5f12efe5';
const modelX = (status: string): AuthenticatorModelView => ({
  aaguid: MODEL_X,
  model: 'Model X',
  certification: 'L1',
  status,
  statusReports: [{ status, effectiveDate: '2026-12-01', authenticatorVersion: null, url: null }],
  timeOfLastStatusChange: '2026-12-01',
  blobNo: 2,
});

/**
 * A node's authenticator models (the real AuthenticatorMetadata) over a store holding `stored`, whose
 * next read can be made to fail (no pooled connection free in time). `signIn` is what a sign-in with a
 * key of model X meets on that node: the refusal's code, or `allowed`.
 */
async function modelsOnNode() {
  const stored = { models: [modelX('FIDO_CERTIFIED_L1')] };
  let failNext = false;
  const list = () => {
    if (!failNext) return Promise.resolve(stored.models);
    failNext = false;
    return Promise.reject(new Error('timeout exceeded when trying to connect'));
  };
  const metadata = await AuthenticatorMetadata.open({
    store: { authenticatorModels: { list } } as unknown as Store,
    events: undefined as never,
    clock: Date.now,
    trustAnchors: [],
  });
  return {
    metadata,
    stored,
    failNextRead: () => void (failNext = true),
    signIn: () => metadata.refusal(MODEL_X, true, DEFAULT_POLICY.credentials)?.code ?? 'allowed',
  };
}

/** This node's console connections: `con_1` alone is connected; what it is sent goes to `sent`. */
function onlyCon1(sent: string[]) {
  return {
    connectedConsoleIds: () => ['con_1'],
    isConnected: (id: string) => id === 'con_1',
    sendCommand: (command: CommandRecord) => {
      sent.push(command.id);
      return true;
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

  it('retries a reload of the authenticator models that failed: not connected meanwhile, then the compromised model is refused', async () => {
    const { logger: busLogger, records } = memoryLogger();
    const bus = new InProcessBus({ nodeId: 'node-b', logger: busLogger, reconnect: { initialMs: 2, maxMs: 4 } });
    const models = await modelsOnNode();
    wireServicePushes({ bus, ...services(), authenticators: models.metadata, logger: busLogger });
    await bus.start();
    assert.equal(models.signIn(), 'allowed');
    // Another node loaded a BLOB that marks model X compromised; this node's read of it fails once.
    models.stored.models = [modelX('USER_KEY_PHYSICAL_COMPROMISE')];
    models.failNextRead();
    const lost = nextStatus(bus, false);
    bus.injectRaw(JSON.stringify({ v: 1, t: 'authenticators', p: {}, o: 'bus-of-node-a', n: 'node-a' }));
    await lost;
    assert.equal(models.signIn(), 'allowed', 'still the old models: the node says it is not connected');
    assert.ok(records.some((r) => r.code === 'AUTHENTICATOR_RELOAD_FAILED'));
    await nextStatus(bus, true);
    assert.equal(models.signIn(), 'AUTHENTICATOR_COMPROMISED', 'read again: model X is refused');
    await bus.close();
  });

  it('reads again a newer policy it failed to read: not connected meanwhile, then serving the new version', async () => {
    const { logger: busLogger, records } = memoryLogger();
    const bus = new InProcessBus({ nodeId: 'node-b', logger: busLogger, reconnect: { initialMs: 2, maxMs: 4 } });
    const stored = { version: 3 };
    let failNext = false;
    const policies = {
      version: { version: 3 },
      refresh() {
        if (failNext) {
          failNext = false;
          return Promise.reject(new Error('timeout exceeded when trying to connect'));
        }
        this.version.version = stored.version;
        return Promise.resolve();
      },
    };
    wireServicePushes({ bus, ...services(), policies, logger: busLogger });
    await bus.start();
    // Another node published version 4; this node's read of it fails once.
    stored.version = 4;
    failNext = true;
    const lost = nextStatus(bus, false);
    bus.injectRaw(JSON.stringify({ v: 1, t: 'policy', p: { version: 4 }, o: 'bus-of-node-a', n: 'node-a' }));
    await lost; // not connected: stale after its bound, unless the resync reads the policy first
    assert.ok(records.some((r) => r.code === 'POLICY_RELOAD_FAILED' && r.version === 4));
    await nextStatus(bus, true);
    assert.equal(policies.version.version, 4, 'read again by the resync');
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
        pendingFor: (ids) => Promise.resolve(new Map(ids.includes('con_1') ? [['con_1', [command]]] : [])),
      },
      consoles: onlyCon1(sent),
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

describe('command catch-up that fails (in-process bus)', () => {
  it('resends the pending commands once a read failed in a resync: not connected until it succeeds', async () => {
    const bus = new InProcessBus({ nodeId: 'node-a', logger, reconnect: { initialMs: 2, maxMs: 4 } });
    const command: CommandRecord = { id: 'cmd_1', consoleId: 'con_1', sessionId: 'ses_1', reason: 'r', createdAt: 1 };
    let failNext = false;
    const sent: string[] = [];
    wireConsoleCommands({
      bus,
      logger,
      commands: {
        pending: () => Promise.resolve([command]),
        pendingFor: () => {
          if (!failNext) return Promise.resolve(new Map([['con_1', [command]]]));
          failNext = false;
          return Promise.reject(new Error('timeout exceeded when trying to connect'));
        },
      },
      consoles: onlyCon1(sent),
    });
    await bus.start();
    failNext = true;
    const lost = nextStatus(bus, false);
    bus.recycle('test: notifications may have been missed');
    await lost;
    await nextStatus(bus, true);
    assert.deepEqual(sent, ['cmd_1'], 'the end-session command reached its console after all');
    await bus.close();
  });
});

describe('authenticator models across nodes, on PostgreSQL', { skip: postgresSkip() }, () => {
  let server: PostgresServer;
  let url: string;
  before(async () => {
    server = await startPostgres();
    url = await createDatabase(server.url, 'pushes_authn_test');
  });
  after(async () => {
    await server?.stop();
  });

  it("retries a reload that failed after another node's BLOB: not connected meanwhile, then the compromised model is refused", async () => {
    const { logger: busLogger, records } = memoryLogger();
    const reconnect = { initialMs: 10, maxMs: 50 };
    const a = new PostgresBus({ nodeId: 'node-a', logger: busLogger, connection: url, reconnect });
    const b = new PostgresBus({ nodeId: 'node-b', logger: busLogger, connection: url, reconnect });
    const models = await modelsOnNode();
    const off = wireServicePushes({ bus: b, ...services(), authenticators: models.metadata, logger: busLogger });
    try {
      await Promise.all([a.start(), b.start()]);
      assert.equal(models.signIn(), 'allowed');
      models.stored.models = [modelX('USER_KEY_PHYSICAL_COMPROMISE')];
      models.failNextRead();
      const lost = nextStatus(b, false);
      await a.publish('authenticators', {}); // node A loaded the BLOB
      await lost;
      assert.equal(models.signIn(), 'allowed', 'still the old models: the node says it is not connected');
      assert.ok(records.some((r) => r.code === 'AUTHENTICATOR_RELOAD_FAILED' && r.node === 'node-b'));
      await nextStatus(b, true);
      assert.equal(models.signIn(), 'AUTHENTICATOR_COMPROMISED', 'read again after the reconnect: model X is refused');
    } finally {
      off();
      await Promise.all([a.close(), b.close()]);
    }
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

  it('reads the pending commands of the consoles connected here (only theirs) in one query, and sends each to its console', async () => {
    const connected = Array.from({ length: 50 }, (_, i) => `con_here_${i}`);
    const at = 1_700_000_000_000;
    for (const [i, consoleId] of connected.entries()) {
      await store.commands.insert({ id: `cmd_${i}`, consoleId, sessionId: `ses_${i}`, reason: 'r', createdAt: at + i });
    }
    // A console revoked with an end-session command pending (or one retired, or away): connected nowhere.
    await store.commands.insert({
      id: 'cmd_revoked',
      consoleId: 'con_revoked',
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
    const reads = { statements: 0, commands: [] as string[] };
    const counted = {
      pending: async (consoleId: string) => {
        reads.statements++;
        const found = await store.commands.pending(consoleId);
        reads.commands.push(...found.map((c) => c.id));
        return found;
      },
      pendingFor: async (consoleIds: readonly string[]) => {
        reads.statements++;
        const found = await store.commands.pendingFor(consoleIds);
        for (const list of found.values()) reads.commands.push(...list.map((c) => c.id));
        return found;
      },
      pendingAll: async () => {
        reads.statements++;
        const found = await store.commands.pendingAll();
        reads.commands.push(...found.map((c) => c.id));
        return found;
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
      assert.equal(reads.statements, 1, 'one query for all of them');
      assert.ok(!reads.commands.includes('cmd_revoked'), "the revoked console's command is not read by every resync");
    } finally {
      off();
      await bus.close();
    }
  });
});
