// @peculiar/x509 needs the reflect-metadata polyfill, which SimpleWebAuthn's helpers load first.
import '@simplewebauthn/server/helpers';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { CompactSign } from 'jose';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

/** One entry of a test BLOB: a FIDO2 model and its status history. */
export interface TestMdsEntry {
  aaguid: string;
  description: string;
  statusReports: { status: string; effectiveDate?: string }[];
}

export interface TestMdsSigner {
  /** The test "FIDO root", PEM, as an admin would configure it (`mdsRootsFile`). */
  rootPem: string;
  /** A signed MDS3 BLOB (compact JWS with an x5c chain to the root). */
  blob(input: { no: number; nextUpdate?: string; entries: TestMdsEntry[] }): Promise<string>;
}

/** A date `days` from now, as MDS writes `nextUpdate` (YYYY-MM-DD, UTC). */
export function mdsDate(days: number): string {
  return new Date(Date.now() + days * 24 * 3600 * 1000).toISOString().slice(0, 10);
}

/**
 * A throwaway metadata PKI shaped like FIDO's: a root CA and a BLOB signing certificate under it.
 * Generated at test time, so nothing secret or expiring is committed.
 */
export async function createTestMdsSigner(name = 'Baton Test MDS'): Promise<TestMdsSigner> {
  const now = Date.now();
  const notBefore = new Date(now - 24 * 3600 * 1000);
  const notAfter = new Date(now + 365 * 24 * 3600 * 1000);
  const rootKeys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
  const root = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: `CN=${name} Root, O=Baton Test, C=GB`,
    notBefore,
    notAfter,
    signingAlgorithm: ALG,
    keys: rootKeys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 1, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
    ],
  });
  const signerKeys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
  const signer = await x509.X509CertificateGenerator.create({
    serialNumber: '02',
    subject: `CN=${name} BLOB Signer, O=Baton Test, C=GB`,
    issuer: root.subject,
    notBefore,
    notAfter,
    signingAlgorithm: ALG,
    publicKey: signerKeys.publicKey,
    signingKey: rootKeys.privateKey,
    extensions: [new x509.BasicConstraintsExtension(false, undefined, true)],
  });
  const x5c = [Buffer.from(signer.rawData).toString('base64')];
  return {
    rootPem: root.toString('pem'),
    blob: async ({ no, nextUpdate = mdsDate(30), entries }) => {
      const payload = {
        legalHeader: 'Test metadata: not for production.',
        no,
        nextUpdate,
        entries: entries.map((e) => ({
          aaguid: e.aaguid,
          metadataStatement: { aaguid: e.aaguid, description: e.description, schema: 3 },
          statusReports: e.statusReports,
          timeOfLastStatusChange: e.statusReports.at(-1)?.effectiveDate ?? '2024-01-01',
        })),
      };
      return new CompactSign(new TextEncoder().encode(JSON.stringify(payload)))
        .setProtectedHeader({ alg: 'ES256', typ: 'JWT', x5c })
        .sign(signerKeys.privateKey);
    },
  };
}
