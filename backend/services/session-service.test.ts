import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { RevocationKind } from '../../shared/protocol.js';
import { type Json, startTestBackend, TestConsole, type TestBackend } from '../../test/helpers/backend-harness.js';
import { enrolOperator, signIn } from '../../test/helpers/operator-flow.js';
import { createDatabase, postgresSkip, startPostgres, type PostgresServer } from '../store/postgres-throwaway.js';
import type { SessionRecord, SessionRepository, Store } from '../store/repositories.js';

/**
 * Sign-in's revocation re-check runs inside the unit of work that creates the session. A revocation
 * committed on another node while that unit is open must not miss the new session: it waits for the
 * sign-in to commit (the unit's first writes hold the rows it updates), then finds and revokes it.
 * Two backends on one PostgreSQL database are the two nodes (SQLite serialises whole units, and two
 * in-process connections to one SQLite file would block each other's thread).
 */
describe('sign-in against a revocation committed on another node meanwhile', { skip: postgresSkip() }, () => {
  let server: PostgresServer;
  let nodeA: TestBackend;
  let nodeB: TestBackend;
  /** Runs once, inside node A's next unit of work, right after it inserted a session. */
  let onInsert: (() => Promise<void>) | undefined;

  before(async () => {
    server = await startPostgres();
    const databaseUrl = await createDatabase(server.url, 'baton_signin_race', { migrated: true });
    nodeA = await startTestBackend({ databaseUrl });
    nodeB = await startTestBackend({ databaseUrl }, { adminToken: nodeA.admin.token });
    const store = nodeA.backend.services.store;
    const transaction = store.transaction.bind(store);
    store.transaction = <T>(fn: (tx: Store) => Promise<T>) =>
      transaction((tx) => fn({ ...tx, sessions: hooked(tx.sessions) }));
  });

  after(async () => {
    await nodeB?.stop();
    await nodeA?.stop();
    await server?.stop();
  });

  function hooked(sessions: SessionRepository): SessionRepository {
    return new Proxy(sessions, {
      get(target, property, receiver) {
        if (property !== 'insert') return Reflect.get(target, property, receiver) as unknown;
        return async (record: SessionRecord) => {
          await target.insert(record);
          const hook = onInsert;
          onInsert = undefined;
          await hook?.();
        };
      },
    });
  }

  for (const kind of ['operator', 'credential', 'console'] as const satisfies readonly RevocationKind[]) {
    it(`revokes the new session when the ${kind} is revoked on node B during node A's sign-in unit`, async () => {
      const console = await TestConsole.enrol(nodeA.url, nodeA.admin);
      const { operatorId, credentialId, authenticator } = await enrolOperator(nodeA.admin, console, {
        displayName: `Racing ${kind}`,
      });
      const target = kind === 'operator' ? operatorId : kind === 'credential' ? credentialId : console.id;
      let revoked: Promise<unknown> | undefined;
      let settledDuringUnit = false;
      onInsert = async () => {
        revoked = nodeB.backend.services.revocations.revoke(kind, target, 'race', 'test');
        void revoked.then(
          () => (settledDuringUnit = true),
          () => (settledDuringUnit = true),
        );
        await new Promise((resolve) => setTimeout(resolve, 300));
      };
      const result = await signIn(console, authenticator);
      assert.equal(result.status, 200, 'the sign-in committed first');
      assert.equal(onInsert, undefined, 'the hook ran');
      assert.equal(settledDuringUnit, false, "node B's revocation waited for node A's unit to commit");
      await revoked;
      const sessionId = (result.body as Json).session.id as string;
      const stored = await nodeB.backend.services.store.sessions.get(sessionId);
      assert.equal(stored?.state, 'revoked', 'the revocation found the session the sign-in made');
    });
  }
});
