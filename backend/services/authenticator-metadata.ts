import { X509Certificate, createHash, createPublicKey } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { SettingsService } from '@simplewebauthn/server';
import { convertCertBufferToPEM, validateCertificatePath } from '@simplewebauthn/server/helpers';
import { compactVerify, decodeProtectedHeader } from 'jose';
import type { Logger } from 'pino';
import { z } from 'zod';
import {
  DEFAULT_REFUSED_STATUSES,
  certificationOf,
  certificationRank,
  type AuthenticatorMetadataView,
  type AuthenticatorModelView,
  type CertificationLevel,
} from '../../shared/authenticator-metadata.js';
import { BatonError, type ErrorCode } from '../../shared/errors.js';
import type { Policy } from '../../shared/policy.js';
import type { AttestationTrust, CredentialRecord, Store } from '../store/repositories.js';
import type { EventLog } from './event-log.js';

/** The largest BLOB accepted (the FIDO MDS3 BLOB is a few MiB, mostly model icons). */
export const MDS_BLOB_MAX_BYTES = 32 * 1024 * 1024;

/** JWS algorithms a metadata BLOB may be signed with (FIDO MDS3 signs with RS256 today). */
const BLOB_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512'];

/**
 * The trust anchors of the real FIDO Metadata Service, as @simplewebauthn/server ships them
 * (GlobalSign Root CA - R3, which signs the MDS3 BLOB's chain, and GlobalSign Root R46).
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

export interface AuthenticatorRefusal {
  code: 'AUTHENTICATOR_COMPROMISED' | 'AUTHENTICATOR_CERTIFICATION_REQUIRED';
  message: string;
}

type CredentialRules = Policy['credentials'];

/** How an admin reads a certification level: `FIDO L2`, or `not certified`. */
export function certificationLabel(level: CertificationLevel): string {
  return level === 'none' ? 'not certified' : `FIDO ${level.replace('plus', '+')}`;
}

/**
 * Authenticator models from the FIDO metadata BLOB an admin supplied (never fetched at run time):
 * loads and verifies a BLOB, keeps the newest, names models for the admin pages and the audit
 * trail, and applies the policy's certification rules at registration and sign-in.
 */
export class AuthenticatorMetadata {
  private models: Map<string, AuthenticatorModelView>;

  constructor(
    private readonly deps: {
      store: Store;
      events: EventLog;
      clock: () => number;
      trustAnchors: readonly string[];
    },
  ) {
    this.models = new Map(deps.store.authenticatorModels.list().map((m) => [m.aaguid, m]));
  }

  /**
   * Verifies `blob` and, if it is newer than the one loaded, replaces every model with its own in
   * one transaction. Any refusal leaves the loaded metadata as it was, and is recorded.
   */
  async load(blob: Uint8Array, actor: string, source: 'upload' | 'file'): Promise<AuthenticatorMetadataView> {
    const sha256 = createHash('sha256').update(blob).digest('hex');
    try {
      if (blob.length > MDS_BLOB_MAX_BYTES) {
        refuse('PAYLOAD_TOO_LARGE', `The BLOB is ${blob.length} bytes; at most ${MDS_BLOB_MAX_BYTES} are accepted`);
      }
      const verified = await verifyMetadataBlob(blob, this.deps.trustAnchors, this.deps.clock());
      const models = verified.models;
      this.deps.events.atomically(() => {
        const current = this.deps.store.authenticatorModels.currentBlob();
        if (current !== undefined && verified.no <= current.no) {
          refuse(
            'METADATA_BLOB_NOT_NEWER',
            `The BLOB's number ${verified.no} is not higher than the loaded one's (${current.no})`,
          );
        }
        const loadedAt = this.deps.clock();
        this.deps.store.authenticatorModels.replace(
          {
            no: verified.no,
            nextUpdate: verified.nextUpdate,
            sha256,
            loadedAt,
            loadedBy: actor,
            models: models.length,
          },
          models,
        );
        this.deps.events.record({
          type: 'admin-action',
          subject: {},
          outcome: 'success',
          reasons: ['authenticator-metadata-loaded'],
          detail: { actor, source, no: verified.no, nextUpdate: verified.nextUpdate, models: models.length, sha256 },
        });
      });
      this.models = new Map(models.map((m) => [m.aaguid, m]));
      return this.view();
    } catch (error) {
      const code = error instanceof BatonError ? error.code : 'INTERNAL';
      this.deps.events.record({
        type: 'admin-action',
        subject: {},
        outcome: 'failure',
        reasons: ['authenticator-metadata-refused', code.toLowerCase().replace(/_/g, '-')],
        detail: { actor, source, sha256 },
      });
      throw error;
    }
  }

  /**
   * Loads the BLOB file named in the configuration at start. The file stays in place across
   * restarts, so the one already loaded is skipped quietly; a stale or older file is only logged
   * (the stored metadata stays); a file that fails verification stops the start.
   */
  async loadFileAtStart(file: string, logger: Logger): Promise<AuthenticatorMetadataView> {
    let blob: Buffer;
    try {
      if (statSync(file).size > MDS_BLOB_MAX_BYTES) {
        refuse('PAYLOAD_TOO_LARGE', `The metadata BLOB file ${file} is larger than ${MDS_BLOB_MAX_BYTES} bytes`);
      }
      blob = readFileSync(file);
    } catch (cause) {
      if (cause instanceof BatonError) throw cause;
      throw new BatonError('NOT_FOUND', `Cannot read the metadata BLOB file ${file}`, { cause });
    }
    const sha256 = createHash('sha256').update(blob).digest('hex');
    if (this.deps.store.authenticatorModels.currentBlob()?.sha256 === sha256) return this.view();
    try {
      const view = await this.load(blob, 'config:mdsBlobFile', 'file');
      logger.info({ file, no: view.no, models: view.models }, 'authenticator metadata loaded');
      return view;
    } catch (error) {
      if (error instanceof BatonError && ['METADATA_BLOB_NOT_NEWER', 'METADATA_BLOB_EXPIRED'].includes(error.code)) {
        logger.warn({ file, code: error.code }, `authenticator metadata file not loaded: ${error.message}`);
        return this.view();
      }
      if (error instanceof BatonError) {
        throw new BatonError(error.code, `The metadata BLOB file ${file} was refused: ${error.message}`, {
          cause: error,
        });
      }
      throw error;
    }
  }

  /** The BLOB loaded now. */
  view(): AuthenticatorMetadataView {
    const blob = this.deps.store.authenticatorModels.currentBlob();
    if (blob === undefined) {
      return {
        loaded: false,
        no: null,
        nextUpdate: null,
        stale: false,
        loadedAt: null,
        loadedBy: null,
        sha256: null,
        models: 0,
      };
    }
    return {
      loaded: true,
      no: blob.no,
      nextUpdate: blob.nextUpdate,
      stale: Date.parse(`${blob.nextUpdate}T00:00:00Z`) + 24 * 3600 * 1000 <= this.deps.clock(),
      loadedAt: blob.loadedAt,
      loadedBy: blob.loadedBy,
      sha256: blob.sha256,
      models: blob.models,
    };
  }

  list(): AuthenticatorModelView[] {
    return [...this.models.values()].sort((a, b) => a.model.localeCompare(b.model));
  }

  /** What the metadata says about a model, if it knows it. */
  describe(aaguid: string): AuthenticatorModelView | undefined {
    return this.models.get(aaguid.toLowerCase());
  }

  /** The audit trail's words for a model (event `detail` keys), empty when the model is unknown. */
  eventDetail(aaguid: string): Record<string, string> {
    const model = this.describe(aaguid);
    if (model === undefined) return {};
    return {
      authenticator_model: model.model,
      authenticator_certification: certificationLabel(model.certification),
      authenticator_status: model.status,
    };
  }

  /**
   * Why the policy refuses this model, or undefined. `attestedByCertificate`: the attestation was
   * verified by a chain to a configured vendor root, so the AAGUID is evidence, not a claim.
   */
  refusal(aaguid: string, attestedByCertificate: boolean, rules: CredentialRules): AuthenticatorRefusal | undefined {
    const model = this.describe(aaguid);
    const refused = new Set<string>(rules.refuseStatuses ?? DEFAULT_REFUSED_STATUSES);
    const bad = model?.statusReports.find((r) => refused.has(r.status));
    if (model !== undefined && bad !== undefined) {
      return {
        code: 'AUTHENTICATOR_COMPROMISED',
        message: `The FIDO metadata reports ${bad.status} for ${model.model} (AAGUID ${model.aaguid})${bad.effectiveDate === null ? '' : ` since ${bad.effectiveDate}`}; the policy refuses it`,
      };
    }
    const min = rules.minCertificationLevel ?? 'none';
    if (min === 'none') return undefined;
    if (model === undefined) {
      return {
        code: 'AUTHENTICATOR_CERTIFICATION_REQUIRED',
        message: `The policy requires FIDO certification ${min} or higher; the metadata does not know AAGUID ${aaguid}`,
      };
    }
    if (certificationRank(model.certification) < certificationRank(min)) {
      return {
        code: 'AUTHENTICATOR_CERTIFICATION_REQUIRED',
        message: `The policy requires FIDO certification ${min} or higher; ${model.model} is ${certificationLabel(model.certification)}`,
      };
    }
    if (!attestedByCertificate) {
      return {
        code: 'AUTHENTICATOR_CERTIFICATION_REQUIRED',
        message: `The policy requires a certified model, and this key's attestation was not verified by a certificate chain to a configured vendor root, so its claim to be ${model.model} is unproven`,
      };
    }
    return undefined;
  }

  /** At registration: the model just presented, with the attestation trust it earned. */
  registrationRefusal(
    aaguid: string,
    trust: AttestationTrust,
    rules: CredentialRules,
  ): AuthenticatorRefusal | undefined {
    return this.refusal(aaguid, trust === 'certificate', rules);
  }

  /** At sign-in and step-up: a stored credential whose model the metadata (now) condemns. */
  signInRefusal(credential: CredentialRecord, rules: CredentialRules): AuthenticatorRefusal | undefined {
    return this.refusal(credential.aaguid, credential.attestationTrust === 'certificate', rules);
  }
}
