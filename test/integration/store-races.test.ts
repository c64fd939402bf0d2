import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { BatonError } from '../../shared/errors.js';
import { SIGNATURE_WINDOW_MS } from '../../shared/console-auth.js';
import { NONCE_KIND } from '../../backend/crypto/console-signature.js';
import { KEY_ENCRYPTION_KEY_FILE } from '../../backend/crypto/key-encryption-key.js';
import { EPHEMERAL_SKEW_MARGIN_MS } from '../../backend/store/kysely-revocations.js';
import type { OperatorRepository, SessionRepository, Store } from '../../backend/store/repositories.js';
import { TestConsole, assertError, startTestBackend, type Json, type TestBackend } from '../helpers/backend-harness.js';
import { enrolOperator, signIn } from '../helpers/operator-flow.js';
import { AdminBrowser } from '../helpers/admin-session.js';
import { createDatabase, postgresSkip, startPostgres, type PostgresServer } from '../helpers/postgres-server.js';

/**
 * Races that only show with several nodes on one PostgreSQL database (found in the security review
 * of the cluster code): lock order between units of work (a deadlock, 40P01, instead of one waiting
 * for the other), the signature counter advanced by a read-then-write, and the ephemeral store swept
 * on a node's own clock. Two backends on one database are the two nodes; a unit of work on node A is
 * held open at a chosen point until node B's competing unit is seen waiting for a lock
 * (pg_stat_activity), so the interleaving is the same on every run.
 */
describe('races between nodes on one PostgreSQL database', { skip: postgresSkip() }, () => {
  let server: PostgresServer;
  let admin: pg.Client;
  let dbCount = 0;

  before(async () => {
    server = await startPostgres();
    admin = new pg.Client({ connectionString: server.url });
    await admin.connect();
  });

  after(async () => {
    await admin?.end();
    await server?.stop();
  });

  /** Runs once, inside node A's next unit of work, right after the first of the named repository calls returned. */
  type Hook = { after: readonly string[]; run: () => Promise<void> };

  interface TwoNodes {
    name: string;
    nodeA: TestBackend;
    nodeB: TestBackend;
    setHook(hook: Hook): void;
    hookRan(): boolean;
    /** Resolves once some session of this database waits for a lock (node B's unit, blocked by node A's). */
    someoneWaits(): Promise<void>;
    /** Stops both nodes (their connections end, which flushes their statistics) and returns the deadlocks counted. */
    stopAndCountDeadlocks(): Promise<number>;
  }

  async function twoNodes(): Promise<TwoNodes> {
    const name = `baton_races_${++dbCount}`;
    const databaseUrl = await createDatabase(server.url, name);
    const nodeA = await startTestBackend({ databaseUrl });
    // A node of the same cluster: the key-encryption key of node A's data directory (ADR 0006).
    const dirB = mkdtempSync(join(tmpdir(), 'baton-race-b-'));
    copyFileSync(join(nodeA.dataDir, KEY_ENCRYPTION_KEY_FILE), join(dirB, KEY_ENCRYPTION_KEY_FILE));
    const nodeB = await startTestBackend({ databaseUrl, dataDir: dirB }, { adminToken: nodeA.admin.token });
    let hook: Hook | undefined;
    const hooked = <R extends SessionRepository | OperatorRepository>(repo: R, repoName: string): R =>
      new Proxy(repo, {
        get(target, property, receiver) {
          const value = Reflect.get(target, property, receiver) as unknown;
          if (typeof value !== 'function') return value;
          return async (...args: unknown[]) => {
            const result = (await (value as (...a: unknown[]) => Promise<unknown>).apply(target, args)) as unknown;
            if (hook?.after.includes(`${repoName}.${String(property)}`) === true) {
              const { run } = hook;
              hook = undefined;
              await run();
            }
            return result;
          };
        },
      });
    const store = nodeA.backend.services.store;
    const transaction = store.transaction.bind(store);
    // The transaction's own store object is hooked (not a copy): the cluster bus finds its connection by it.
    store.transaction = <T>(fn: (tx: Store) => Promise<T>) =>
      transaction((tx) => {
        tx.sessions = hooked(tx.sessions, 'sessions');
        tx.operators = hooked(tx.operators, 'operators');
        return fn(tx);
      });
    return {
      name,
      nodeA,
      nodeB,
      setHook: (h) => (hook = h),
      hookRan: () => hook === undefined,
      async someoneWaits() {
        const deadline = Date.now() + 15_000;
        for (;;) {
          const { rows } = await admin.query<{ n: string }>(
            "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'",
            [name],
          );
          if (Number(rows[0]?.n) > 0) return;
          if (Date.now() > deadline) throw new Error('node B never waited for a lock held by node A');
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
      },
      async stopAndCountDeadlocks() {
        await nodeB.stop();
        await nodeA.stop();
        rmSync(dirB, { recursive: true, force: true });
        await admin.query('SELECT pg_stat_clear_snapshot()');
        const { rows } = await admin.query<{ deadlocks: string }>(
          'SELECT deadlocks FROM pg_stat_database WHERE datname = $1',
          [name],
        );
        return Number(rows[0]?.deadlocks ?? 0);
      },
    };
  }

  it('two nodes advancing the same credential to the same counter at once: exactly one succeeds', async () => {
    const nodes = await twoNodes();
    try {
      const kiosk = await TestConsole.enrol(nodes.nodeA.url, nodes.nodeA.admin);
      const { credentialId } = await enrolOperator(nodes.nodeA.admin, kiosk, { displayName: 'Counter' });
      const storeA = nodes.nodeA.backend.services.store;
      const storeB = nodes.nodeB.backend.services.store;
      for (let counter = 1; counter <= 10; counter++) {
        const results = await Promise.allSettled([
          storeA.transaction((tx) => tx.operators.recordCredentialUse(credentialId, counter, Date.now())),
          storeB.transaction((tx) => tx.operators.recordCredentialUse(credentialId, counter, Date.now())),
        ]);
        assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1, `counter ${counter}: one wins`);
        const lost = results.find((r) => r.status === 'rejected');
        assert.ok(lost?.reason instanceof BatonError, 'the loser is refused with a stable code');
        assert.equal(lost.reason.code, 'WEBAUTHN_COUNTER_REGRESSED');
        assert.equal((await storeB.operators.getCredential(credentialId))?.counter, counter);
      }
    } finally {
      await nodes.stopAndCountDeadlocks();
    }
  });

  it('a cloned key signing in on node B while node A signs in with the same counter: one session, the copy refused and the passkey suspended', async () => {
    const nodes = await twoNodes();
    try {
      const kioskA = await TestConsole.enrol(nodes.nodeA.url, nodes.nodeA.admin);
      const kioskOther = await TestConsole.enrol(nodes.nodeA.url, nodes.nodeA.admin);
      const kioskB = new TestConsole(nodes.nodeB.url, kioskOther.key, kioskOther.id);
      const { credentialId, authenticator } = await enrolOperator(nodes.nodeA.admin, kioskA, { displayName: 'Clone' });
      assert.equal((await signIn(kioskA, authenticator, { counter: 5 })).status, 200);
      // Both assertions carry counter 6, as a key and its copy would: each verifies against the stored 5.
      let copy: Promise<Awaited<ReturnType<typeof signIn>>> | undefined;
      nodes.setHook({
        // The sign-in unit's first write (its counter; recordAssertionUse since issue 10's statement cut).
        after: ['operators.recordCredentialUse', 'operators.recordAssertionUse'],
        run: async () => {
          copy = signIn(kioskB, authenticator, { counter: 6 });
          copy.catch(() => undefined);
          await nodes.someoneWaits();
        },
      });
      const original = await signIn(kioskA, authenticator, { counter: 6 });
      assert.ok(nodes.hookRan(), 'the copy was sent while the original held its unit of work open');
      assert.equal(original.status, 200, 'the first to commit signs in');
      const refused = await copy;
      assert.ok(refused !== undefined);
      assertError(refused, 403, 'WEBAUTHN_COUNTER_REGRESSED');
      const credential = await nodes.nodeB.backend.services.store.operators.getCredential(credentialId);
      assert.equal(credential?.counter, 6);
      assert.equal(credential?.suspendedReason, 'possible-cloned-authenticator', 'suspended as a cloned key is');
      const events = await nodes.nodeB.backend.services.store.events.query({
        type: 'credential-counter-regressed',
        limit: 10,
      });
      assert.equal(events.length, 1, 'the possible clone is recorded once');
    } finally {
      await nodes.stopAndCountDeadlocks();
    }
  });

  it('a step-up on node A and a sign-in on node B with the same passkey on the same console complete without a deadlock', async () => {
    const nodes = await twoNodes();
    let deadlocks = -1;
    try {
      const kioskA = await TestConsole.enrol(nodes.nodeA.url, nodes.nodeA.admin);
      const kioskB = new TestConsole(nodes.nodeB.url, kioskA.key, kioskA.id);
      const { authenticator } = await enrolOperator(nodes.nodeA.admin, kioskA, { displayName: 'Step-up' });
      const signedIn = await signIn(kioskA, authenticator, { userVerified: false });
      const session = (signedIn.body as Json).session;
      const path = `/v1/sessions/${session.id as string}/step-up`;
      const { options } = (await kioskA.ok('POST', `${path}/options`, { action: 'payment.approve' })) as Json;
      const stepUpResponse = authenticator.assert(options, { userVerified: true });
      const { options: signInOptions } = (await kioskB.ok('POST', '/v1/sign-in/options', {})) as Json;
      const signInResponse = authenticator.assert(signInOptions, {});
      let other: Promise<Awaited<ReturnType<typeof signIn>>> | undefined;
      nodes.setHook({
        // The step-up unit's first lock, whichever it takes first.
        after: ['operators.recordCredentialUse', 'operators.recordAssertionUse', 'sessions.update'],
        run: async () => {
          other = kioskB.request('POST', '/v1/sign-in/verify', { response: signInResponse });
          other.catch(() => undefined);
          await nodes.someoneWaits();
        },
      });
      const steppedUp = await kioskA.request('POST', `${path}/verify`, {
        action: 'payment.approve',
        response: stepUpResponse,
      });
      assert.ok(nodes.hookRan());
      assert.equal(steppedUp.status, 200, JSON.stringify(steppedUp.body));
      const resumed = await other;
      assert.equal(resumed?.status, 200, JSON.stringify(resumed?.body));
      assert.equal((resumed?.body as Json).session.id, session.id, 'the sign-in resumed the stepped-up session');
    } finally {
      deadlocks = await nodes.stopAndCountDeadlocks();
    }
    assert.equal(deadlocks, 0, 'no deadlock was detected (and retried) by PostgreSQL');
  });

  it('revoking an operator on node B while another operator signs in on node A where the first has a session: no deadlock', async () => {
    const nodes = await twoNodes();
    let deadlocks = -1;
    try {
      const kiosk = await TestConsole.enrol(nodes.nodeA.url, nodes.nodeA.admin);
      const first = await enrolOperator(nodes.nodeA.admin, kiosk, { displayName: 'Revoked' });
      const second = await enrolOperator(nodes.nodeA.admin, kiosk, { displayName: 'Signing in' });
      const firstSession = (await signIn(kiosk, first.authenticator)).body as Json;
      let revoked: Promise<unknown> | undefined;
      nodes.setHook({
        // The sign-in unit has locked the console's live sessions (the first operator's among them).
        after: ['sessions.liveOnConsole'],
        run: async () => {
          revoked = nodes.nodeB.backend.services.revocations.revoke('operator', first.operatorId, 'race', 'test');
          revoked.catch(() => undefined);
          await nodes.someoneWaits();
        },
      });
      const signedIn = await signIn(kiosk, second.authenticator);
      assert.ok(nodes.hookRan());
      assert.equal(signedIn.status, 200, JSON.stringify(signedIn.body));
      const outcome = (await revoked) as { sessionsRevoked: string[] };
      assert.deepEqual(outcome.sessionsRevoked, [firstSession.session.id as string]);
      const stored = await nodes.nodeB.backend.services.store.sessions.get(firstSession.session.id as string);
      assert.equal(stored?.state, 'revoked');
    } finally {
      deadlocks = await nodes.stopAndCountDeadlocks();
    }
    assert.equal(deadlocks, 0, 'no deadlock was detected (and retried) by PostgreSQL');
  });

  it('a bootstrap-minted code asked for on node B while node A registers the first admin passkey is refused, not left alive', async () => {
    const nodes = await twoNodes();
    try {
      const first = await nodes.nodeA.admin.ok('POST', '/v1/admin/bootstrap', { id: 'alice', displayName: 'Alice' });
      const alice = new AdminBrowser(nodes.nodeA.url, nodes.nodeA.backend.adminOrigin);
      const { options } = await alice.ok('POST', '/v1/admin/auth/register/options', { code: first.code });
      const response = alice.authenticator.register(options);
      let late: Promise<Awaited<ReturnType<TestBackend['admin']['request']>>> | undefined;
      nodes.setHook({
        // The registration holds the chain head and its code: the bootstrap request on B was authenticated before it commits.
        after: ['operators.useCode'],
        run: async () => {
          late = nodes.nodeB.admin.request('POST', '/v1/admin/bootstrap', { id: 'mallory', displayName: 'Mallory' });
          late.catch(() => undefined);
          await nodes.someoneWaits();
        },
      });
      const registered = await alice.request('POST', '/v1/admin/auth/register/verify', {
        code: first.code,
        response,
      });
      assert.ok(nodes.hookRan());
      assert.equal(registered.status, 201, JSON.stringify(registered.body));
      const refused = await late;
      assert.ok(refused !== undefined);
      assertError(refused, 401, 'ADMIN_BOOTSTRAP_DISABLED');
      const live = await nodes.nodeB.backend.services.store.admin.listCodes('mallory');
      assert.deepEqual(
        live.filter((c) => c.usedAt === null && c.revokedAt === null),
        [],
        'no bootstrap-minted code outlives the retirement',
      );
    } finally {
      await nodes.stopAndCountDeadlocks();
    }
  });

  it('two nodes creating an operator with the same id at once: one creates it, the other is told the id is taken', async () => {
    const nodes = await twoNodes();
    try {
      let second: Promise<Awaited<ReturnType<TestBackend['admin']['request']>>> | undefined;
      nodes.setHook({
        after: ['operators.get'],
        run: async () => {
          second = nodes.nodeB.admin.request('POST', '/v1/admin/operators', { id: 'op-same', displayName: 'B' });
          second.catch(() => undefined);
          await nodes.someoneWaits();
        },
      });
      const first = await nodes.nodeA.admin.request('POST', '/v1/admin/operators', { id: 'op-same', displayName: 'A' });
      assert.ok(nodes.hookRan());
      assert.equal(first.status, 201, JSON.stringify(first.body));
      const taken = await second;
      assert.ok(taken !== undefined);
      assertError(taken, 409, 'OPERATOR_ID_TAKEN');
    } finally {
      await nodes.stopAndCountDeadlocks();
    }
  });

  it('a node whose clock runs minutes ahead sweeps no request nonce the other nodes still need', async () => {
    const nodes = await twoNodes();
    try {
      const storeA = nodes.nodeA.backend.services.store;
      const storeB = nodes.nodeB.backend.services.store;
      const skewedB = () => Date.now() + 5 * 60_000;
      const signedAt = Date.now() - 1000;
      const expiresAt = signedAt + SIGNATURE_WINDOW_MS + 1;
      assert.equal(await storeA.ephemeral.claimOnce(NONCE_KIND, 'n1', expiresAt, Date.now()), true);
      await storeB.ephemeral.sweep(skewedB());
      assert.equal(
        await storeA.ephemeral.claimOnce(NONCE_KIND, 'n1', expiresAt, Date.now()),
        false,
        'node A still refuses the replayed nonce after node B swept',
      );
      // What is really expired (by the database's clock, past the margin) is still swept.
      assert.equal(
        await storeA.ephemeral.claimOnce(NONCE_KIND, 'old', Date.now() - EPHEMERAL_SKEW_MARGIN_MS - 1, 0),
        true,
      );
      assert.equal(await storeB.ephemeral.sweep(skewedB()), 1);
    } finally {
      await nodes.stopAndCountDeadlocks();
    }
  });
});
