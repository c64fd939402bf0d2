import type { AuthenticatorModelView } from '../../shared/authenticator-metadata.js';

/** The metadata BLOB the stored models came from. */
export interface MetadataBlobRecord {
  no: number;
  nextUpdate: string;
  sha256: string;
  loadedAt: number;
  loadedBy: string;
  models: number;
}

/** Authenticator models from the last verified FIDO metadata BLOB (migration 6). */
export interface AuthenticatorModelRepository {
  /** The BLOB currently loaded, if any: the one with the highest `no`. */
  currentBlob(): Promise<MetadataBlobRecord | undefined>;
  /** Every stored model. */
  list(): Promise<AuthenticatorModelView[]>;
  /** Replaces every model with those of `blob` and records it (inside the caller's transaction). */
  replace(blob: MetadataBlobRecord, models: readonly AuthenticatorModelView[]): Promise<void>;
}
