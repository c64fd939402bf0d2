import { X509Certificate, createPublicKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { SettingsService } from '@simplewebauthn/server';
import { convertCertBufferToPEM, validateCertificatePath } from '@simplewebauthn/server/helpers';
import { compactVerify, decodeProtectedHeader } from 'jose';
import { z } from 'zod';
import {
  certificationOf,
  type AuthenticatorModelView,
  type CertificationLevel,
} from '../../shared/authenticator-metadata.js';
import { BatonError, type ErrorCode } from '../../shared/errors.js';

/** The largest BLOB accepted (the FIDO MDS3 BLOB is a few MiB, mostly model icons). */
export const MDS_BLOB_MAX_BYTES = 32 * 1024 * 1024;

/** JWS algorithms a metadata BLOB may be signed with (FIDO MDS3 signs with RS256 today). */
const BLOB_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512'];

/**
 * The trust anchors @simplewebauthn/server ships for the real FIDO Metadata Service BLOB
 * (GlobalSign Root CA - R3 and GlobalSign Root R46), read from the installed package.
 */
export function defaultMetadataTrustAnchors(): string[] {
  return [...SettingsService.getRootCertificates({ identifier: 'mds' })];
}

/** Reads a PEM bundle of metadata trust anchors (configuration `mdsRootsFile`). */
export function readMetadataTrustAnchors(file: string): string[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (cause) {
    throw new BatonError('NOT_FOUND', `Cannot read the metadata trust anchors file ${file}`, { cause });
  }
  const pems = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (pems.length === 0) throw new BatonError('SCHEMA_INVALID', `${file} holds no PEM certificate`);
  for (const [i, pem] of pems.entries()) {
    try {
      if (!new X509Certificate(pem).ca) throw new Error('not a CA certificate');
    } catch (cause) {
      throw new BatonError('SCHEMA_INVALID', `Certificate ${i + 1} in ${file} is not a valid CA certificate`, {
        cause,
      });
    }
  }
  return pems;
}

const AAGUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The parts of an MDS3 BLOB payload Baton reads; everything else in it is ignored. */
const BlobPayloadSchema = z.object({
  no: z.int().positive(),
  nextUpdate: z.string().regex(/^\d{4}-\d{2}-\d{2}$/, 'expected a date YYYY-MM-DD'),
  entries: z
    .array(
      z.object({
        aaguid: z.string().optional(),
        metadataStatement: z.object({ description: z.string().min(1) }).optional(),
        statusReports: z
          .array(
            z.object({
              status: z.string().min(1).max(64),
              effectiveDate: z.string().max(32).optional(),
              authenticatorVersion: z.number().optional(),
              url: z.string().max(500).optional(),
            }),
          )
          .max(100),
        timeOfLastStatusChange: z.string().max(32).optional(),
      }),
    )
    .max(20_000),
});

export interface VerifiedMetadataBlob {
  no: number;
  nextUpdate: string;
  models: AuthenticatorModelView[];
}

function refuse(code: ErrorCode, message: string, cause?: unknown): never {
  throw new BatonError(code, message, cause === undefined ? {} : { cause });
}

/**
 * Verifies a FIDO Metadata Service (MDS3) BLOB the way the MDS spec (§3.2) asks: a JWS whose `x5c`
 * chain leads to a trust anchor (SimpleWebAuthn's `validateCertificatePath`, which also checks
 * validity periods and, when the certificates name one, their CRL), signed by the chain's first
 * certificate (jose), with a `nextUpdate` still ahead. Returns the FIDO2 models (entries with an AAGUID).
 */
export async function verifyMetadataBlob(
  blob: Uint8Array,
  trustAnchors: readonly string[],
  now: number,
): Promise<VerifiedMetadataBlob> {
  const jws = Buffer.from(blob).toString('utf8').trim();
  if (!/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/.test(jws)) {
    refuse('METADATA_BLOB_INVALID', 'Expected a metadata BLOB: a JWT in compact form (header.payload.signature)');
  }
  let x5c: unknown;
  try {
    x5c = decodeProtectedHeader(jws).x5c;
  } catch (cause) {
    refuse('METADATA_BLOB_INVALID', 'The BLOB header is not JSON', cause);
  }
  if (!Array.isArray(x5c) || x5c.length === 0 || x5c.length > 8 || !x5c.every((c) => typeof c === 'string')) {
    refuse('METADATA_BLOB_INVALID', 'The BLOB header carries no x5c certificate chain');
  }
  let chain: string[];
  try {
    chain = x5c.map((c) => convertCertBufferToPEM(c));
    for (const pem of chain) new X509Certificate(pem);
  } catch (cause) {
    refuse('METADATA_BLOB_INVALID', 'A certificate in the BLOB header x5c is not a valid X.509 certificate', cause);
  }
  if (trustAnchors.length === 0) refuse('METADATA_BLOB_UNTRUSTED', 'No metadata trust anchor is configured');
  try {
    await validateCertificatePath(chain, [...trustAnchors]);
  } catch (cause) {
    refuse(
      'METADATA_BLOB_UNTRUSTED',
      `The BLOB's certificate chain does not lead to a configured metadata trust anchor: ${(cause as Error).message.split('\n')[0] ?? ''}`,
      cause,
    );
  }
  let payloadBytes: Uint8Array;
  try {
    const leafKey = createPublicKey(chain[0] as string);
    payloadBytes = (await compactVerify(jws, leafKey, { algorithms: BLOB_ALGORITHMS })).payload;
  } catch (cause) {
    refuse(
      'METADATA_BLOB_SIGNATURE_INVALID',
      "The BLOB's signature does not verify with its signing certificate",
      cause,
    );
  }
  let payload: z.infer<typeof BlobPayloadSchema>;
  try {
    const parsed = BlobPayloadSchema.safeParse(JSON.parse(Buffer.from(payloadBytes).toString('utf8')));
    if (!parsed.success) throw parsed.error;
    payload = parsed.data;
  } catch (cause) {
    refuse('METADATA_BLOB_INVALID', 'The BLOB payload is not an MDS3 payload (no, nextUpdate, entries)', cause);
  }
  // Valid through its nextUpdate day (UTC); after that FIDO has published a newer one.
  const staleAt = Date.parse(`${payload.nextUpdate}T00:00:00Z`) + 24 * 3600 * 1000;
  if (Number.isNaN(staleAt)) refuse('METADATA_BLOB_INVALID', `nextUpdate ${payload.nextUpdate} is not a date`);
  if (staleAt <= now) {
    refuse('METADATA_BLOB_EXPIRED', `The BLOB (no ${payload.no}) was due to be replaced on ${payload.nextUpdate}`);
  }
  const models = new Map<string, AuthenticatorModelView>();
  for (const entry of payload.entries) {
    const aaguid = entry.aaguid?.toLowerCase();
    if (aaguid === undefined || !AAGUID.test(aaguid)) continue; // UAF and U2F entries have no AAGUID
    models.set(aaguid, modelOf(aaguid, entry, payload.no));
  }
  return { no: payload.no, nextUpdate: payload.nextUpdate, models: [...models.values()] };
}

function modelOf(
  aaguid: string,
  entry: z.infer<typeof BlobPayloadSchema>['entries'][number],
  blobNo: number,
): AuthenticatorModelView {
  // Oldest first (undated reports keep their place at the start), so the last one is the latest.
  const reports = [...entry.statusReports].sort((a, b) => (a.effectiveDate ?? '').localeCompare(b.effectiveDate ?? ''));
  let certification: CertificationLevel = 'none';
  for (const report of reports) certification = certificationOf(report.status) ?? certification;
  return {
    aaguid,
    model: (entry.metadataStatement?.description ?? 'Unnamed authenticator').slice(0, 200),
    certification,
    status: reports.at(-1)?.status ?? 'NOT_FIDO_CERTIFIED',
    statusReports: reports.map((r) => ({
      status: r.status,
      effectiveDate: r.effectiveDate ?? null,
      authenticatorVersion: r.authenticatorVersion ?? null,
      url: r.url ?? null,
    })),
    timeOfLastStatusChange: entry.timeOfLastStatusChange ?? null,
    blobNo,
  };
}
