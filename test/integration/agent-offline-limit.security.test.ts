import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { BatonAgent } from '../../main/core/agent.js';
import { DEFAULT_POLICY } from '../../shared/policy.js';
import { AgentRig, rejectsWithCode, type RigOperator, type SoftCeremonyPort } from '../helpers/agent-rig.js';
import type { Json } from '../helpers/backend-harness.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';

const MINUTE = 60_000;
const CAP_SECONDS = 30 * 60;

/**
 * Cutting a console's network must not hold off a revocation for hours: the offline grace is
 * counted per lock, so the console also caps continuous time without the backend
 * (`maxOfflineSeconds`). Past it only locking is allowed, until the backend is back.
 */
describe('the cap on continuous time offline', () => {
  let rig: AgentRig;
  let proxy: TcpProxy;
  let agent: BatonAgent;
  let port: SoftCeremonyPort;
  let ada: RigOperator;

  before(async () => {
    rig = await AgentRig.start();
    const current = (await rig.backend.admin.ok('GET', '/v1/admin/policy')) as Json;
    const policy = structuredClone(DEFAULT_POLICY);
    const kiosk = policy.channels['branch-kiosk'];
    assert.ok(kiosk !== undefined);
    kiosk.maxOfflineSeconds = CAP_SECONDS;
    await rig.backend.admin.ok('POST', '/v1/admin/policy', { baseVersion: current.version as number, policy });
    proxy = await TcpProxy.start({ host: '127.0.0.1', port: rig.backend.backend.port });
    ({ agent, port } = await rig.agent({ backendUrl: proxy.url }));
    ada = await rig.operator(agent, port, 'Ada');
  });
  after(async () => {
    await rig.stop();
    await proxy.stop();
  });

  /** Ada at work for `ms` of fake time (input every 30 s), the agent retrying the backend meanwhile. */
  async function work(ms: number): Promise<void> {
    for (let t = 0; t < ms; t += MINUTE / 2) {
      agent.noteActivity();
      await rig.clock.advance(MINUTE / 2);
    }
  }

  it('locks the session in front at the cap and resumes nothing offline until the backend is back', async () => {
    assert.equal(agent.policy.channels['branch-kiosk']?.maxOfflineSeconds, CAP_SECONDS);
    port.tap(ada.authenticator);
    await agent.tapIn();
    proxy.cut();
    await rig.until(agent, (s) => s.connection === 'offline', 'offline');

    // Inside the cap, the usual offline rules: lock, and resume with a tap inside the grace.
    await work(20 * MINUTE);
    agent.lock();
    port.tap(ada.authenticator);
    await agent.tapIn();
    assert.equal(agent.status.front?.state, 'active', 'resumed offline inside the cap');

    // Ten more minutes of work reach the cap: the screen locks by itself.
    await work(10 * MINUTE);
    assert.equal(agent.status.front?.state, 'locked', 'past the cap only locking is allowed');
    assert.equal(agent.frontToken, undefined);

    // Ada's tap is refused before any ceremony, and the refusal is journaled.
    const asked = port.asked.length;
    port.tap(ada.authenticator);
    await rejectsWithCode(agent.tapIn(), 'OFFLINE_RESUME_REFUSED');
    assert.equal(port.asked.length, asked, 'no key was asked for');
    assert.equal(agent.status.front?.state, 'locked');

    // The backend is back: the journal reaches it, and Ada's tap is decided there again.
    proxy.restore();
    await rig.reconnect(agent);
    await rig.until(agent, (s) => (s.outbox?.pending ?? 1) === 0, 'journal delivered');
    const events = await rig.events({ operator: ada.id });
    const locked = events.filter((e) => e.type === 'session-locked').map((e) => e.reasons[0]);
    assert.ok(locked.includes('offline-limit-reached'), JSON.stringify(locked));
    const refused = (await rig.events()).filter((e) => e.type === 'sign-in-failed').map((e) => e.reasons[0]);
    assert.ok(refused.includes('offline-limit-reached'), JSON.stringify(refused));
  });
});
