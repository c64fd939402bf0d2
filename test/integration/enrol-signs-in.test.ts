import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { BatonAgent } from '../../main/core/agent.js';
import { AgentRig, type SoftCeremonyPort } from '../helpers/agent-rig.js';
import { TEST_ORIGIN, type Json } from '../helpers/backend-harness.js';
import { SoftAuthenticator } from '../helpers/soft-authenticator.js';

/**
 * Issue 12, "Registering a key signs the operator in": the registration's one tap starts the
 * operator's session (no second tap), on the verified registration of that very key, at the level
 * its flags give and only where the channel's policy lets that level sign in; every step recorded.
 */
describe('registering a key signs the operator in', () => {
  let rig: AgentRig;
  let agent: BatonAgent;
  let port: SoftCeremonyPort;

  before(async () => {
    rig = await AgentRig.start();
    ({ agent, port } = await rig.agent({ channel: 'branch-kiosk' }));
  });
  after(() => rig.stop());

  async function newCode(name: string): Promise<{ id: string; code: string }> {
    const { operator } = (await rig.backend.admin.ok('POST', '/v1/admin/operators', {
      displayName: name,
      roles: ['teller'],
    })) as Json;
    const { code } = (await rig.backend.admin.ok(
      'POST',
      `/v1/admin/operators/${operator.id as string}/enrolment-codes`,
      {},
    )) as Json;
    return { id: operator.id as string, code: code as string };
  }

  async function backendSessions(operatorId: string): Promise<Json[]> {
    const { sessions } = (await rig.backend.admin.ok('GET', '/v1/admin/sessions?limit=500')) as Json;
    return (sessions as Json[]).filter((s) => s.operatorId === operatorId);
  }

  test('one tap registers the key and brings the operator’s own session to the front, recorded on the backend', async () => {
    const ada = await newCode('Ada Teller');
    const key = new SoftAuthenticator(TEST_ORIGIN);
    port.tap(key);
    const enrolled = await agent.enrolOperator(ada.code);
    assert.equal(enrolled.signedIn, true);
    assert.equal(enrolled.signInRefused, undefined);

    const front = agent.status.front;
    assert.equal(front?.operatorName, 'Ada Teller');
    assert.equal(front?.state, 'active');
    assert.equal(agent.status.locked, false, 'her workspace is in front, not the lock screen');
    assert.equal(front?.level, 'verified', 'the level of what the registration proved (user verification)');

    // The backend's session is that one, resting on the key just registered.
    const [session] = await backendSessions(ada.id);
    assert.equal(session?.id, front?.id);
    assert.equal(session?.state, 'active');
    const [credential] = ((await rig.backend.admin.ok('GET', `/v1/admin/operators/${ada.id}`)) as Json)
      .credentials as Json[];
    assert.ok(credential !== undefined);
    assert.notEqual(credential.lastUsedAt, null, 'the key is used by the registration that signed her in');

    // Recorded: the key, the enrolment, then the session on that key, in this order on the backend's chain.
    const events = (await rig.events({ operator: ada.id })).map((e) => ({
      type: e.type,
      reasons: e.reasons,
      credential: e.subject.credential,
    }));
    const types: string[] = events.map((e) => e.type);
    const at = (type: string) => types.indexOf(type);
    assert.ok(at('credential-change') >= 0 && at('credential-change') < at('operator-enrolled'), types.join());
    assert.ok(at('operator-enrolled') < at('session-established'), types.join());
    const established = events[at('session-established')];
    assert.deepEqual(established?.reasons, ['sign-in-allowed', 'operator-enrolled']);
    assert.equal(established?.credential, credential.id);

    // The session's console token works: the next action needs no tap.
    const allowed = await agent.authorize('customer.view');
    assert.equal(allowed.outcome, 'allow');

    // Her next tap opens that same session, not a second one.
    port.tap(key);
    const again = await agent.tapIn();
    assert.equal(again.id, front?.id);
    assert.equal((await backendSessions(ada.id)).length, 1);
  });

  test('a newcomer registering while someone is in front gets their own session; the other waits, suspended', async () => {
    const adaSession = agent.status.front;
    assert.equal(adaSession?.operatorName, 'Ada Teller');
    agent.lock();
    const ben = await newCode('Ben Clerk');
    port.tap(new SoftAuthenticator(TEST_ORIGIN));
    assert.equal((await agent.enrolOperator(ben.code)).signedIn, true);
    assert.equal(agent.status.front?.operatorName, 'Ben Clerk');
    assert.notEqual(agent.status.front?.id, adaSession?.id);
    assert.equal(agent.status.sessions.find((s) => s.id === adaSession?.id)?.state, 'suspended');
    const [backendAda] = await backendSessions(adaSession?.operatorId ?? '');
    assert.equal(backendAda?.state, 'suspended');
  });

  test('a level the channel does not let sign in registers the key and starts no session, and says why', async () => {
    const { agent: shared, port: sharedPort } = await rig.agent({ channel: 'shared-console' });
    const cy = await newCode('Cy Presence');
    // A plain touch (no PIN or fingerprint): presence, which shared-console does not accept for sign-in.
    sharedPort.tap(new SoftAuthenticator(TEST_ORIGIN, { userVerified: false }));
    const enrolled = await shared.enrolOperator(cy.code);
    assert.equal(enrolled.signedIn, false);
    assert.equal(enrolled.signInRefused?.code, 'LEVEL_NOT_ALLOWED_ON_CHANNEL');
    assert.equal(shared.status.front, undefined);
    assert.equal(shared.status.locked, true);
    assert.deepEqual(await backendSessions(cy.id), []);
    const credentials = ((await rig.backend.admin.ok('GET', `/v1/admin/operators/${cy.id}`)) as Json)
      .credentials as Json[];
    assert.equal(credentials.length, 1, 'the key is registered all the same');
    const failed = await rig.events({ type: 'sign-in-failed', operator: cy.id });
    assert.deepEqual(
      failed.map((e) => [e.reasons, e.assurance?.level]),
      [[['level-not-allowed-on-channel'], 'presence']],
    );
  });

  test('a registration that does not ask for a session starts none (a key provisioned ahead)', async () => {
    const before = agent.status.front?.id;
    const dee = await newCode('Dee Ahead');
    port.tap(new SoftAuthenticator(TEST_ORIGIN));
    const enrolled = await agent.enrolOperator(dee.code, { signIn: false });
    assert.equal(enrolled.signedIn, false);
    assert.equal(agent.status.front?.id, before);
    assert.deepEqual(await backendSessions(dee.id), []);
  });

  test('an operator revoked while the key was being touched gets neither the key nor a session', async () => {
    const eve = await newCode('Eve Revoked');
    const key = new SoftAuthenticator(TEST_ORIGIN);
    // The admin revokes Eve between the options and the verification (during her touch).
    port.tap(key);
    const original = port.createCredential.bind(port);
    port.createCredential = async (request) => {
      await rig.backend.admin.ok('POST', `/v1/admin/operators/${eve.id}/revoke`, { reason: 'left the bank' });
      return original(request);
    };
    try {
      const refused = await agent.enrolOperator(eve.code).then(
        () => undefined,
        (error: unknown) => error as { code?: string },
      );
      assert.equal(refused?.code, 'OPERATOR_REVOKED');
    } finally {
      port.createCredential = original;
    }
    assert.notEqual(agent.status.front?.operatorName, 'Eve Revoked');
    assert.deepEqual(await backendSessions(eve.id), []);
    const credentials = ((await rig.backend.admin.ok('GET', `/v1/admin/operators/${eve.id}`)) as Json)
      .credentials as Json[];
    assert.deepEqual(credentials, []);
  });
});
