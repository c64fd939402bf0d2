import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { RevocationKind } from '../../shared/protocol.js';
import { type Json, startTestBackend, TestConsole, type TestBackend } from '../helpers/backend-harness.js';
import { enrolOperator, signIn } from '../helpers/operator-flow.js';
import { createDatabase, postgresSkip, startPostgres, type PostgresServer } from '../helpers/postgres-server.js';
import type { OperatorRepository, SessionRepository, Store } from '../../backend/store/repositories.js';

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
  /** Runs once, inside node A's next unit of work, right after the named repository call returned. */
  let hook:
    | {
        after: 'sessions.insert' | 'operators.recordCredentialUse' | 'operators.recordAssertionUse';
        run: () => Promise<void>;
      }
    | undefined;

  before(async () => {
    server = await startPostgres();
    const databaseUrl = await createDatabase(server.url, 'baton_ceremony_race');
    nodeA = await startTestBackend({ databaseUrl });
    nodeB = await startTestBackend({ databaseUrl }, { adminToken: nodeA.admin.token });
    const store = nodeA.backend.services.store;
    const transaction = store.transaction.bind(store);
    store.transaction = <T>(fn: (tx: Store) => Promise<T>) =>
      transaction((tx) =>
        fn({ ...tx, sessions: hooked(tx.sessions, 'sessions'), operators: hooked(tx.operators, 'operators') }),
      );
  });

  after(async () => {
    await nodeB?.stop();
    await nodeA?.stop();
    await server?.stop();
  });

  function hooked<R extends SessionRepository | OperatorRepository>(repo: R, name: string): R {
    return new Proxy(repo, {
      get(target, property, receiver) {
        const value = Reflect.get(target, property, receiver) as unknown;
        if (typeof value !== 'function') return value;
        return async (...args: unknown[]) => {
          const result = (await (value as (...a: unknown[]) => Promise<unknown>).apply(target, args)) as unknown;
          if (hook !== undefined && hook.after === `${name}.${String(property)}`) {
            const { run } = hook;
            hook = undefined;
            await run();
          }
          return result;
        };
      },
    });
  }

  /** Starts a revocation on node B; reports whether it finished within 300 ms (it should wait for node A). */
  function revokeOnB(kind: RevocationKind, target: string) {
    const state = { revoked: undefined as Promise<unknown> | undefined, settledDuringUnit: false };
    const run = async () => {
      state.revoked = nodeB.backend.services.revocations.revoke(kind, target, 'race', 'test');
      void state.revoked.then(
        () => (state.settledDuringUnit = true),
        () => (state.settledDuringUnit = true),
      );
      await new Promise((resolve) => setTimeout(resolve, 300));
    };
    return { state, run };
  }

  for (const kind of ['operator', 'credential', 'console'] as const satisfies readonly RevocationKind[]) {
    it(`revokes the new session when the ${kind} is revoked on node B during node A's sign-in unit`, async () => {
      const console = await TestConsole.enrol(nodeA.url, nodeA.admin);
      const { operatorId, credentialId, authenticator } = await enrolOperator(nodeA.admin, console, {
        displayName: `Racing ${kind}`,
      });
      const target = kind === 'operator' ? operatorId : kind === 'credential' ? credentialId : console.id;
      const race = revokeOnB(kind, target);
      hook = { after: 'sessions.insert', run: race.run };
      const result = await signIn(console, authenticator);
      assert.equal(result.status, 200, 'the sign-in committed first');
      assert.equal(hook, undefined, 'the hook ran');
      assert.equal(race.state.settledDuringUnit, false, "node B's revocation waited for node A's unit to commit");
      await race.state.revoked;
      const sessionId = (result.body as Json).session.id as string;
      const stored = await nodeB.backend.services.store.sessions.get(sessionId);
      assert.equal(stored?.state, 'revoked', 'the revocation found the session the sign-in made');
    });
  }

  it("revokes the stepped-up session when the step-up's credential is revoked on node B during node A's step-up unit", async () => {
    const console = await TestConsole.enrol(nodeA.url, nodeA.admin);
    const { operatorId, authenticator } = await enrolOperator(nodeA.admin, console, { displayName: 'Racing step-up' });
    const { code } = (await nodeA.admin.ok('POST', `/v1/admin/operators/${operatorId}/enrolment-codes`, {})) as Json;
    const { options: creation } = (await console.ok('POST', '/v1/operators/enrol/options', { code })) as Json;
    const second = (await console.ok('POST', '/v1/operators/enrol/verify', {
      code,
      response: authenticator.register(creation),
    })) as Json;
    const firstKey = [...authenticator.credentials.keys()][0];
    const signedIn = await signIn(console, authenticator, { userVerified: false, credentialId: firstKey });
    const session = (signedIn.body as Json).session;
    const path = `/v1/sessions/${session.id as string}/step-up`;
    const { options } = (await console.ok('POST', `${path}/options`, { action: 'payment.approve' })) as Json;
    const response = authenticator.assert(options, { userVerified: true, credentialId: second.credential.id });
    const race = revokeOnB('credential', second.credential.id as string);
    // The step-up unit's first write (its counter; recordAssertionUse since issue 10's statement cut).
    hook = { after: 'operators.recordAssertionUse', run: race.run };
    const result = await console.request('POST', `${path}/verify`, { action: 'payment.approve', response });
    assert.equal(result.status, 200, 'the step-up committed first');
    assert.equal(hook, undefined, 'the hook ran');
    assert.equal(race.state.settledDuringUnit, false, "node B's revocation waited for node A's unit to commit");
    await race.state.revoked;
    const stored = await nodeB.backend.services.store.sessions.get(session.id as string);
    assert.equal(stored?.state, 'revoked', 'the revocation found the session now resting on that credential');
  });
});
