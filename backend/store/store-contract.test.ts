/**
 * One contract for every engine behind the storage seam: the Kysely store on PostgreSQL (a throwaway
 * server, a database per test), the Kysely store on SQLite (a temporary file) and the default
 * better-sqlite3 store (openSqliteStore). Then what only PostgreSQL has: several nodes (pools) on one
 * database, migrations run once by concurrent openers, pool size and close().
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import net from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import pg from 'pg';
import { GENESIS_HASH } from '../../shared/events.js';
import { DEFAULT_POLICY } from '../../shared/policy.js';
import { BatonError } from '../../shared/errors.js';
import type { CredentialRecord, EventRow, SessionRecord, Store } from './repositories.js';
import { DATABASE_FILE, openKyselySqliteStore, openSqliteStore } from './sqlite-store.js';
import { openPostgresStore } from './postgres-store.js';
import { POSTGRES_MIGRATIONS } from './postgres-migrations.js';
import { EPHEMERAL_SKEW_MARGIN_MS } from './kysely-revocations.js';
import { openStore } from './open-store.js';
import { storageFault } from '../http/http-kit.js';
import { createDatabase, postgresSkip, startPostgres, type PostgresServer } from './postgres-throwaway.js';
import { tempDir } from '../temp-dir.js';
import { eventsPage } from './admin-tables.js';

const pgSkip = postgresSkip();
let server: PostgresServer | undefined;
let databases = 0;

before(async () => {
  if (pgSkip === false) server = await startPostgres();
});
after(async () => {
  await server?.stop();
});

interface Opened {
  store: Store;
  /** A second store on the same database: another node on PostgreSQL, the same store on SQLite. */
  other(): Promise<Store>;
  /** Runs raw SQL on the database (to corrupt a value behind the store's back). */
  raw(sql: string): Promise<void>;
  close(): Promise<void>;
}

interface Engine {
  name: string;
  skip: false | string;
  open(): Promise<Opened>;
}

function sqliteEngine(name: string, open: (dir: string) => Store): Engine {
  return {
    name,
    skip: false,
    open() {
      const dir = tempDir('baton-contract-');
      const store = open(dir);
      return Promise.resolve({
        store,
        other: () => Promise.resolve(store),
        raw: (sql) => {
          const db = new Database(join(dir, DATABASE_FILE));
          db.exec(sql);
          db.close();
          return Promise.resolve();
        },
        close: () => store.close(),
      });
    },
  };
}

async function freshPostgresUrl(migrated = false): Promise<string> {
  if (server === undefined) throw new Error('no PostgreSQL server');
  return createDatabase(server.url, `contract_${++databases}`, { migrated });
}

async function rawPostgres(url: string, sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

const ENGINES: Engine[] = [
  {
    name: 'Kysely store on PostgreSQL',
    skip: pgSkip,
    async open() {
      const url = await freshPostgresUrl(true);
      const store = await openPostgresStore({ url, poolSize: 4 });
      const others: Store[] = [];
      return {
        store,
        other: async () => {
          const node = await openPostgresStore({ url, poolSize: 4 });
          others.push(node);
          return node;
        },
        raw: (sql) => rawPostgres(url, sql),
        close: async () => {
          for (const node of others) await node.close();
          await store.close();
        },
      };
    },
  },
  sqliteEngine('Kysely store on SQLite', (dataDir) => openKyselySqliteStore({ dataDir, durability: 'normal' })),
  sqliteEngine('embedded store (openSqliteStore: Kysely, hand-written events)', (dataDir) =>
    openSqliteStore({ dataDir, durability: 'normal' }),
  ),
];

const T0 = 1_700_000_000_000;

function consoleRecord(id: string) {
  return {
    id,
    name: `console ${id}`,
    channel: 'branch-kiosk',
    site: 'site-1',
    publicJwk: '{"kty":"EC"}',
    jkt: `jkt-${id}`,
    enrolledAt: T0,
    lastSeenAt: null,
    policyVersion: 0,
    revocationEpoch: 0,
    revokedAt: null,
    revokedReason: null,
  };
}

function operatorRecord(id: string, roles: string[] = ['operator']) {
  return {
    id,
    displayName: `Operator ${id}`,
    roles,
    webauthnUserId: `user-${id}`,
    createdAt: T0,
    failedAttempts: 0,
    revokedAt: null,
    revokedReason: null,
  };
}

function credentialRecord(id: string, operatorId: string): CredentialRecord {
  return {
    id,
    operatorId,
    publicKey: new Uint8Array([0, 1, 2, 250, 255]),
    counter: 4_000_000_000,
    transports: ['usb', 'nfc'],
    deviceBound: true,
    backedUp: false,
    aaguid: '00000000-0000-0000-0000-000000000000',
    attestationFmt: 'packed',
    attestationTrust: 'certificate',
    registeredOnConsole: 'c1',
    createdAt: T0,
    lastUsedAt: null,
    revokedAt: null,
    revokedReason: null,
    suspendedAt: null,
    suspendedReason: null,
  };
}

function sessionRecord(id: string, startedAt: number): SessionRecord {
  return {
    id,
    operatorId: 'op1',
    consoleId: 'c1',
    channel: 'branch-kiosk',
    credentialId: 'cred1',
    level: 'verified',
    authTime: startedAt,
    startedAt,
    expiresAt: startedAt + 3_600_000,
    state: 'active',
    suspendedAt: null,
    endedAt: null,
    endReason: null,
  };
}

function eventRow(origin: string, seq: number, overrides: Partial<EventRow> = {}): EventRow {
  const id = randomUUID();
  const hash = seq.toString(16).padStart(64, 'a');
  const body = {
    id,
    seq,
    time: T0 + seq,
    type: 'session-established',
    subject: { operator: 'op1', console: 'c1', session: 's1' },
    outcome: 'success',
    reasons: [],
    prevHash: GENESIS_HASH,
  };
  return {
    origin,
    seq,
    id,
    time: T0 + seq,
    receivedAt: T0 + seq + 1,
    type: 'session-established',
    outcome: 'success',
    operatorId: 'op1',
    consoleId: 'c1',
    sessionId: 's1',
    serviceId: null,
    body: JSON.stringify(body),
    hash,
    integrity: [],
    ...overrides,
  };
}

/** A backend event about a service, as EventLog stores it (the service in the body and in its column). */
function serviceEventRow(seq: number, service: string, type = 'service-token-issued'): EventRow {
  const row = eventRow('backend', seq, {
    type,
    operatorId: null,
    consoleId: null,
    sessionId: null,
    serviceId: service,
  });
  const event = { ...(JSON.parse(row.body) as Record<string, unknown>), type, subject: { service } };
  return { ...row, body: JSON.stringify(event) };
}

async function seedOperatorAndConsole(store: Store): Promise<void> {
  await store.consoles.insert(consoleRecord('c1'));
  await store.operators.insert(operatorRecord('op1'));
}

for (const engine of ENGINES) {
  describe(`store contract: ${engine.name}`, { skip: engine.skip }, () => {
    let opened: Opened;
    let store: Store;
    const fresh = async () => {
      opened = await engine.open();
      store = opened.store;
    };
    const done = () => opened.close();

    it('consoles, enrolment tokens, operators, codes and credentials round-trip', async () => {
      await fresh();
      try {
        assert.equal(store.engine, engine.name.includes('PostgreSQL') ? 'postgres' : 'sqlite');
        await seedOperatorAndConsole(store);
        await store.consoles.insert({ ...consoleRecord('c2'), enrolledAt: T0 + 5 });
        assert.deepEqual(await store.consoles.get('c1'), consoleRecord('c1'));
        assert.equal(await store.consoles.get('nope'), undefined);
        // Many at once: the ones that exist, each as `get` reads it; an id with SQL or JSON in it is only an id.
        const many = await store.consoles.getMany(['c2', 'nope', 'c1', "c1' OR '1'='1", '"]', 'c1']);
        assert.deepEqual([...many.keys()].sort(), ['c1', 'c2']);
        assert.deepEqual(many.get('c1'), await store.consoles.get('c1'));
        assert.deepEqual(many.get('c2'), await store.consoles.get('c2'));
        assert.equal((await store.consoles.getMany([])).size, 0);
        assert.deepEqual(
          (await store.consoles.list()).map((c) => c.id),
          ['c1', 'c2'],
        );
        await store.consoles.touch('c1', T0 + 10);
        await store.consoles.setSyncState('c1', { policyVersion: 3, revocationEpoch: 7 });
        await store.consoles.setSyncState('c1', { revocationEpoch: 5 });
        const c1 = await store.consoles.get('c1');
        assert.equal(c1?.lastSeenAt, T0 + 10);
        assert.equal(c1?.policyVersion, 3);
        assert.equal(c1?.revocationEpoch, 7, 'the epoch only moves forward');
        // Sightings of many consoles at once (two nodes may write the same console): never backwards.
        await store.consoles.touchMany([
          { id: 'c2', at: T0 + 30 },
          { id: 'c1', at: T0 + 5 },
          { id: 'nope', at: T0 + 40 },
        ]);
        assert.equal((await store.consoles.get('c1'))?.lastSeenAt, T0 + 10, 'an older sighting does not move it back');
        assert.equal((await store.consoles.get('c2'))?.lastSeenAt, T0 + 30);
        await store.consoles.touchMany([{ id: 'c1', at: T0 + 20 }]);
        assert.equal((await store.consoles.get('c1'))?.lastSeenAt, T0 + 20);
        await store.consoles.touchMany([]);
        // Inside a unit of work: written in that unit's transaction, undone with it.
        await assert.rejects(
          store.transaction(async (tx) => {
            await tx.consoles.touchMany([{ id: 'c1', at: T0 + 50 }]);
            throw new Error('roll back');
          }),
          /roll back/,
        );
        assert.equal((await store.consoles.get('c1'))?.lastSeenAt, T0 + 20, 'rolled back with its unit');
        await store.transaction((tx) => tx.consoles.touchMany([{ id: 'c1', at: T0 + 60 }]));
        assert.equal((await store.consoles.get('c1'))?.lastSeenAt, T0 + 60);
        assert.equal(await store.consoles.revoke('c2', T0, 'stolen'), true);
        assert.equal(await store.consoles.revoke('c2', T0, 'again'), false);

        const token = {
          hash: 'th1',
          channel: 'branch-kiosk',
          site: null,
          issuedBy: 'admin',
          issuedAt: T0,
          expiresAt: T0 + 1,
          usedAt: null,
        };
        await store.consoles.insertToken(token);
        assert.deepEqual(await store.consoles.getToken('th1'), token);
        assert.equal(await store.consoles.useToken('th1', T0 + 1, 'c1'), true);
        assert.equal(await store.consoles.useToken('th1', T0 + 2, 'c2'), false);
        assert.equal((await store.consoles.getToken('th1'))?.usedAt, T0 + 1);

        assert.deepEqual(await store.operators.get('op1'), operatorRecord('op1'));
        assert.equal((await store.operators.getByWebauthnUserId('user-op1'))?.id, 'op1');
        assert.equal(await store.operators.recordFailure('op1'), 1);
        assert.equal(await store.operators.recordFailure('op1'), 2);
        assert.equal(await store.operators.recordFailure('ghost'), 0);
        await store.operators.resetFailures('op1');
        assert.equal((await store.operators.get('op1'))?.failedAttempts, 0);
        assert.equal((await store.operators.list()).length, 1);
        await store.operators.insertCode({
          hash: 'code1',
          operatorId: 'op1',
          issuedBy: 'admin',
          issuedAt: T0,
          expiresAt: T0 + 9,
          usedAt: null,
        });
        assert.equal((await store.operators.getCode('code1'))?.usedAt, null);
        assert.equal(await store.operators.useCode('code1', T0 + 1, 'cred1'), true);
        assert.equal(await store.operators.useCode('code1', T0 + 2, 'cred2'), false);

        await store.operators.insertCredential(credentialRecord('cred1', 'op1'));
        const cred = await store.operators.getCredential('cred1');
        assert.deepEqual(cred, credentialRecord('cred1', 'op1'));
        assert.ok(cred?.publicKey instanceof Uint8Array);
        await store.operators.recordCredentialUse('cred1', 4_000_000_001, T0 + 3);
        assert.equal((await store.operators.getCredential('cred1'))?.counter, 4_000_000_001);
        assert.equal(await store.operators.suspendCredential('cred1', T0 + 4, 'counter'), true);
        assert.equal(await store.operators.suspendCredential('cred1', T0 + 4, 'counter'), false);
        assert.deepEqual(
          (await store.operators.listSuspendedCredentials()).map((c) => c.id),
          ['cred1'],
        );
        assert.equal(await store.operators.reinstateCredential('cred1'), true);
        assert.equal(await store.operators.reinstateCredential('cred1'), false);
        assert.equal(await store.operators.revokeCredential('cred1', T0 + 5, 'lost'), true);
        assert.equal(await store.operators.revokeCredential('cred1', T0 + 5, 'lost'), false);
        assert.equal((await store.operators.listCredentials('op1')).length, 1);
        assert.equal(await store.operators.revoke('op1', T0, 'left'), true);
        assert.equal(await store.operators.revoke('op1', T0, 'left'), false);
      } finally {
        await done();
      }
    });

    it('a sign-in’s rows: the credential with its operator, its use with the re-check state, the sessions it changes', async () => {
      await fresh();
      try {
        await seedOperatorAndConsole(store);
        await store.operators.insertCredential(credentialRecord('cred1', 'op1'));
        const found = await store.operators.getCredentialWithOperator('cred1');
        assert.deepEqual(found?.credential, credentialRecord('cred1', 'op1'));
        assert.deepEqual(found?.operator, await store.operators.get('op1'));
        assert.equal(await store.operators.getCredentialWithOperator('nobody'), undefined);
        const use = (counter: number, at: number) =>
          store.transaction((tx) =>
            tx.operators.recordAssertionUse({ credentialId: 'cred1', counter, at, operatorId: 'op1', consoleId: 'c1' }),
          );
        assert.deepEqual(await use(4_000_000_001, T0 + 7), {
          credential: { revokedAt: null, suspendedAt: null },
          operatorRevokedAt: null,
          consoleRevokedAt: null,
        });
        const used = await store.operators.getCredential('cred1');
        assert.deepEqual([used?.counter, used?.lastUsedAt], [4_000_000_001, T0 + 7]);
        assert.equal((await store.consoles.get('c1'))?.lastSeenAt, T0 + 7);
        // A counter that does not advance (a copy used meanwhile) is refused and writes nothing.
        await assert.rejects(
          use(4_000_000_001, T0 + 8),
          (e: unknown) => e instanceof BatonError && e.code === 'WEBAUTHN_COUNTER_REGRESSED',
        );
        assert.equal((await store.operators.getCredential('cred1'))?.lastUsedAt, T0 + 7);
        // Revocations committed meanwhile come back with the use, for the unit's re-check.
        assert.equal(await store.consoles.revoke('c1', T0 + 9, 'stolen'), true);
        assert.equal(await store.operators.revoke('op1', T0 + 9, 'left'), true);
        const state = await use(4_000_000_002, T0 + 10);
        assert.deepEqual([state.consoleRevokedAt, state.operatorRevokedAt], [T0 + 9, T0 + 9]);
        assert.equal((await store.consoles.get('c1'))?.revokedAt, T0 + 9);
        // The sessions a sign-in inserts, reads (live, oldest first) and changes, in a unit of work.
        await store.transaction(async (tx) => {
          await tx.sessions.insert(sessionRecord('s2', T0 + 1));
          await tx.sessions.insert(sessionRecord('s1', T0));
          await tx.sessions.update('s1', { state: 'suspended', suspendedAt: T0 + 11 });
          await tx.sessions.update('s2', { state: 'active', level: 'hardware', authTime: T0 + 12, suspendedAt: null });
          assert.deepEqual(
            (await tx.sessions.liveOnConsole('c1', { forUpdate: true })).map((s) => [s.id, s.state, s.suspendedAt]),
            [
              ['s1', 'suspended', T0 + 11],
              ['s2', 'active', null],
            ],
          );
        });
        assert.deepEqual(await store.sessions.get('s2'), {
          ...sessionRecord('s2', T0 + 1),
          level: 'hardware',
          authTime: T0 + 12,
        });
      } finally {
        await done();
      }
    });

    it('sessions, policies, commands, admin tokens and meta', async () => {
      await fresh();
      try {
        await seedOperatorAndConsole(store);
        await store.sessions.insert(sessionRecord('s1', T0));
        await store.sessions.insert(sessionRecord('s2', T0 + 1));
        assert.deepEqual(await store.sessions.get('s1'), sessionRecord('s1', T0));
        await store.sessions.update('s2', { state: 'ended', endedAt: T0 + 2, endReason: 'sign-out' });
        assert.deepEqual(
          (await store.sessions.liveOnConsole('c1')).map((s) => s.id),
          ['s1'],
        );
        assert.deepEqual(
          (await store.sessions.liveForOperator('op1')).map((s) => s.id),
          ['s1'],
        );
        assert.deepEqual(
          (await store.sessions.list({ limit: 10 })).map((s) => s.id),
          ['s2', 's1'],
        );
        assert.deepEqual(
          (await store.sessions.list({ state: 'ended', consoleId: 'c1', limit: 10 })).map((s) => s.endReason),
          ['sign-out'],
        );
        // updateAndGet (step-up): the row as the update left it, in one statement; the ended one stays ended.
        assert.deepEqual(await store.sessions.updateAndGet('s2', { level: 'hardware', authTime: T0 + 3 }), {
          ...sessionRecord('s2', T0 + 1),
          state: 'ended',
          endedAt: T0 + 2,
          endReason: 'sign-out',
          level: 'hardware',
          authTime: T0 + 3,
        });
        assert.deepEqual(await store.sessions.get('s2'), await store.sessions.updateAndGet('s2', {}));
        assert.equal(await store.sessions.updateAndGet('no-such-session', { authTime: T0 }), undefined);

        assert.equal(await store.policies.latest(), undefined);
        await store.policies.insert({ version: 1, policy: DEFAULT_POLICY, publishedAt: T0, publishedBy: 'admin' });
        await store.policies.insert({ version: 2, policy: DEFAULT_POLICY, publishedAt: T0 + 1, publishedBy: 'admin' });
        assert.equal((await store.policies.latest())?.version, 2);
        assert.deepEqual((await store.policies.get(1))?.policy, DEFAULT_POLICY);
        assert.deepEqual(
          (await store.policies.list()).map((p) => p.version),
          [1, 2],
        );

        await store.commands.insert({ id: 'cmd1', consoleId: 'c1', sessionId: 's1', reason: 'r', createdAt: T0 });
        assert.deepEqual(
          (await store.commands.pending('c1')).map((c) => c.id),
          ['cmd1'],
        );
        // Several consoles' pending commands at once, each console's oldest first.
        await store.commands.insert({ id: 'cmd3', consoleId: 'c2', sessionId: 's1', reason: 'r', createdAt: T0 + 2 });
        await store.commands.insert({ id: 'cmd2', consoleId: 'c2', sessionId: 's1', reason: 'r', createdAt: T0 + 1 });
        await store.commands.insert({ id: 'cmd4', consoleId: 'c3', sessionId: 's1', reason: 'r', createdAt: T0 });
        assert.equal(await store.commands.acknowledge('c3', 'cmd4', T0 + 1), true);
        const pending = await store.commands.pendingFor(['c1', 'c2', 'c3', 'nope']);
        assert.deepEqual(
          Object.fromEntries([...pending].map(([consoleId, list]) => [consoleId, list.map((c) => c.id)])),
          { c1: ['cmd1'], c2: ['cmd2', 'cmd3'] },
        );
        assert.deepEqual(pending.get('c2'), await store.commands.pending('c2'));
        assert.equal((await store.commands.pendingFor([])).size, 0);
        assert.equal(await store.commands.acknowledge('c2', 'cmd2', T0 + 1), true);
        assert.equal(await store.commands.acknowledge('c2', 'cmd3', T0 + 1), true);
        assert.equal(await store.commands.acknowledge('c1', 'cmd1', T0 + 1), true);
        assert.equal(await store.commands.acknowledge('c1', 'cmd1', T0 + 1), false);
        assert.deepEqual(await store.commands.pending('c1'), []);

        assert.equal(await store.adminTokens.any(), false);
        await store.adminTokens.insert('at1', 'bootstrap', T0);
        assert.equal(await store.adminTokens.any(), true);
        assert.equal(await store.adminTokens.isValid('at1'), true);
        assert.equal(await store.adminTokens.isValid('at2'), false);

        assert.equal(await store.meta.get('k'), undefined);
        await store.meta.set('k', 'v1');
        await store.meta.set('k', 'v2');
        assert.equal(await store.meta.get('k'), 'v2');
      } finally {
        await done();
      }
    });

    it('revocations: epochs 1, 2, 3…, deliveries and acknowledgements', async () => {
      await fresh();
      try {
        assert.equal(await store.revocations.currentEpoch(), 0);
        const base = {
          kind: 'console' as const,
          targetId: 'c1',
          operatorId: null,
          consoleId: 'c1',
          reason: 'r',
          actor: 'a',
          at: T0,
        };
        assert.equal((await store.revocations.insert(base)).epoch, 1);
        assert.equal((await store.revocations.insert({ ...base, kind: 'operator', operatorId: 'op1' })).epoch, 2);
        assert.equal(await store.revocations.currentEpoch(), 2);
        const since = await store.revocations.since(1);
        assert.deepEqual(since, [{ ...base, kind: 'operator', operatorId: 'op1', epoch: 2 }]);
        await store.revocations.recordDeliveries(2, ['c1', 'c2'], T0);
        await store.revocations.recordDeliveries(2, ['c1'], T0 + 5);
        await store.revocations.recordAck('c1', 2, T0 + 1);
        assert.deepEqual(await store.revocations.deliveries(2), [
          { consoleId: 'c1', sentAt: T0, ackedAt: T0 + 1 },
          { consoleId: 'c2', sentAt: T0, ackedAt: null },
        ]);
        // A catch-up of c3 (both epochs) and of c1 (already sent 2: its row, acknowledged, stays as it is).
        await store.revocations.recordCatchUp('c3', [2, 1], T0 + 7);
        await store.revocations.recordCatchUp('c1', [1, 2], T0 + 7);
        await store.revocations.recordCatchUp('c2', [], T0 + 7);
        assert.deepEqual(await store.revocations.deliveries(1), [
          { consoleId: 'c1', sentAt: T0 + 7, ackedAt: null },
          { consoleId: 'c3', sentAt: T0 + 7, ackedAt: null },
        ]);
        assert.deepEqual(await store.revocations.deliveries(2), [
          { consoleId: 'c1', sentAt: T0, ackedAt: T0 + 1 },
          { consoleId: 'c2', sentAt: T0, ackedAt: null },
          { consoleId: 'c3', sentAt: T0 + 7, ackedAt: null },
        ]);
      } finally {
        await done();
      }
    });

    it('revocations: the delivery rows of the consoles it is pushed to, written with it or not at all', async () => {
      await fresh();
      try {
        const base = {
          kind: 'session' as const,
          targetId: 's1',
          operatorId: 'op1',
          consoleId: 'c1',
          reason: 'r',
          actor: 'a',
          at: T0,
        };
        // Outside a unit of work: the revocation and its delivery rows together.
        const first = await store.revocations.insert(base, { consoleIds: ['c1', 'c2'], at: T0 + 1 });
        assert.equal(first.epoch, 1);
        assert.deepEqual(await store.revocations.deliveries(1), [
          { consoleId: 'c1', sentAt: T0 + 1, ackedAt: null },
          { consoleId: 'c2', sentAt: T0 + 1, ackedAt: null },
        ]);
        // A unit that rolls back leaves neither the revocation nor its delivery row, and no gap.
        await assert.rejects(
          store.transaction(async (tx) => {
            await tx.revocations.insert({ ...base, targetId: 's2' }, { consoleIds: ['c1'], at: T0 + 2 });
            throw new Error('rolled back');
          }),
          /rolled back/,
        );
        assert.deepEqual(await store.revocations.deliveries(2), []);
        // Inside a unit that commits; no console to push to: no delivery row.
        const [second, third] = await store.transaction(async (tx) => [
          await tx.revocations.insert({ ...base, targetId: 's3' }, { consoleIds: ['c3'], at: T0 + 3 }),
          await tx.revocations.insert({ ...base, targetId: 's4' }),
        ]);
        assert.deepEqual([second?.epoch, third?.epoch], [2, 3]);
        assert.deepEqual(await store.revocations.deliveries(2), [{ consoleId: 'c3', sentAt: T0 + 3, ackedAt: null }]);
        assert.deepEqual(await store.revocations.deliveries(3), []);
        assert.deepEqual(
          (await store.revocations.since(0)).map((r) => [r.epoch, r.targetId]),
          [
            [1, 's1'],
            [2, 's3'],
            [3, 's4'],
          ],
        );
      } finally {
        await done();
      }
    });

    it('acknowledgements: each console up to its epoch, writing the delivery row a node has not written yet (sentAt)', async () => {
      await fresh();
      try {
        for (const id of ['c1', 'c2', 'c3']) await store.consoles.insert(consoleRecord(id));
        await store.revocations.recordDeliveries(1, ['c1', 'c2', 'c3'], T0);
        await store.revocations.recordDeliveries(2, ['c1'], T0 + 1);
        // One console, its row of epoch 3 not written yet: the ack writes it, acknowledged, and marks 1 and 2.
        await store.revocations.recordAcks([{ consoleId: 'c1', epoch: 3, at: T0 + 10, sentAt: T0 + 2 }]);
        // A group: c2's row of epoch 3 is missing (written by the ack), c3 acknowledges epoch 1 only.
        await store.revocations.recordAcks([
          { consoleId: 'c3', epoch: 1, at: T0 + 11 },
          { consoleId: 'c2', epoch: 3, at: T0 + 12, sentAt: T0 + 2 },
        ]);
        // The delivery row written after the ack (its write was slower) stays acknowledged.
        await store.revocations.recordDeliveries(3, ['c1', 'c2'], T0 + 2);
        assert.deepEqual(await store.revocations.deliveries(1), [
          { consoleId: 'c1', sentAt: T0, ackedAt: T0 + 10 },
          { consoleId: 'c2', sentAt: T0, ackedAt: T0 + 12 },
          { consoleId: 'c3', sentAt: T0, ackedAt: T0 + 11 },
        ]);
        assert.deepEqual(await store.revocations.deliveries(2), [
          { consoleId: 'c1', sentAt: T0 + 1, ackedAt: T0 + 10 },
        ]);
        assert.deepEqual(await store.revocations.deliveries(3), [
          { consoleId: 'c1', sentAt: T0 + 2, ackedAt: T0 + 10 },
          { consoleId: 'c2', sentAt: T0 + 2, ackedAt: T0 + 12 },
        ]);
        assert.deepEqual(
          await Promise.all(['c1', 'c2', 'c3'].map(async (id) => (await store.consoles.get(id))?.revocationEpoch)),
          [3, 3, 1],
        );
        // A lower epoch later never lowers a console's epoch.
        await store.revocations.recordAcks([{ consoleId: 'c1', epoch: 2, at: T0 + 20 }]);
        assert.equal((await store.consoles.get('c1'))?.revocationEpoch, 3);
      } finally {
        await done();
      }
    });

    it('acknowledgements of several epochs of one console in one write: each row at the first ack that covered it', async () => {
      await fresh();
      try {
        for (const id of ['c1', 'c2']) await store.consoles.insert(consoleRecord(id));
        await store.revocations.recordDeliveries(1, ['c1', 'c2'], T0);
        await store.revocations.recordDeliveries(2, ['c1', 'c2'], T0 + 1);
        await store.revocations.recordDeliveries(3, ['c1'], T0 + 2);
        await store.revocations.recordAcks([
          // c1 acknowledged 1, then 3 (which covers 2), and its row of 4 is not written yet (sentAt).
          { consoleId: 'c1', epoch: 3, at: T0 + 30 },
          { consoleId: 'c1', epoch: 1, at: T0 + 10 },
          { consoleId: 'c1', epoch: 4, at: T0 + 40, sentAt: T0 + 3 },
          { consoleId: 'c1', epoch: 4, at: T0 + 45 }, // the same ack twice: the earlier time counts
          // c2 acknowledged 2 before 1 was recorded: its row of 1 was covered by then.
          { consoleId: 'c2', epoch: 1, at: T0 + 25 },
          { consoleId: 'c2', epoch: 2, at: T0 + 20 },
        ]);
        const ackedAt = async (epoch: number) =>
          (await store.revocations.deliveries(epoch)).map((d) => [d.consoleId, d.ackedAt]);
        assert.deepEqual(await ackedAt(1), [
          ['c1', T0 + 10],
          ['c2', T0 + 20],
        ]);
        assert.deepEqual(await ackedAt(2), [
          ['c1', T0 + 30],
          ['c2', T0 + 20],
        ]);
        assert.deepEqual(await ackedAt(3), [['c1', T0 + 30]]);
        assert.deepEqual(await store.revocations.deliveries(4), [
          { consoleId: 'c1', sentAt: T0 + 3, ackedAt: T0 + 40 },
        ]);
        assert.deepEqual(
          await Promise.all(['c1', 'c2'].map(async (id) => (await store.consoles.get(id))?.revocationEpoch)),
          [4, 2],
        );
      } finally {
        await done();
      }
    });

    it('events: heads, insert once per (origin, seq), queries, raw chains, checkpoints', async () => {
      await fresh();
      try {
        assert.equal(await store.events.head('c1'), undefined);
        await store.transaction(async (tx) => {
          assert.deepEqual(await tx.events.lockHead('c1'), { lastSeq: 0, lastHash: GENESIS_HASH });
        });
        const first = await store.events.insert(eventRow('c1', 1, { integrity: ['gap'] }));
        assert.equal(first.inserted, true);
        const again = await store.events.insert(eventRow('c1', 1, { hash: 'f'.repeat(64) }));
        assert.deepEqual(again, { inserted: false, existingHash: eventRow('c1', 1).hash });
        const second = await store.events.insert(eventRow('c1', 2, { type: 'session-revoked', sessionId: 's2' }));
        assert.ok(second.inserted && first.inserted && second.cursor > first.cursor);
        await store.events.insert(eventRow('backend', 1, { consoleId: null }));
        await store.events.setHead('c1', { lastSeq: 2, lastHash: 'b'.repeat(64) });
        assert.deepEqual(await store.events.head('c1'), { lastSeq: 2, lastHash: 'b'.repeat(64) });
        // Several heads at once: only origins with a head row (`backend` has events but no head row yet).
        assert.deepEqual(Object.fromEntries(await store.events.heads(['c1', 'nope', 'backend', 'c1'])), {
          c1: { lastSeq: 2, lastHash: 'b'.repeat(64) },
        });
        assert.equal((await store.events.heads([])).size, 0);
        assert.equal(await store.events.count(), 3);
        const all = await store.events.query({ limit: 10 });
        assert.deepEqual(
          all.map((e) => [e.origin, e.seq]),
          [
            ['c1', 1],
            ['c1', 2],
            ['backend', 1],
          ],
        );
        assert.deepEqual(all[0]?.integrity, ['gap']);
        assert.equal(all[0]?.receivedAt, T0 + 2);
        assert.equal((await store.events.query({ console: 'c1', limit: 10 })).length, 2);
        assert.equal((await store.events.query({ session: 's2', limit: 10 })).length, 1);
        assert.equal((await store.events.query({ type: 'session-revoked', limit: 10 })).length, 1);
        assert.equal((await store.events.query({ from: T0 + 2, to: T0 + 3, limit: 10 })).length, 1);
        assert.equal((await store.events.query({ afterCursor: all[0]?.cursor, limit: 1 })).length, 1);
        assert.deepEqual(
          (await store.events.query({ origin: 'c1', afterSeq: 1, limit: 10 })).map((e) => e.seq),
          [2],
        );
        const raw = await store.events.rawChain('c1', 0, 10);
        assert.deepEqual(
          raw.map((r) => [r.seq, r.integrity]),
          [
            [1, ['gap']],
            [2, []],
          ],
        );

        await store.checkpoints.put({ seq: 1, at: T0, kid: 'k1', body: '{}', sig: 's1' });
        await store.checkpoints.put({ seq: 1, at: T0 + 1, kid: 'k1', body: '{"a":1}', sig: 's1b' });
        await store.checkpoints.put({ seq: 2, at: T0 + 2, kid: 'k1', body: '{}', sig: 's2' });
        assert.deepEqual(
          (await store.checkpoints.latest(1)).map((c) => c.seq),
          [2],
        );
        assert.deepEqual(await store.checkpoints.list(0, 1), [
          { seq: 1, at: T0 + 1, kid: 'k1', body: '{"a":1}', sig: 's1b' },
        ]);
        assert.deepEqual(
          (await store.checkpoints.heads()).filter((h) => h.lastSeq > 0),
          [{ origin: 'c1', lastSeq: 2, lastHash: 'b'.repeat(64) }],
        );
        assert.equal(await store.checkpoints.hashAt('c1', 2), eventRow('c1', 2).hash);
        assert.equal(await store.checkpoints.hashAt('c1', 9), undefined);
      } finally {
        await done();
      }
    });

    it('events: a backend event about a service is found by that service (its id or name), newest first; no other event is', async () => {
      await fresh();
      try {
        await opened.raw(`INSERT INTO services (id, name, actions, enrolled_at, enrolled_by) VALUES
          ('svc_a', 'Nightly batch', '[]', ${T0}, 'operator:op1'), ('svc_b', 'HR sync', '[]', ${T0}, 'operator:op1'),
          ('svc_c', 'hr sync', '[]', ${T0}, 'operator:op1')`);
        // Every way a row is written: one insert, one in a unit of work (PostgreSQL: with its chain head),
        // a batch (SQLite: a multi-row INSERT; PostgreSQL: arrays), a batch of one.
        await store.events.insert(serviceEventRow(1, 'svc_a', 'service-enrolled'));
        await store.transaction(async (tx) => {
          await tx.events.lockHead('backend');
          await tx.events.insert(serviceEventRow(2, 'svc_b'));
          await tx.events.setHead('backend', { lastSeq: 2, lastHash: serviceEventRow(2, 'svc_b').hash });
        });
        await store.events.insertMany([
          serviceEventRow(3, 'svc_a'),
          eventRow('backend', 4, { consoleId: null }),
          serviceEventRow(5, 'svc_a', 'service-revoked'),
          eventRow('c1', 1),
        ]);
        await store.events.insertMany([serviceEventRow(6, 'svc_c')]);
        const seqs = (events: { origin: string; seq: number }[]) => events.map((e) => `${e.origin}#${e.seq}`);
        // The store's own query (the admin API's `after` mode and the live stream's backfill), oldest first.
        assert.deepEqual(seqs(await store.events.query({ service: 'svc_a', limit: 10 })), [
          'backend#1',
          'backend#3',
          'backend#5',
        ]);
        assert.deepEqual(seqs(await store.events.query({ service: 'svc_b', limit: 10 })), ['backend#2']);
        assert.deepEqual(await store.events.query({ service: 'svc_nobody', limit: 10 }), []);
        assert.equal((await store.events.query({ limit: 10 })).length, 7);
        // The admin list: newest first, paged by the service's index, by id or by name.
        const first = await eventsPage(store, { service: 'svc_a' }, { limit: 2 });
        assert.deepEqual(seqs(first.rows), ['backend#5', 'backend#3']);
        assert.ok(first.rows.every((e) => e.subject.service === 'svc_a'));
        assert.notEqual(first.page.next, null);
        const rest = await eventsPage(store, { service: 'svc_a' }, { limit: 2, cursor: first.page.next ?? undefined });
        assert.deepEqual(seqs(rest.rows), ['backend#1']);
        assert.equal(rest.page.next, null);
        assert.deepEqual(seqs((await eventsPage(store, { service: 'nightly BATCH' }, {})).rows), [
          'backend#5',
          'backend#3',
          'backend#1',
        ]);
        // A name two services share stands for both; with other filters, all must hold.
        assert.deepEqual(seqs((await eventsPage(store, { service: 'HR sync' }, {})).rows), ['backend#6', 'backend#2']);
        assert.deepEqual(seqs((await eventsPage(store, { service: 'svc_a', type: 'service-revoked' }, {})).rows), [
          'backend#5',
        ]);
        assert.deepEqual((await eventsPage(store, { service: 'nobody' }, {})).rows, []);
      } finally {
        await done();
      }
    });

    it('events.insertMany: a batch in a few statements, results as if inserted one by one', async () => {
      await fresh();
      try {
        await store.events.insert(eventRow('c1', 1));
        const batch = [
          eventRow('c1', 1, { hash: 'f'.repeat(64) }),
          eventRow('c1', 2),
          eventRow('c2', 1),
          eventRow('c1', 2, { hash: 'e'.repeat(64) }),
          ...Array.from({ length: 1200 }, (_, i) => eventRow('c3', i + 1)),
        ];
        const results = await store.events.insertMany(batch);
        assert.deepEqual(results[0], { inserted: false, existingHash: eventRow('c1', 1).hash });
        assert.equal(results[1]?.inserted, true);
        assert.equal(results[2]?.inserted, true);
        assert.deepEqual(results[3], { inserted: false, existingHash: eventRow('c1', 2).hash });
        const cursors = results.slice(4).map((r) => (r.inserted ? r.cursor : -1));
        assert.ok(cursors.every((c, i) => c > 0 && (i === 0 || c > (cursors[i - 1] ?? 0))));
        assert.equal(await store.events.count(), 1 + 2 + 1200);
      } finally {
        await done();
      }
    });

    it('events.insertMany stores every body byte for byte (quotes, backslashes, escapes, separators, non-BMP)', async () => {
      await fresh();
      try {
        const bodies = [
          JSON.stringify({ a: 'q"uo\\te', b: '\u0000 \ud800 \n', c: '😀 \u2028 é', d: '{"x":[1,"]"]}' }),
          '{"text":"NULL","list":"{1,2}","backslash":"\\\\","tab":"\t"}',
          'not JSON at all: " \\ , } { NULL',
          '',
        ];
        const rows = bodies.map((body, i) => eventRow('c9', i + 1, { body }));
        const results = await store.events.insertMany(rows);
        assert.ok(results.every((r) => r.inserted));
        const stored = await store.events.rawChain('c9', 0, 10);
        assert.deepEqual(
          stored.map((r) => r.body),
          bodies,
        );
      } finally {
        await done();
      }
    });

    it('admin sessions, outbox reports, codes, bootstrap retirement and authenticator models', async () => {
      await fresh();
      try {
        await seedOperatorAndConsole(store);
        await store.operators.insert(operatorRecord('boss', ['admin']));
        const admin = {
          id: 'as1',
          tokenHash: 'ah1',
          operatorId: 'boss',
          credentialId: 'cb',
          createdAt: T0,
          lastSeenAt: T0,
          expiresAt: T0 + 100,
          stepUpAt: null,
          endedAt: null,
          endReason: null,
        };
        await store.admin.insertSession(admin);
        await store.admin.insertSession({ ...admin, id: 'as2', tokenHash: 'ah2', createdAt: T0 + 1 });
        await store.admin.touchSession('as1', T0 + 5);
        await store.admin.touchSession('as1', T0 + 3);
        await store.admin.recordStepUp('as1', T0 + 6);
        assert.deepEqual(await store.admin.sessionByTokenHash('ah1'), {
          ...admin,
          lastSeenAt: T0 + 5,
          stepUpAt: T0 + 6,
        });
        assert.equal(await store.admin.endSession('as2', T0 + 7, 'sign-out'), true);
        assert.equal(await store.admin.endSession('as2', T0 + 7, 'sign-out'), false);
        assert.deepEqual(
          (await store.admin.liveSessions()).map((s) => s.id),
          ['as1'],
        );
        assert.deepEqual(await store.admin.endAllSessions(T0 + 8, 'restart', 'boss'), ['as1']);
        assert.deepEqual(await store.admin.endAllSessions(T0 + 8, 'restart'), []);

        await store.admin.recordOutbox({ consoleId: 'c1', pending: 3, max: 10, reportedAt: T0 });
        await store.admin.recordOutbox({ consoleId: 'c1', pending: 1, max: 10, reportedAt: T0 + 1 });
        assert.deepEqual(await store.admin.outboxReports(), [
          { consoleId: 'c1', pending: 1, max: 10, reportedAt: T0 + 1 },
        ]);
        // Several at once: each console's row written or replaced; a console that does not exist is skipped.
        await store.consoles.insert(consoleRecord('c2'));
        await store.admin.recordOutboxMany([
          { consoleId: 'c2', pending: 7, max: 100, reportedAt: T0 + 2 },
          { consoleId: 'gone', pending: 1, max: 1, reportedAt: T0 + 2 },
          { consoleId: 'c1', pending: 0, max: 10, reportedAt: T0 + 3 },
        ]);
        assert.deepEqual(await store.admin.outboxReports(), [
          { consoleId: 'c1', pending: 0, max: 10, reportedAt: T0 + 3 },
          { consoleId: 'c2', pending: 7, max: 100, reportedAt: T0 + 2 },
        ]);
        await assert.rejects(
          store.admin.recordOutboxMany([
            { consoleId: 'c1', pending: 1, max: 10, reportedAt: T0 + 4 },
            { consoleId: 'c1', pending: 2, max: 10, reportedAt: T0 + 5 },
          ]),
          /one report per console/,
        );
        await store.admin.recordOutboxMany([]);

        const hash = 'abcdef0123456789'.repeat(4);
        await store.operators.insertCode({
          hash,
          operatorId: 'boss',
          issuedBy: 'admin:bootstrap',
          issuedAt: T0,
          expiresAt: T0 + 9,
          usedAt: null,
        });
        assert.deepEqual(
          (await store.admin.listCodes('boss')).map((c) => [c.id, c.usedAt, c.revokedAt]),
          [['abcdef0123456789', null, null]],
        );
        assert.equal(await store.admin.adminPasskeyExists(), false);
        await store.operators.insertCredential(credentialRecord('cb', 'boss'));
        assert.equal(await store.admin.adminPasskeyExists(), true);
        await store.adminTokens.insert('boot', 'bootstrap', T0);
        assert.equal(await store.admin.bootstrapToken('boot'), 'enabled');
        assert.deepEqual(await store.admin.retireBootstrap(T0 + 9), { tokensDisabled: 1, codesRevoked: 1 });
        assert.deepEqual(await store.admin.retireBootstrap(T0 + 9), { tokensDisabled: 0, codesRevoked: 0 });
        assert.equal(await store.admin.bootstrapToken('boot'), 'disabled');
        assert.equal(await store.admin.bootstrapToken('other'), undefined);
        assert.equal((await store.admin.listCodes('boss'))[0]?.revokedAt, T0 + 9);
        await store.operators.insertCode({
          hash: 'ff'.repeat(32),
          operatorId: 'op1',
          issuedBy: 'a',
          issuedAt: T0,
          expiresAt: T0 + 9,
          usedAt: null,
        });
        assert.equal(await store.admin.revokeCode('op1', 'ff'.repeat(8), T0 + 1), true);
        assert.equal(await store.admin.revokeCode('op1', 'ff'.repeat(8), T0 + 1), false);
        assert.equal(await store.admin.setRoles('op1', ['operator', 'admin']), true);
        assert.deepEqual((await store.operators.get('op1'))?.roles, ['operator', 'admin']);
        assert.equal(await store.admin.setRoles('ghost', []), false);

        assert.equal(await store.authenticatorModels.currentBlob(), undefined);
        const blob = { no: 7, nextUpdate: '2027-01-01', sha256: 'ab', loadedAt: T0, loadedBy: 'boss', models: 1 };
        const model = {
          aaguid: 'aa',
          model: 'Key',
          certification: 'L2' as const,
          status: 'FIDO_CERTIFIED_L2',
          statusReports: [
            { status: 'FIDO_CERTIFIED_L2', effectiveDate: '2024-01-01', authenticatorVersion: null, url: null },
          ],
          timeOfLastStatusChange: null,
          blobNo: 7,
        };
        await store.transaction((tx) => tx.authenticatorModels.replace(blob, [model]));
        assert.deepEqual(await store.authenticatorModels.currentBlob(), blob);
        assert.deepEqual(await store.authenticatorModels.list(), [model]);
      } finally {
        await done();
      }
    });

    it('ephemeral: put / take once, at most N per owner, claimOnce refuses a replay until expiry, sweep', async () => {
      await fresh();
      try {
        for (let i = 0; i < 5; i++) {
          await store.ephemeral.put(
            { kind: 'challenge', key: `k${i}`, owner: 'c1', value: `v${i}`, expiresAt: T0 + 100 },
            3,
          );
        }
        assert.equal(await store.ephemeral.take('challenge', 'k0'), undefined, 'the oldest were dropped');
        assert.equal(await store.ephemeral.take('challenge', 'k1'), undefined);
        assert.deepEqual(await store.ephemeral.take('challenge', 'k4'), {
          owner: 'c1',
          value: 'v4',
          expiresAt: T0 + 100,
        });
        assert.equal(await store.ephemeral.take('challenge', 'k4'), undefined, 'single use');
        assert.equal(await store.ephemeral.claimOnce('nonce', 'n1', T0 + 10, T0), true);
        assert.equal(await store.ephemeral.claimOnce('nonce', 'n1', T0 + 10, T0 + 5), false, 'a replay');
        assert.equal(
          await store.ephemeral.claimOnce('nonce', 'n1', T0 + 30, T0 + 20),
          true,
          'expired: claimable again',
        );
        // PostgreSQL keeps expired entries EPHEMERAL_SKEW_MARGIN_MS longer (nodes' clocks may differ).
        const sweepAt = T0 + 200 + (store.engine === 'postgres' ? EPHEMERAL_SKEW_MARGIN_MS : 0);
        assert.equal(await store.ephemeral.sweep(sweepAt - 190), 0, 'nothing expired yet');
        assert.equal(await store.ephemeral.sweep(sweepAt), 3);
        assert.equal(await store.ephemeral.sweep(sweepAt), 0);
      } finally {
        await done();
      }
    });

    it('single use under concurrency: of two racing takes, claims, token and code uses, one wins', async () => {
      await fresh();
      try {
        const node2 = await opened.other();
        await seedOperatorAndConsole(store);
        for (let round = 0; round < 5; round++) {
          await store.ephemeral.put({
            kind: 'challenge',
            key: `r${round}`,
            owner: 'c1',
            value: 'v',
            expiresAt: T0 + 9,
          });
          const takes = await Promise.all([
            store.ephemeral.take('challenge', `r${round}`),
            node2.ephemeral.take('challenge', `r${round}`),
          ]);
          assert.equal(takes.filter((t) => t !== undefined).length, 1);
          const claims = await Promise.all([
            store.ephemeral.claimOnce('nonce', `n${round}`, T0 + 9, T0),
            node2.ephemeral.claimOnce('nonce', `n${round}`, T0 + 9, T0),
          ]);
          assert.equal(claims.filter(Boolean).length, 1);
          await store.consoles.insertToken({
            hash: `t${round}`,
            channel: null,
            site: null,
            issuedBy: 'a',
            issuedAt: T0,
            expiresAt: T0 + 9,
            usedAt: null,
          });
          const uses = await Promise.all([
            store.consoles.useToken(`t${round}`, T0, 'c1'),
            node2.consoles.useToken(`t${round}`, T0, 'c2'),
          ]);
          assert.equal(uses.filter(Boolean).length, 1);
          await store.operators.insertCode({
            hash: `code${round}`,
            operatorId: 'op1',
            issuedBy: 'a',
            issuedAt: T0,
            expiresAt: T0 + 9,
            usedAt: null,
          });
          const codes = await Promise.all([
            store.operators.useCode(`code${round}`, T0, 'x'),
            node2.operators.useCode(`code${round}`, T0, 'y'),
          ]);
          assert.equal(codes.filter(Boolean).length, 1);
        }
      } finally {
        await done();
      }
    });

    it('a unit of work commits whole or not at all; transaction on tx runs inline', async () => {
      await fresh();
      try {
        await assert.rejects(
          store.transaction(async (tx) => {
            await tx.consoles.insert(consoleRecord('c1'));
            await tx.transaction((inner) => inner.meta.set('k', 'v'));
            await tx.revocations.insert({
              kind: 'console',
              targetId: 'c1',
              operatorId: null,
              consoleId: 'c1',
              reason: 'r',
              actor: 'a',
              at: T0,
            });
            throw new Error('boom');
          }),
          /boom/,
        );
        assert.equal(await store.consoles.get('c1'), undefined);
        assert.equal(await store.meta.get('k'), undefined);
        assert.equal(await store.revocations.currentEpoch(), 0);
        const result = await store.transaction(async (tx) => {
          await tx.consoles.insert(consoleRecord('c1'));
          const inner = await tx.transaction(async (same) => {
            await same.meta.set('k', 'v');
            return (
              await same.revocations.insert({
                kind: 'console',
                targetId: 'c1',
                operatorId: null,
                consoleId: 'c1',
                reason: 'r',
                actor: 'a',
                at: T0,
              })
            ).epoch;
          });
          return inner;
        });
        assert.equal(result, 1, 'the rolled-back revocation left no gap');
        assert.equal((await store.consoles.get('c1'))?.id, 'c1');
        assert.equal(await store.meta.get('k'), 'v');
      } finally {
        await done();
      }
    });

    it('a store bound to a unit of work refuses every statement once the unit has committed or rolled back', async () => {
      await fresh();
      try {
        const ended = /after that unit committed or rolled back/;
        let committed: Store | undefined;
        await store.transaction(async (tx) => {
          committed = tx;
          await tx.meta.set('k', 'v');
        });
        let rolledBack: Store | undefined;
        await assert.rejects(
          store.transaction(async (tx) => {
            rolledBack = tx;
            await tx.meta.set('r', 'v');
            throw new Error('boom');
          }),
          /boom/,
        );
        for (const leaked of [committed, rolledBack]) {
          assert.ok(leaked !== undefined);
          // Writes through every kind of repository (Kysely and, on the embedded engine, hand-written).
          await assert.rejects(leaked.meta.set('leaked', 'v'), ended);
          await assert.rejects(leaked.consoles.insert(consoleRecord('leaked')), ended);
          await assert.rejects(leaked.events.setHead('leaked', { lastSeq: 1, lastHash: 'h' }), ended);
          await assert.rejects(leaked.events.lockHead('leaked'), ended);
          await assert.rejects(
            leaked.ephemeral.put({ kind: 'challenge', key: 'leaked', owner: 'o', value: 'v', expiresAt: T0 }),
            ended,
          );
          await assert.rejects(leaked.ephemeral.claimOnce('nonce', 'leaked', T0 + 10, T0), ended);
          await assert.rejects(
            leaked.transaction((inner) => inner.meta.set('leaked', 'v')),
            ended,
          );
        }
        // Nothing of it ran outside a transaction either.
        assert.equal(await store.meta.get('leaked'), undefined);
        assert.equal(await store.consoles.get('leaked'), undefined);
        assert.equal(await store.events.head('leaked'), undefined);
        assert.equal(await store.ephemeral.take('challenge', 'leaked'), undefined);
        assert.equal(await store.ephemeral.claimOnce('nonce', 'leaked', T0 + 10, T0), true);
        assert.equal(await store.meta.get('k'), 'v');
        assert.equal(await store.meta.get('r'), undefined);
      } finally {
        await done();
      }
    });

    it('re-runs a unit rolled back by a deadlock or serialization failure (PostgreSQL) up to 3 times, then BACKEND_BUSY', async () => {
      await fresh();
      try {
        for (const code of ['40P01', '40001']) {
          let attempts = 0;
          const failing = store.transaction(async (tx) => {
            attempts++;
            await tx.meta.set(`attempt-${code}`, String(attempts));
            throw Object.assign(new Error(`simulated ${code}`), { code });
          });
          if (store.engine === 'postgres') {
            await assert.rejects(failing, (error: unknown) => {
              assert.ok(error instanceof BatonError);
              assert.equal(error.code, 'BACKEND_BUSY');
              assert.equal(error.status, 503);
              return true;
            });
            assert.equal(attempts, 4, 'the first run and 3 re-runs');
          } else {
            // SQLite has one writer: a unit never deadlocks, and nothing is re-run.
            await assert.rejects(failing, new RegExp(`simulated ${code}`));
            assert.equal(attempts, 1);
          }
          assert.equal(await store.meta.get(`attempt-${code}`), undefined, 'every attempt rolled back');
        }
        // A unit that fails once and then succeeds commits once, with the state of its last run.
        let attempts = 0;
        const result = await store.transaction(async (tx) => {
          attempts++;
          await tx.meta.set('run', String(attempts));
          if (attempts === 1 && store.engine === 'postgres') {
            throw Object.assign(new Error('simulated deadlock'), { code: '40P01' });
          }
          return attempts;
        });
        assert.equal(result, store.engine === 'postgres' ? 2 : 1);
        assert.equal(await store.meta.get('run'), String(result));
      } finally {
        await done();
      }
    });

    it('validates values read back: a corrupted enum is an error, not a trusted value', async () => {
      await fresh();
      try {
        await opened.raw(
          `INSERT INTO revocations (epoch, kind, target_id, reason, actor, created_at) VALUES (1, 'everything', 'x', 'r', 'a', 1)`,
        );
        await assert.rejects(store.revocations.since(0), /unknown value/);
      } finally {
        await done();
      }
    });
  });
}

async function pgRows<T extends pg.QueryResultRow>(url: string, sql: string, values: unknown[] = []): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(sql, values)).rows;
  } finally {
    await client.end();
  }
}

describe('PostgreSQL engine: several nodes on one database', { skip: pgSkip }, () => {
  it('three nodes opening a fresh database together apply each migration once', async () => {
    const url = await freshPostgresUrl();
    const stores = await Promise.all([1, 2, 3].map(() => openPostgresStore({ url, poolSize: 2 })));
    try {
      const rows = await pgRows<{ version: number; n: string }>(
        url,
        'SELECT version, COUNT(*) AS n FROM schema_migrations GROUP BY version ORDER BY version',
      );
      assert.deepEqual(
        rows.map((r) => [r.version, Number(r.n)]),
        POSTGRES_MIGRATIONS.map((m) => [m.version, 1]),
      );
      assert.equal((await stores[2]?.consoles.list())?.length, 0);
    } finally {
      for (const store of stores) await store.close();
    }
  });

  it('has the same tables and columns as the SQLite schema after the last migration', async () => {
    const url = await freshPostgresUrl();
    await (await openPostgresStore({ url })).close();
    // PostgreSQL's own: the migration bookkeeping, and the revocation epoch counter (SQLite's one writer
    // hands out epochs by its rowid), which migrate-store leaves alone (the next revocation on the copy
    // still takes the epoch after the copied ones: test/integration/migrate-store.test.ts).
    const pgColumns = await pgRows<{ table_name: string; column_name: string }>(
      url,
      `SELECT table_name, column_name FROM information_schema.columns
       WHERE table_schema = 'public' AND table_name NOT IN ('schema_migrations', 'revocation_epoch')`,
    );
    const dir = tempDir('baton-schema-');
    await openSqliteStore({ dataDir: dir, durability: 'normal' }).close();
    const db = new Database(join(dir, DATABASE_FILE), { readonly: true });
    const tables = db
      .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
      .all() as { name: string }[];
    const sqliteColumns = tables.flatMap(({ name }) =>
      (db.prepare(`SELECT name FROM pragma_table_info(?)`).all(name) as { name: string }[]).map(
        (c) => `${name}.${c.name}`,
      ),
    );
    db.close();
    assert.deepEqual(pgColumns.map((c) => `${c.table_name}.${c.column_name}`).sort(), sqliteColumns.sort());
  });

  it('refuses a database written by a newer build', async () => {
    const url = await freshPostgresUrl(true);
    await (await openPostgresStore({ url })).close();
    await rawPostgres(url, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, 'future', 0)`);
    await assert.rejects(
      openPostgresStore({ url }),
      /The database is at schema version 999, newer than this build knows/,
    );
  });

  it('revocation epochs stay gapless and in commit order across nodes writing at once', async () => {
    const url = await freshPostgresUrl(true);
    const nodes = await Promise.all([1, 2, 3].map(() => openPostgresStore({ url, poolSize: 3 })));
    try {
      const revoke = (store: Store, i: number) =>
        store.revocations.insert({
          kind: 'console',
          targetId: `c${i}`,
          operatorId: null,
          consoleId: null,
          reason: 'r',
          actor: 'a',
          at: T0,
        });
      const writes = nodes.flatMap((node, n) =>
        Array.from({ length: 8 }, (_, i) =>
          i % 4 === 3
            ? node
                .transaction(async (tx) => {
                  await revoke(tx, i);
                  throw new Error('rolled back');
                })
                .catch(() => undefined)
            : revoke(node, n * 10 + i),
        ),
      );
      await Promise.all(writes);
      const epochs = (await nodes[0]!.revocations.since(0)).map((r) => r.epoch);
      assert.deepEqual(
        epochs,
        Array.from({ length: 18 }, (_, i) => i + 1),
      );
    } finally {
      for (const node of nodes) await node.close();
    }
  });

  it('lockHead holds a chain head for one transaction at a time, across nodes', async () => {
    const url = await freshPostgresUrl(true);
    const [a, b] = await Promise.all([openPostgresStore({ url }), openPostgresStore({ url })]);
    try {
      const order: string[] = [];
      let release!: () => void;
      const held = new Promise<void>((resolve) => (release = resolve));
      let locked!: () => void;
      const isLocked = new Promise<void>((resolve) => (locked = resolve));
      const first = a!.transaction(async (tx) => {
        const head = await tx.events.lockHead('backend');
        locked();
        await held;
        order.push('a');
        await tx.events.setHead('backend', { lastSeq: head.lastSeq + 1, lastHash: 'a'.repeat(64) });
      });
      await isLocked;
      const second = b!.transaction(async (tx) => {
        const head = await tx.events.lockHead('backend');
        order.push('b');
        await tx.events.setHead('backend', { lastSeq: head.lastSeq + 1, lastHash: 'b'.repeat(64) });
        return head;
      });
      await new Promise((resolve) => setTimeout(resolve, 200));
      assert.deepEqual(order, [], 'node B waits for node A');
      release();
      await first;
      assert.deepEqual(await second, { lastSeq: 1, lastHash: 'a'.repeat(64) });
      assert.deepEqual(order, ['a', 'b']);
      assert.deepEqual(await a!.events.head('backend'), { lastSeq: 2, lastHash: 'b'.repeat(64) });
    } finally {
      await a?.close();
      await b?.close();
    }
  });

  it('a server that stops answering (a silent network): requests fail within seconds with DATABASE_UNREACHABLE, not hang', async () => {
    const target = new URL(await createDatabase(server!.url, 'silent', { migrated: true }));
    // A TCP relay to the server that can go silent: connections stay open, nothing gets through.
    let silent = false;
    const sockets = new Set<net.Socket>();
    const relay = net.createServer((client) => {
      const upstream = net.connect(Number(target.port), target.hostname);
      for (const [from, to] of [
        [client, upstream],
        [upstream, client],
      ] as const) {
        sockets.add(from);
        from.on('data', (chunk) => {
          if (!silent) to.write(chunk);
        });
        from.on('error', () => undefined);
        from.on('close', () => to.destroy());
      }
    });
    await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
    const url = new URL(target);
    url.hostname = '127.0.0.1';
    url.port = String((relay.address() as net.AddressInfo).port);
    const store = await openPostgresStore({ url: url.toString(), poolSize: 2 });
    try {
      await Promise.all([store.meta.set('k', 'before'), store.transaction((tx) => tx.meta.get('k'))]);
      silent = true;
      const failsFast = async (what: string, call: () => Promise<unknown>) => {
        const started = Date.now();
        const error = await call().then(
          () => assert.fail(`${what} succeeded through a silent network`),
          (e: unknown) => e,
        );
        const took = Date.now() - started;
        assert.ok(took < 8000, `${what} failed after ${took} ms, not within seconds`);
        assert.equal(storageFault(error)?.code, 'DATABASE_UNREACHABLE', `${what}: ${String(error)}`);
      };
      // A pooled connection (the query times out), then the pool's other one, then a new connection (connect timeout).
      await failsFast('a unit of work', () => store.transaction((tx) => tx.meta.set('k', 'during')));
      await failsFast('a read', () => store.meta.get('k'));
      await failsFast('another read', () => store.meta.get('k'));
      await failsFast('a unit of work on a new connection', () => store.transaction((tx) => tx.meta.get('k')));
    } finally {
      silent = false;
      for (const socket of sockets) socket.destroy();
      await store.close().catch(() => undefined);
      await new Promise((resolve) => relay.close(resolve));
    }
  });

  it('a server that crashes and comes back: calls fail fast meanwhile, then the same store works again', async () => {
    const own = await startPostgres();
    const poolErrors: Error[] = [];
    const store = await openPostgresStore({
      url: await createDatabase(own.url, 'crash', { migrated: true }),
      connectTimeoutMs: 1000,
      onPoolError: (error) => poolErrors.push(error),
    });
    try {
      await store.meta.set('k', 'before');
      await own.kill();
      const started = Date.now();
      await assert.rejects(store.meta.get('k'));
      await assert.rejects(store.transaction((tx) => tx.meta.set('k', 'during')));
      assert.ok(Date.now() - started < 5000, `failed after ${Date.now() - started} ms`);
      await own.restart();
      let value: string | undefined;
      const deadline = Date.now() + 10_000;
      for (;;) {
        try {
          value = await store.meta.get('k');
          break;
        } catch (error) {
          if (Date.now() > deadline) throw error;
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      }
      assert.equal(value, 'before', 'the committed value survived, the failed unit of work left nothing');
      await store.meta.set('k', 'after');
      assert.equal(await store.meta.get('k'), 'after');
    } finally {
      await store.close();
      await own.stop();
    }
  });

  it('keeps to its pool size, and close() ends the pool', async () => {
    const url = await freshPostgresUrl(true);
    const applicationName = 'baton_pool_check';
    const store = await openPostgresStore({ url, poolSize: 3, applicationName });
    const connections = async () =>
      Number(
        (
          await pgRows<{ n: string }>(url, 'SELECT COUNT(*) AS n FROM pg_stat_activity WHERE application_name = $1', [
            applicationName,
          ])
        )[0]?.n,
      );
    await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        store.transaction(async (tx) => {
          await tx.meta.set(`k${i}`, 'v');
          await new Promise((resolve) => setTimeout(resolve, 20));
        }),
      ),
    );
    const open = await connections();
    assert.ok(open >= 1 && open <= 3, `${open} connections`);
    await store.close();
    const deadline = Date.now() + 5000;
    while ((await connections()) > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.equal(await connections(), 0);
  });
});

describe('openStore chooses the engine', () => {
  it('embedded SQLite without a URL, PostgreSQL with a postgres:// URL', { skip: pgSkip }, async () => {
    const dataDir = tempDir('baton-open-');
    const sqlite = await openStore({ dataDir, durability: 'normal' });
    assert.equal(sqlite.engine, 'sqlite');
    await sqlite.close();
    const url = await freshPostgresUrl(true);
    const postgres = await openStore({
      dataDir,
      durability: 'normal',
      databaseUrl: url.replace(/^postgres:/, 'postgresql:'),
    });
    assert.equal(postgres.engine, 'postgres');
    await postgres.close();
  });

  it('an unreachable server or a wrong URL is DATABASE_UNREACHABLE, in one line, without the password', async () => {
    const dataDir = tempDir('baton-open-');
    for (const databaseUrl of [
      'postgres://baton:s3cret-pw@127.0.0.1:1/baton',
      'postgres://baton:s3cret-pw@/baton',
      'mysql://baton:s3cret-pw@127.0.0.1/baton',
      'postgres://baton:s3cret-pw@[::1/baton',
    ]) {
      const error = await openStore({ dataDir, durability: 'normal', databaseUrl }).then(
        () => assert.fail(`opened ${databaseUrl}`),
        (e: unknown) => e,
      );
      assert.ok(error instanceof BatonError, String(error));
      assert.equal(error.code, 'DATABASE_UNREACHABLE');
      assert.doesNotMatch(error.message, /s3cret/);
      assert.doesNotMatch(error.message, /\n/);
    }
  });
});
