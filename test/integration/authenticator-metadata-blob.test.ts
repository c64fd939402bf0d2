import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { describe, it } from 'node:test';
import { DEFAULT_POLICY, validatePolicy } from '../../shared/policy.js';
import { createTestMdsSigner } from '../helpers/test-mds-blob.js';
import { loadBackendConfig } from '../../backend/config.js';
import { defaultMetadataTrustAnchors, verifyMetadataBlob } from '../../backend/crypto/metadata-blob.js';

const AAGUID = 'aaaaaaaa-0000-4000-8000-000000000001';

describe('verifyMetadataBlob', () => {
  it('trusts the FIDO MDS roots SimpleWebAuthn ships by default, and so refuses a BLOB signed under a test root', async () => {
    const anchors = defaultMetadataTrustAnchors();
    assert.ok(
      anchors.some((pem) => /GlobalSign Root CA - R3/.test(new X509Certificate(pem).subject)),
      'GlobalSign Root CA - R3 is a default anchor',
    );
    const signer = await createTestMdsSigner();
    const blob = await signer.blob({ no: 1, entries: [] });
    await assert.rejects(verifyMetadataBlob(Buffer.from(blob), anchors, Date.now()), {
      code: 'METADATA_BLOB_UNTRUSTED',
    });
    await assert.rejects(verifyMetadataBlob(Buffer.from(blob), [], Date.now()), { code: 'METADATA_BLOB_UNTRUSTED' });
  });

  it("takes a model's certification from its latest dated report and keeps its whole status history", async () => {
    const signer = await createTestMdsSigner();
    const blob = await signer.blob({
      no: 4,
      entries: [
        {
          aaguid: AAGUID.toUpperCase(),
          description: 'Example Key',
          statusReports: [
            { status: 'UPDATE_AVAILABLE', effectiveDate: '2024-06-01' },
            { status: 'FIDO_CERTIFIED_L2', effectiveDate: '2023-01-01' },
            { status: 'FIDO_CERTIFIED_L1', effectiveDate: '2021-01-01' },
          ],
        },
      ],
    });
    const verified = await verifyMetadataBlob(Buffer.from(blob), [signer.rootPem], Date.now());
    const [model] = verified.models;
    assert.equal(model?.aaguid, AAGUID, 'AAGUIDs are stored lower-case');
    assert.equal(model.certification, 'L2');
    assert.equal(model.status, 'UPDATE_AVAILABLE');
    assert.deepEqual(
      model.statusReports.map((r) => r.status),
      ['FIDO_CERTIFIED_L1', 'FIDO_CERTIFIED_L2', 'UPDATE_AVAILABLE'],
    );
  });

  it('accepts a BLOB through its nextUpdate day and refuses it the day after', async () => {
    const signer = await createTestMdsSigner();
    const blob = Buffer.from(await signer.blob({ no: 2, nextUpdate: '2030-03-10', entries: [] }));
    const day = (iso: string) => Date.parse(iso);
    assert.equal((await verifyMetadataBlob(blob, [signer.rootPem], day('2030-03-10T23:59:59Z'))).no, 2);
    await assert.rejects(verifyMetadataBlob(blob, [signer.rootPem], day('2030-03-11T00:00:00Z')), {
      code: 'METADATA_BLOB_EXPIRED',
    });
  });

  it('refuses a payload that is not MDS3 even when it is properly signed', async () => {
    const signer = await createTestMdsSigner();
    const blob = await signer.blob({ no: 1, nextUpdate: 'next month', entries: [] });
    await assert.rejects(verifyMetadataBlob(Buffer.from(blob), [signer.rootPem], Date.now()), {
      code: 'METADATA_BLOB_INVALID',
    });
  });
});

describe('configuration', () => {
  it('reads the BLOB file and the trust anchors from flags and the environment', () => {
    const fromFlags = loadBackendConfig(['--mds-blob', '/etc/baton/blob.jwt', '--mds-roots', '/etc/baton/r.pem'], {});
    assert.equal(fromFlags.mdsBlobFile, '/etc/baton/blob.jwt');
    assert.equal(fromFlags.mdsRootsFile, '/etc/baton/r.pem');
    const fromEnv = loadBackendConfig([], { BATON_MDS_BLOB: '/b.jwt', BATON_MDS_ROOTS: '/r.pem' });
    assert.deepEqual([fromEnv.mdsBlobFile, fromEnv.mdsRootsFile], ['/b.jwt', '/r.pem']);
  });

  it('adds nothing to a policy that does not name the certification rules (its hash stays the same)', () => {
    const parsed = validatePolicy(DEFAULT_POLICY);
    assert.ok(parsed.ok);
    assert.deepEqual(Object.keys(parsed.policy.credentials).sort(), Object.keys(DEFAULT_POLICY.credentials).sort());
  });
});
