import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DEFAULT_POLICY, type Policy } from '../../shared/policy.js';
import {
  assertError,
  startTestBackend,
  TestConsole,
  TEST_ORIGIN,
  type HttpResult,
  type Json,
  type TestBackend,
} from '../helpers/backend-harness.js';
import { AdminBrowser } from '../helpers/admin-session.js';
import { enrolOperator, signIn } from '../helpers/operator-flow.js';
import { SoftAuthenticator } from '../helpers/soft-authenticator.js';
import { createTestAttestation } from '../helpers/test-attestation-ca.js';
import { createTestMdsSigner, mdsDate, type TestMdsEntry, type TestMdsSigner } from '../helpers/test-mds-blob.js';

const CERTIFIED = '4a1c0c9e-0d5b-4a53-9b0a-6d8f3f1e2a01';
const COMPROMISED = '4a1c0c9e-0d5b-4a53-9b0a-6d8f3f1e2a02';

const certified = (aaguid = CERTIFIED, description = 'Baton Test Key 5 NFC'): TestMdsEntry => ({
  aaguid,
  description,
  statusReports: [{ status: 'FIDO_CERTIFIED_L2', effectiveDate: '2023-05-01' }],
});
const compromised = (aaguid: string, description = 'Leaky Key 1'): TestMdsEntry => ({
  aaguid,
  description,
  statusReports: [
    { status: 'FIDO_CERTIFIED_L1', effectiveDate: '2022-01-10' },
    { status: 'USER_KEY_PHYSICAL_COMPROMISE', effectiveDate: '2024-03-02' },
  ],
});

/** Uploads a BLOB file as an admin's script or the admin console does. */
async function upload(t: TestBackend, blob: string | Buffer, token = t.admin.token): Promise<HttpResult<Json>> {
  const response = await fetch(`${t.url}/v1/admin/authenticator-metadata`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/jwt' },
    body: typeof blob === 'string' ? blob : new Uint8Array(blob),
  });
  return { status: response.status, body: (await response.json()) as Json };
}

async function models(t: TestBackend): Promise<Json> {
  return t.admin.ok('GET', '/v1/admin/authenticator-models');
}

async function publish(t: TestBackend, credentials: Partial<Policy['credentials']>): Promise<void> {
  const current = (await t.admin.ok('GET', '/v1/admin/policy')) as Json;
  const policy = structuredClone(DEFAULT_POLICY);
  Object.assign(policy.credentials, credentials);
  await t.admin.ok('POST', '/v1/admin/policy', { baseVersion: current.version, policy });
}

async function events(t: TestBackend, type: string): Promise<Json[]> {
  return ((await t.admin.ok('GET', `/v1/admin/events?type=${type}&limit=1000`)) as Json).events as Json[];
}

async function tryEnrol(t: TestBackend, console: TestConsole, aaguid: string) {
  try {
    await enrolOperator(t.admin, console, { authenticator: new SoftAuthenticator(TEST_ORIGIN, { aaguid }) });
    return 'registered';
  } catch (error) {
    return (error as Error).message;
  }
}

describe('authenticator models from a FIDO metadata BLOB', () => {
  let signer: TestMdsSigner;
  let rootsFile: string;
  let dir: string;
  before(async () => {
    signer = await createTestMdsSigner();
    dir = mkdtempSync(join(tmpdir(), 'baton-mds-'));
    rootsFile = join(dir, 'mds-roots.pem');
    writeFileSync(rootsFile, signer.rootPem);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('shows the model name and certification of each passkey once an admin uploads a BLOB, and in its registration event', async () => {
    const t = await startTestBackend({ mdsRootsFile: rootsFile });
    try {
      const before = (await t.admin.ok('GET', '/v1/admin/authenticator-metadata')) as Json;
      assert.equal(before.metadata.loaded, false);

      const loaded = await upload(t, await signer.blob({ no: 7, entries: [certified()] }));
      assert.equal(loaded.status, 201, JSON.stringify(loaded.body));
      assert.equal(loaded.body.metadata.no, 7);
      assert.equal(loaded.body.metadata.models, 1);
      const listed = await models(t);
      assert.deepEqual(
        listed.models.map((m: Json) => [m.aaguid, m.model, m.certification, m.status]),
        [[CERTIFIED, 'Baton Test Key 5 NFC', 'L2', 'FIDO_CERTIFIED_L2']],
      );

      const console = await TestConsole.enrol(t.url, t.admin);
      const key = new SoftAuthenticator(TEST_ORIGIN, { aaguid: CERTIFIED });
      const { operatorId, credentialId } = await enrolOperator(t.admin, console, { authenticator: key });
      const detail = (await t.admin.ok('GET', `/v1/admin/operators/${operatorId}`)) as Json;
      assert.equal(detail.credentials[0].authenticator.model, 'Baton Test Key 5 NFC');
      assert.equal(detail.credentials[0].authenticator.certification, 'L2');

      const created = (await events(t, 'credential-change')).find(
        (e) => e.subject.credential === credentialId && e.outcome === 'success',
      );
      assert.equal(created?.detail.authenticator_model, 'Baton Test Key 5 NFC');
      assert.equal(created?.detail.authenticator_certification, 'FIDO L2');
      const audit = (await events(t, 'admin-action')).find((e) => e.reasons.includes('authenticator-metadata-loaded'));
      assert.equal(audit?.detail.no, 7);
    } finally {
      await t.stop();
    }
  });

  it('refuses a forged, foreign, stale, older or garbled BLOB with a stable code and keeps the loaded one', async () => {
    const t = await startTestBackend({ mdsRootsFile: rootsFile });
    try {
      assert.equal((await upload(t, await signer.blob({ no: 10, entries: [certified()] }))).status, 201);

      const genuine = await signer.blob({ no: 11, entries: [certified()] });
      const [header, , signature] = genuine.split('.');
      const forgedPayload = Buffer.from(JSON.stringify({ no: 11, nextUpdate: mdsDate(30), entries: [] })).toString(
        'base64url',
      );
      assertError(await upload(t, `${header}.${forgedPayload}.${signature}`), 400, 'METADATA_BLOB_SIGNATURE_INVALID');

      const stranger = await createTestMdsSigner('Someone Else');
      assertError(
        await upload(t, await stranger.blob({ no: 12, entries: [compromised(CERTIFIED)] })),
        400,
        'METADATA_BLOB_UNTRUSTED',
      );
      assertError(
        await upload(t, await signer.blob({ no: 13, nextUpdate: mdsDate(-2), entries: [] })),
        400,
        'METADATA_BLOB_EXPIRED',
      );
      assertError(await upload(t, await signer.blob({ no: 9, entries: [] })), 409, 'METADATA_BLOB_NOT_NEWER');
      assertError(await upload(t, await signer.blob({ no: 10, entries: [] })), 409, 'METADATA_BLOB_NOT_NEWER');
      assertError(await upload(t, Buffer.from([0x89, 0x50, 0x4e, 0x47, 0, 1, 2, 3])), 400, 'METADATA_BLOB_INVALID');
      assertError(await upload(t, 'eyJhbGciOiJFUzI1NiJ9.e30.AAAA'), 400, 'METADATA_BLOB_INVALID');
      assertError(await upload(t, genuine, 'bat_not-an-admin-token'), 401, 'ADMIN_AUTH_INVALID');

      const after = await models(t);
      assert.equal(after.metadata.no, 10);
      assert.deepEqual(
        after.models.map((m: Json) => [m.model, m.status]),
        [['Baton Test Key 5 NFC', 'FIDO_CERTIFIED_L2']],
      );
      const refused = (await events(t, 'admin-action')).filter((e) =>
        e.reasons.includes('authenticator-metadata-refused'),
      );
      assert.deepEqual(refused.map((e) => e.reasons[1]).sort(), [
        'metadata-blob-expired',
        'metadata-blob-invalid',
        'metadata-blob-invalid',
        'metadata-blob-not-newer',
        'metadata-blob-not-newer',
        'metadata-blob-signature-invalid',
        'metadata-blob-untrusted',
      ]);

      assert.equal((await upload(t, genuine)).status, 201, 'a newer genuine BLOB still loads');
    } finally {
      await t.stop();
    }
  });

  it('loads the BLOB file named by --mds-blob at start, and keeps it across a restart', async () => {
    const blobFile = join(dir, 'blob.jwt');
    writeFileSync(blobFile, await signer.blob({ no: 3, entries: [certified()] }));
    const dataDir = mkdtempSync(join(tmpdir(), 'baton-mds-data-'));
    const t = await startTestBackend({ mdsRootsFile: rootsFile, mdsBlobFile: blobFile, dataDir });
    try {
      assert.equal((await models(t)).models[0].model, 'Baton Test Key 5 NFC');
    } finally {
      await t.stop();
    }
    const again = await startTestBackend(
      { mdsRootsFile: rootsFile, mdsBlobFile: blobFile, dataDir },
      { adminToken: t.admin.token },
    );
    try {
      const listed = await models(again);
      assert.equal(listed.metadata.no, 3);
      const loads = (await events(again, 'admin-action')).filter((e) => e.reasons[0]?.startsWith('authenticator-'));
      assert.deepEqual(
        loads.map((e) => e.reasons[0]),
        ['authenticator-metadata-loaded'],
        'the same file at restart is neither loaded again nor refused',
      );
    } finally {
      await again.stop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('refuses to register a model whose metadata reports a compromise (default policy)', async () => {
    const t = await startTestBackend({ mdsRootsFile: rootsFile });
    try {
      await upload(t, await signer.blob({ no: 1, entries: [certified(), compromised(COMPROMISED)] }));
      const console = await TestConsole.enrol(t.url, t.admin);
      assert.match(await tryEnrol(t, console, COMPROMISED), /403 .*AUTHENTICATOR_COMPROMISED/);
      const refused = (await events(t, 'credential-change')).find((e) => e.outcome === 'failure');
      assert.deepEqual(refused?.reasons, ['authenticator-compromised']);
      assert.equal(refused?.detail.authenticator_model, 'Leaky Key 1');
      assert.equal(await tryEnrol(t, console, CERTIFIED), 'registered');

      await publish(t, { refuseStatuses: [] });
      assert.equal(await tryEnrol(t, console, COMPROMISED), 'registered', 'a policy may choose to refuse no status');
    } finally {
      await t.stop();
    }
  });

  it('refuses sign-in with a passkey whose model is reported compromised after it was registered', async () => {
    const t = await startTestBackend({ mdsRootsFile: rootsFile });
    try {
      await upload(t, await signer.blob({ no: 1, entries: [certified(COMPROMISED, 'Leaky Key 1')] }));
      const console = await TestConsole.enrol(t.url, t.admin);
      const key = new SoftAuthenticator(TEST_ORIGIN, { aaguid: COMPROMISED });
      const { credentialId } = await enrolOperator(t.admin, console, { authenticator: key });
      assert.equal((await signIn(console, key)).status, 200);

      await upload(t, await signer.blob({ no: 2, entries: [compromised(COMPROMISED)] }));
      assertError(await signIn(console, key), 403, 'AUTHENTICATOR_COMPROMISED');
      const failed = (await events(t, 'sign-in-failed')).find((e) => e.subject.credential === credentialId);
      assert.deepEqual(failed?.reasons, ['authenticator-compromised']);
    } finally {
      await t.stop();
    }
  });

  it('refuses an admin passkey of a compromised model, and names the model of one it accepts', async () => {
    const t = await startTestBackend({ mdsRootsFile: rootsFile });
    try {
      await upload(t, await signer.blob({ no: 1, entries: [certified(), compromised(COMPROMISED)] }));
      const { code } = (await t.admin.ok('POST', '/v1/admin/bootstrap', { id: 'grace', displayName: 'Grace' })) as Json;
      const origin = t.backend.adminOrigin;
      const leaky = new AdminBrowser(t.url, origin, new SoftAuthenticator(origin, { aaguid: COMPROMISED }));
      assertError(await leaky.register(code as string), 403, 'AUTHENTICATOR_COMPROMISED');

      const grace = new AdminBrowser(t.url, origin, new SoftAuthenticator(origin, { aaguid: CERTIFIED }));
      assert.equal((await grace.register(code as string)).status, 201, 'the code was not used by the refusal');
      const created = ((await grace.ok('GET', '/v1/admin/events?type=credential-change')) as Json).events.find(
        (e: Json) => e.outcome === 'success' && e.subject.operator === 'grace',
      );
      assert.equal(created?.detail.authenticator_model, 'Baton Test Key 5 NFC');
    } finally {
      await t.stop();
    }
  });

  it('requires a minimum certification level, proven by attestation, at registration and at every sign-in', async () => {
    const pki = await createTestAttestation();
    const attestationRoots = join(dir, 'attestation-roots.pem');
    writeFileSync(attestationRoots, pki.rootPem);
    const t = await startTestBackend({ mdsRootsFile: rootsFile, attestationRootsFile: attestationRoots });
    try {
      await upload(t, await signer.blob({ no: 1, entries: [certified()] }));
      await publish(t, { minCertificationLevel: 'L2' });
      const console = await TestConsole.enrol(t.url, t.admin);
      // Listed as L2, but a key with `none` attestation only claims its AAGUID.
      assert.match(await tryEnrol(t, console, CERTIFIED), /403 .*AUTHENTICATOR_CERTIFICATION_REQUIRED/);
      assert.match(
        await tryEnrol(t, console, '00000000-0000-0000-0000-0000000000aa'),
        /403 .*AUTHENTICATOR_CERTIFICATION_REQUIRED/,
      );
      const attested = new SoftAuthenticator(TEST_ORIGIN, { aaguid: CERTIFIED, attestation: pki });
      await enrolOperator(t.admin, console, { authenticator: attested });
      assert.equal((await signIn(console, attested)).status, 200);

      // The model's latest certification is now below the policy's minimum.
      const recertified: TestMdsEntry = {
        ...certified(),
        statusReports: [
          { status: 'FIDO_CERTIFIED_L2', effectiveDate: '2023-05-01' },
          { status: 'FIDO_CERTIFIED_L1', effectiveDate: '2025-01-01' },
        ],
      };
      await upload(t, await signer.blob({ no: 2, entries: [recertified] }));
      assertError(await signIn(console, attested), 403, 'AUTHENTICATOR_CERTIFICATION_REQUIRED');
    } finally {
      await t.stop();
    }
  });
});
