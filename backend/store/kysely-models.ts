/** Authenticator models from the FIDO metadata BLOB an admin supplied (Kysely, both dialects). */
import type { Kysely } from 'kysely';
import { z } from 'zod';
import { CERTIFICATION_LEVELS, type AuthenticatorModelView } from '../../shared/authenticator-metadata.js';
import type { AuthenticatorModelRepository, MetadataBlobRecord } from './authenticator-models.js';
import { atomic, type BatonDatabase, type KyselyContext } from './kysely-schema.js';

const StatusReportsSchema = z.array(
  z.strictObject({
    status: z.string(),
    effectiveDate: z.string().nullable(),
    authenticatorVersion: z.number().nullable(),
    url: z.string().nullable(),
  }),
);
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

export class KyselyAuthenticatorModels implements AuthenticatorModelRepository {
  constructor(private readonly ctx: KyselyContext) {}

  async currentBlob(): Promise<MetadataBlobRecord | undefined> {
    const row = await this.ctx.db
      .selectFrom('authenticator_metadata_blobs')
      .selectAll()
      .orderBy('no', 'desc')
      .limit(1)
      .executeTakeFirst();
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
  async list(): Promise<AuthenticatorModelView[]> {
    const rows = await this.ctx.db
      .selectFrom('authenticator_models')
      .selectAll()
      .orderBy('description')
      .orderBy('aaguid')
      .execute();
    return rows.map((row) => {
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
  async replace(blob: MetadataBlobRecord, models: readonly AuthenticatorModelView[]): Promise<void> {
    await atomic(this.ctx, async (db: Kysely<BatonDatabase>) => {
      await db.deleteFrom('authenticator_models').execute();
      await db
        .insertInto('authenticator_metadata_blobs')
        .values({
          no: blob.no,
          next_update: blob.nextUpdate,
          sha256: blob.sha256,
          loaded_at: blob.loadedAt,
          loaded_by: blob.loadedBy,
          models: blob.models,
        })
        .execute();
      for (let i = 0; i < models.length; i += 200) {
        await db
          .insertInto('authenticator_models')
          .values(
            models.slice(i, i + 200).map((m) => ({
              aaguid: m.aaguid,
              description: m.model,
              certification: m.certification,
              status: m.status,
              status_reports: JSON.stringify(m.statusReports),
              time_of_last_status_change: m.timeOfLastStatusChange,
              blob_no: m.blobNo,
            })),
          )
          .execute();
      }
    });
  }
}
