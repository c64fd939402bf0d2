import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import type { Logger } from 'pino';
import {
  DEFAULT_REFUSED_STATUSES,
  certificationRank,
  type AuthenticatorMetadataView,
  type AuthenticatorModelView,
  type CertificationLevel,
} from '../../shared/authenticator-metadata.js';
import { BatonError } from '../../shared/errors.js';
import type { Policy } from '../../shared/policy.js';
import { MDS_BLOB_MAX_BYTES, verifyMetadataBlob } from '../crypto/metadata-blob.js';
import type { AttestationTrust, CredentialRecord, Store } from '../store/repositories.js';
import type { EventLog } from './event-log.js';

export interface AuthenticatorRefusal {
  code: 'AUTHENTICATOR_COMPROMISED' | 'AUTHENTICATOR_CERTIFICATION_REQUIRED';
  message: string;
}

type CredentialRules = Policy['credentials'];

/** How an admin reads a certification level: `FIDO L2`, or `not certified`. */
export function certificationLabel(level: CertificationLevel): string {
  return level === 'none' ? 'not certified' : `FIDO ${level.replace('plus', '+')}`;
}

export interface AuthenticatorMetadataDeps {
  store: Store;
  events: EventLog;
  clock: () => number;
  trustAnchors: readonly string[];
}

/**
 * Authenticator models from the FIDO metadata BLOB an admin supplied (never fetched at run time):
 * loads and verifies a BLOB, keeps the newest, names models for the admin pages and the audit
 * trail, and applies the policy's certification rules at registration and sign-in.
 *
 * The store holds the models; this keeps a copy of them so that sign-in and registration read them
 * without a query. The copy is only ever what the store held: a BLOB is loaded into the store first
 * and the copy re-read from it, and `refresh()` re-reads it whenever another node may have loaded
 * one (the cluster bus calls it; `open` calls it once at start).
 */
export class AuthenticatorMetadata {
  private models = new Map<string, AuthenticatorModelView>();
  /** Bumped by every refresh, so an older read that finishes late does not replace a newer one. */
  private generation = 0;

  /** Constructs with an empty copy of the models: call `refresh()` before use (or use `open`). */
  constructor(private readonly deps: AuthenticatorMetadataDeps) {}

  /** Constructs and reads the stored models. */
  static async open(deps: AuthenticatorMetadataDeps): Promise<AuthenticatorMetadata> {
    const metadata = new AuthenticatorMetadata(deps);
    await metadata.refresh();
    return metadata;
  }

  /** Re-reads the models from the store (after a BLOB was loaded here or on another node). */
  async refresh(): Promise<void> {
    const generation = ++this.generation;
    const models = await this.deps.store.authenticatorModels.list();
    if (generation === this.generation) this.models = new Map(models.map((m) => [m.aaguid, m]));
  }

  /**
   * Verifies `blob` and, if it is newer than the one loaded, replaces every model with its own in
   * one transaction. Any refusal leaves the loaded metadata as it was, and is recorded.
   */
  async load(blob: Uint8Array, actor: string, source: 'upload' | 'file'): Promise<AuthenticatorMetadataView> {
    const sha256 = createHash('sha256').update(blob).digest('hex');
    try {
      if (blob.length > MDS_BLOB_MAX_BYTES) {
        throw new BatonError(
          'PAYLOAD_TOO_LARGE',
          `The BLOB is ${blob.length} bytes; at most ${MDS_BLOB_MAX_BYTES} are accepted`,
        );
      }
      const verified = await verifyMetadataBlob(blob, this.deps.trustAnchors, this.deps.clock());
      const models = verified.models;
      await this.deps.events.atomically(async (uow) => {
        const current = await uow.store.authenticatorModels.currentBlob();
        if (current !== undefined && verified.no <= current.no) {
          throw new BatonError(
            'METADATA_BLOB_NOT_NEWER',
            `The BLOB's number ${verified.no} is not higher than the loaded one's (${current.no})`,
          );
        }
        const loadedAt = this.deps.clock();
        await uow.store.authenticatorModels.replace(
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
        await uow.record({
          type: 'admin-action',
          subject: {},
          outcome: 'success',
          reasons: ['authenticator-metadata-loaded'],
          detail: { actor, source, no: verified.no, nextUpdate: verified.nextUpdate, models: models.length, sha256 },
        });
      });
    } catch (error) {
      const code = error instanceof BatonError ? error.code : 'INTERNAL';
      await this.deps.events.record({
        type: 'admin-action',
        subject: {},
        outcome: 'failure',
        reasons: ['authenticator-metadata-refused', code.toLowerCase().replace(/_/g, '-')],
        detail: { actor, source, sha256 },
      });
      throw error;
    }
    // What this node now uses is what the store holds, read back: the same as every other node reads.
    await this.refresh();
    return this.view();
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
        throw new BatonError(
          'PAYLOAD_TOO_LARGE',
          `The metadata BLOB file ${file} is larger than ${MDS_BLOB_MAX_BYTES} bytes`,
        );
      }
      blob = readFileSync(file);
    } catch (cause) {
      if (cause instanceof BatonError) throw cause;
      throw new BatonError('NOT_FOUND', `Cannot read the metadata BLOB file ${file}`, { cause });
    }
    const sha256 = createHash('sha256').update(blob).digest('hex');
    const loaded = async () => (await this.deps.store.authenticatorModels.currentBlob())?.sha256 === sha256;
    if (await loaded()) {
      await this.refresh();
      return this.view();
    }
    try {
      const view = await this.load(blob, 'config:mdsBlobFile', 'file');
      logger.info({ file, no: view.no, models: view.models }, 'authenticator metadata loaded');
      return view;
    } catch (error) {
      // Nodes starting together with the same file: another one stored it first.
      if (await loaded().catch(() => false)) {
        await this.refresh();
        return this.view();
      }
      if (error instanceof BatonError && ['METADATA_BLOB_NOT_NEWER', 'METADATA_BLOB_EXPIRED'].includes(error.code)) {
        logger.warn({ file, code: error.code }, `authenticator metadata file not loaded: ${error.message}`);
        await this.refresh();
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

  /** The BLOB loaded now (as the store has it). */
  async view(): Promise<AuthenticatorMetadataView> {
    const blob = await this.deps.store.authenticatorModels.currentBlob();
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

  /** Every model, as the store has it now (the admin page: re-read, whichever node loaded the BLOB). */
  async list(): Promise<AuthenticatorModelView[]> {
    await this.refresh();
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
