import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { decodeJwt } from 'jose';
import { DEFAULT_POLICY } from '../../shared/policy.js';
import { startTestBackend, TestConsole, TEST_ORIGIN, type Json, type TestBackend } from '../helpers/backend-harness.js';
import { enrolOperator, signIn } from '../helpers/operator-flow.js';
import { SoftAuthenticator } from '../helpers/soft-authenticator.js';
import { createTestAttestation } from '../helpers/test-attestation-ca.js';
import { tempDir } from '../helpers/temp-dir.js';

const AAGUID = '2fc0579f-8113-47ea-b116-bb5a8db9202a';

async function allowListOnly(t: TestBackend): Promise<void> {
  const current = (await t.admin.ok('GET', '/v1/admin/policy')) as Json;
  const policy = structuredClone(DEFAULT_POLICY);
  policy.credentials.aaguidAllowList = [AAGUID];
  await t.admin.ok('POST', '/v1/admin/policy', { baseVersion: current.version, policy });
}

async function tryEnrol(t: TestBackend, console: TestConsole, authenticator: SoftAuthenticator) {
  try {
    return { ok: true as const, value: await enrolOperator(t.admin, console, { authenticator }) };
  } catch (error) {
    return { ok: false as const, message: (error as Error).message };
  }
}

describe('attested hardware authenticators (AAL3)', () => {
  it('gives no model credit without vendor roots: self attestation and unverifiable certificates are refused by an allow-list', async () => {
    const t = await startTestBackend();
    try {
      await allowListOnly(t);
      const console = await TestConsole.enrol(t.url, t.admin);
      const self = await tryEnrol(
        t,
        console,
        new SoftAuthenticator(TEST_ORIGIN, { aaguid: AAGUID, attestation: 'self' }),
      );
      assert.equal(self.ok, false);
      assert.match(self.ok ? '' : self.message, /403 .*CREDENTIAL_AAGUID_NOT_ALLOWED/);
      const pki = await createTestAttestation();
      const unverified = await tryEnrol(
        t,
        console,
        new SoftAuthenticator(TEST_ORIGIN, { aaguid: AAGUID, attestation: pki }),
      );
      assert.match(unverified.ok ? '' : unverified.message, /403 .*CREDENTIAL_AAGUID_NOT_ALLOWED/);
    } finally {
      await t.stop();
    }
  });

  it('rates user verification on an allow-listed authenticator chained to a configured root as hardware (AAL3, phrh)', async () => {
    const pki = await createTestAttestation();
    const rootsFile = join(tempDir('baton-roots-'), 'roots.pem');
    writeFileSync(rootsFile, pki.rootPem);
    const t = await startTestBackend({ attestationRootsFile: rootsFile });
    try {
      await allowListOnly(t);
      const console = await TestConsole.enrol(t.url, t.admin);
      const key = new SoftAuthenticator(TEST_ORIGIN, { aaguid: AAGUID, attestation: pki });
      const { operatorId } = await enrolOperator(t.admin, console, { authenticator: key });
      const detail = (await t.admin.ok('GET', `/v1/admin/operators/${operatorId}`)) as Json;
      assert.equal(detail.credentials[0].attestationTrust, 'certificate');
      assert.equal(detail.credentials[0].aaguid, AAGUID);

      const signedIn = (await signIn(console, key)).body as Json;
      assert.equal(signedIn.session.level, 'hardware');
      assert.equal(signedIn.session.aal, 3);
      assert.equal(signedIn.session.acr, 'phrh');
      assert.ok(
        signedIn.session.expiresAt - signedIn.session.startedAt <= 12 * 3600 * 1000,
        'NIST: AAL3 sessions last at most 12 h',
      );
      assert.equal(decodeJwt(signedIn.token as string).acr, 'phrh');

      const presence = (await signIn(console, key, { userVerified: false })).body as Json;
      assert.equal(presence.session.level, 'presence', 'the same key without UV is only presence');

      // A key whose certificate was issued by someone else is refused outright.
      const forged = await createTestAttestation();
      const other = await tryEnrol(
        t,
        console,
        new SoftAuthenticator(TEST_ORIGIN, { aaguid: AAGUID, attestation: forged }),
      );
      assert.match(other.ok ? '' : other.message, /400 .*WEBAUTHN_VERIFICATION_FAILED/);
    } finally {
      await t.stop();
    }
  });
});
