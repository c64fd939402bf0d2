import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { canonicalJson } from '../../shared/canonical-json.js';
import { PROTOCOL_VERSION } from '../../shared/protocol.js';
import { withBackendAndConsole, type TestBackend, type TestConsole } from '../helpers/backend-harness.js';

/** The console channel trusts a console's policy by its content hash, not by its version number. */
describe('policy hash in hello and welcome', () => {
  let t: TestBackend;
  let kiosk: TestConsole;
  withBackendAndConsole((b, c) => ((t = b), (kiosk = c)));

  /** Says hello with `policy` fields, then lists what came back up to the ack of one event (in order). */
  async function helloWith(fields: { policyVersion: number; policyHash?: string }) {
    const socket = await kiosk.connect({ hello: false });
    socket.send({ type: 'hello', protocol: PROTOCOL_VERSION, revocationEpoch: 0, agentVersion: 'test', ...fields });
    const welcome = await socket.next('welcome');
    // Everything the backend answers to hello precedes its answer to the next message.
    await kiosk.roundTrip(socket);
    const types = socket.received.map((m) => m.type);
    const policy = socket.received.find((m) => m.type === 'policy');
    await socket.close();
    return { welcome, types: types.slice(0, types.indexOf('events-ack')), policy };
  }

  it('welcome carries the SHA-256 of the canonical JSON of the current policy', async () => {
    const current = t.backend.policies.version;
    const expected = createHash('sha256').update(canonicalJson(current.policy)).digest('hex');
    const { welcome, policy } = await helloWith({ policyVersion: 0 });
    assert.equal(welcome.policyHash, expected);
    assert.ok(policy !== undefined && policy.type === 'policy');
    assert.equal(policy.hash, expected);
    assert.equal(createHash('sha256').update(canonicalJson(policy.policy)).digest('hex'), expected);
  });

  it('the right version with another hash (an edited cache) gets the policy; the right hash gets none', async () => {
    const { version } = t.backend.policies.version;
    const { welcome } = await helloWith({ policyVersion: 0 });
    const tampered = await helloWith({ policyVersion: version, policyHash: 'f'.repeat(64) });
    assert.deepEqual(tampered.types, ['welcome', 'policy']);
    const unsure = await helloWith({ policyVersion: version });
    assert.deepEqual(unsure.types, ['welcome', 'policy'], 'no hash: the backend cannot trust the version alone');
    const current = await helloWith({ policyVersion: version, policyHash: welcome.policyHash });
    assert.deepEqual(current.types, ['welcome']);
  });
});
