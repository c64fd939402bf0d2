import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { canonicalJson } from '../../shared/canonical-json.js';
import type { Policy } from '../../shared/policy.js';
import { BatonAgent } from '../../main/core/agent.js';
import { AgentRig, SoftCeremonyPort } from '../helpers/agent-rig.js';
import { TEST_ORIGIN } from '../helpers/backend-harness.js';

/**
 * A console's cached policy (console.json) is trusted by its content hash, not by its version
 * number: someone who edits it in place to loosen the rules (a day of offline grace here) gets the
 * backend's real policy back on the next connect, and a damaged cache is not used meanwhile.
 */
describe('a cached policy edited in place', () => {
  let rig: AgentRig;
  before(async () => {
    rig = await AgentRig.start();
  });
  after(async () => {
    await rig.stop();
  });

  interface Cached {
    policy: { version: number; policy: Policy; hash?: string };
  }

  function tamper(dataDir: string, recomputeHash: boolean): { real: Policy; version: number } {
    const file = join(dataDir, 'console.json');
    const state = JSON.parse(readFileSync(file, 'utf8')) as Cached;
    const real = structuredClone(state.policy.policy);
    const channel = state.policy.policy.channels['branch-kiosk'];
    assert.ok(channel !== undefined);
    channel.offlineGraceSeconds = 24 * 3600;
    channel.continuitySeconds = 24 * 3600;
    if (recomputeHash) {
      state.policy.hash = createHash('sha256').update(canonicalJson(state.policy.policy)).digest('hex');
    }
    writeFileSync(file, JSON.stringify(state));
    return { real, version: state.policy.version };
  }

  for (const recomputeHash of [false, true]) {
    it(`is replaced by the backend's policy on connect (hash ${recomputeHash ? 'recomputed' : 'left stale'})`, async () => {
      const first = await rig.agent();
      await first.agent.stop();
      const { real, version } = tamper(first.dataDir, recomputeHash);
      assert.equal(version, rig.backend.backend.policies.version.version, 'the tampered cache keeps the right version');

      const again = await rig.agent({ dataDir: first.dataDir, secrets: first.secrets });
      assert.equal(again.agent.status.policyVersion, version);
      assert.deepEqual(again.agent.policy, real, 'the agent works under the real policy, not the edited one');
      const cached = (JSON.parse(readFileSync(join(first.dataDir, 'console.json'), 'utf8')) as Cached).policy;
      assert.deepEqual(cached.policy, real, 'the real policy replaced the edited one on disk');
      await again.agent.stop();
    });
  }

  it('a damaged cache is not used before the backend answers: the built-in defaults apply', async () => {
    const first = await rig.agent();
    await first.agent.stop();
    tamper(first.dataDir, false);
    // Nothing listens at this address: the agent stays offline with what it loaded from disk.
    const offline = await BatonAgent.start(
      {
        backendUrl: 'http://127.0.0.1:9',
        channel: 'branch-kiosk',
        rpId: 'localhost',
        origin: TEST_ORIGIN,
        dataDir: first.dataDir,
        agentVersion: 'test',
      },
      { secrets: first.secrets, ceremonies: new SoftCeremonyPort(), clock: rig.clock, random: () => 0.5 },
    );
    assert.equal(offline.status.identity.kind, 'enrolled');
    assert.equal(offline.status.policyVersion, 0, 'the edited cache was dropped');
    assert.equal(offline.policy.channels['branch-kiosk']?.offlineGraceSeconds, 15 * 60);
    await offline.stop();
  });
});
