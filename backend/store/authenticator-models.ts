import type { Sync } from './repositories.js';
import type Database from 'better-sqlite3';
import { z } from 'zod';
import { CERTIFICATION_LEVELS, type AuthenticatorModelView } from '../../shared/authenticator-metadata.js';

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

const StatusReportsSchema = z.array(
  z.strictObject({
    status: z.string(),
    effectiveDate: z.string().nullable(),
    authenticatorVersion: z.number().nullable(),
    url: z.string().nullable(),
  }),
);

/** A model row read back: checked like any other input before it is trusted. */
const ModelRowSchema = z.object({
  aaguid: z.string(),
  description: z.string(),
  certification: z.enum(CERTIFICATION_LEVELS),
  status: z.string(),
  status_reports: z.string(),
  time_of_last_status_change: z.string().nullable(),
  blob_no: z.number(),
});

const BlobRowSchema = z.object({
  no: z.number(),
  next_update: z.string(),
  sha256: z.string(),
  loaded_at: z.number(),
  loaded_by: z.string(),
  models: z.number(),
});

export class SqliteAuthenticatorModels implements Sync<AuthenticatorModelRepository> {
  private readonly stmts;

  constructor(db: Database.Database) {
    this.stmts = {
      current: db.prepare('SELECT * FROM authenticator_metadata_blobs ORDER BY no DESC LIMIT 1'),
      list: db.prepare('SELECT * FROM authenticator_models ORDER BY description, aaguid'),
      clear: db.prepare('DELETE FROM authenticator_models'),
      insert: db.prepare(
        `INSERT INTO authenticator_models
           (aaguid, description, certification, status, status_reports, time_of_last_status_change, blob_no)
         VALUES (?, ?, ?, ?, ?, ?, ?)`,
      ),
      insertBlob: db.prepare(
        'INSERT INTO authenticator_metadata_blobs (no, next_update, sha256, loaded_at, loaded_by, models) VALUES (?, ?, ?, ?, ?, ?)',
      ),
    };
  }

  currentBlob(): MetadataBlobRecord | undefined {
    const row: unknown = this.stmts.current.get();
    if (row === undefined) return undefined;
    const r = BlobRowSchema.parse(row);
    return {
      no: r.no,
      nextUpdate: r.next_update,
      sha256: r.sha256,
      loadedAt: r.loaded_at,
      loadedBy: r.loaded_by,
      models: r.models,
    };
  }

  list(): AuthenticatorModelView[] {
    return this.stmts.list.all().map((row) => {
      const r = ModelRowSchema.parse(row);
      return {
        aaguid: r.aaguid,
        model: r.description,
        certification: r.certification,
        status: r.status,
        statusReports: StatusReportsSchema.parse(JSON.parse(r.status_reports)),
        timeOfLastStatusChange: r.time_of_last_status_change,
        blobNo: r.blob_no,
      };
    });
  }

  replace(blob: MetadataBlobRecord, models: readonly AuthenticatorModelView[]): void {
    this.stmts.clear.run();
    this.stmts.insertBlob.run(blob.no, blob.nextUpdate, blob.sha256, blob.loadedAt, blob.loadedBy, blob.models);
    for (const m of models) {
      this.stmts.insert.run(
        m.aaguid,
        m.model,
        m.certification,
        m.status,
        JSON.stringify(m.statusReports),
        m.timeOfLastStatusChange,
        m.blobNo,
      );
    }
  }
}
