import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { PublicKeyCredentialRequestOptionsJSON } from '@simplewebauthn/server';
import { CeremonyBroker } from '../../main/core/ceremony-broker.js';
import { IpcDispatcher } from '../../main/core/ipc-dispatcher.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { rejectsWithCode, withAgentConsole, type RigOperator } from '../helpers/agent-rig.js';

/**
 * What a compromised operator UI (the browser half of every ceremony) can do with the agent's
 * ceremonies and its IPC: hold on to a tap, or wipe the console.
 */
describe('agent ceremonies against a compromised operator UI', () => {
  const f = withAgentConsole('contact-centre', ['Jo', 'Kai'], { proxy: true });

  /** Jo signed in and suspended, Kai in front. */
  async function joThenKai(): Promise<void> {
    const [jo, kai] = f.ops as [RigOperator, RigOperator];
    await f.rig.until(f.agent, (s) => s.connection === 'online', 'online');
    for (const op of [jo, kai]) {
      f.port.tap(op.authenticator);
      await f.agent.tapIn();
    }
  }

  test('console:enrol on an enrolled console is refused and every session stays', async () => {
    const { agent } = f;
    await joThenKai();
    const before = agent.status.sessions.map((s) => s.id);
    assert.equal(before.length, 2);

    const d = new IpcDispatcher(agent, new CeremonyBroker(() => undefined, new FakeClock()));
    const result = await d.dispatch('console:enrol', { token: 'bct_not-a-real-token' }, { kind: 'operator-ui' });
    assert.equal(result.ok, false);
    assert.equal(!result.ok && result.error.code, 'CONSOLE_ALREADY_ENROLLED');
    assert.deepEqual(
      agent.status.sessions.map((s) => s.id),
      before,
      'nobody was signed out by a token typed at the lock screen',
    );
    assert.equal(agent.status.identity.kind, 'enrolled');
  });

  test('offline: a tap signed for an earlier, abandoned ceremony does not resume a session', async () => {
    const { agent, port, rig, proxy } = f;
    assert.ok(proxy);
    const jo = f.ops[0] as RigOperator;
    if (agent.status.front?.operatorName !== 'Kai') await joThenKai();
    proxy.cut();
    await rig.until(agent, (s) => s.connection === 'offline', 'offline');
    const front = agent.status.front?.id;

    // The UI says the first offline tap was cancelled, but keeps Jo's answer to its challenge…
    port.cancelNext = true;
    await rejectsWithCode(agent.tapIn(), 'CEREMONY_CANCELLED');
    const abandoned = port.asked.at(-1);
    assert.equal(abandoned?.purpose, 'offline-resume');
    const kept = jo.authenticator.assert(abandoned?.options as PublicKeyCredentialRequestOptionsJSON);

    // … and answers the next offline ceremony with it, a minute later, when Jo has walked away.
    await rig.clock.advance(60_000);
    port.replayNext = kept;
    await rejectsWithCode(agent.tapIn(), 'CHALLENGE_UNKNOWN');
    assert.equal(agent.status.front?.id, front, 'Jo’s session stayed where it was');
    assert.equal(agent.status.front?.operatorName, 'Kai');
  });
});
