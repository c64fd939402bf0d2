import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { rejectsWithCode, withAgentConsole, type RigOperator } from '../helpers/agent-rig.js';

/**
 * Offline, the agent verifies a resume tap itself against the cached key. A refused tap must carry the
 * same stable code the backend gives the same cause (one mapping, shared/webauthn-errors.ts), not a
 * catch-all WEBAUTHN_VERIFICATION_FAILED, and must resume nothing.
 */
describe('offline resume refusals carry the backend’s codes', () => {
  const f = withAgentConsole('contact-centre', ['Lu', 'Mo'], { proxy: true });

  test('a tap without a touch, a wrong ceremony type and a lagging copy are each named', async () => {
    const { agent, port, rig, proxy } = f;
    assert.ok(proxy);
    const [lu, mo] = f.ops as [RigOperator, RigOperator];
    await rig.until(agent, (s) => s.connection === 'online', 'online');
    for (const op of [lu, mo]) {
      port.tap(op.authenticator);
      await agent.tapIn();
    }
    proxy.cut();
    await rig.until(agent, (s) => s.connection === 'offline', 'offline');
    const front = agent.status.front?.id;

    port.tap(lu.authenticator, { userPresent: false });
    await rejectsWithCode(agent.tapIn(), 'WEBAUTHN_USER_PRESENCE_REQUIRED');
    port.tap(lu.authenticator, { clientDataType: 'webauthn.create' });
    await rejectsWithCode(agent.tapIn(), 'WEBAUTHN_WRONG_CEREMONY_TYPE');
    port.tap(lu.authenticator, { counter: 1 });
    await rejectsWithCode(agent.tapIn(), 'WEBAUTHN_COUNTER_REGRESSED');
    assert.equal(agent.status.front?.id, front, 'nothing was resumed');
    assert.equal(agent.status.front?.operatorName, 'Mo');

    // The genuine key, counting on, still resumes Lu's session offline.
    port.tap(lu.authenticator, { counter: 1000 });
    await agent.tapIn();
    assert.equal(agent.status.front?.operatorName, 'Lu');
  });
});
