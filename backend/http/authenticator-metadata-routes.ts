import { BatonError } from '../../shared/errors.js';
import { MDS_BLOB_MAX_BYTES } from '../crypto/metadata-blob.js';
import type { AuthenticatorMetadata } from '../services/authenticator-metadata.js';
import type { Route } from './router.js';

export interface AuthenticatorMetadataRouteDeps {
  authenticators: AuthenticatorMetadata;
}

/** Content types a BLOB upload may carry: it is the MDS3 file as downloaded (a compact JWS). */
const BLOB_TYPES = /^(application\/jwt|application\/jose|application\/octet-stream|text\/plain)(\s*;|$)/i;

/**
 * The FIDO metadata an admin supplies: upload a BLOB (verified, kept only when newer), read which
 * one is loaded, and list the models it names.
 */
export function authenticatorMetadataRoutes(deps: AuthenticatorMetadataRouteDeps): Route[] {
  return [
    {
      route: 'adminMetadata',
      handler: async () => ({ metadata: await deps.authenticators.view() }),
    },
    {
      route: 'adminMetadataLoad',
      maxBodyBytes: MDS_BLOB_MAX_BYTES,
      handler: async (ctx) => {
        const type = ctx.req.headers['content-type'] ?? '';
        if (!BLOB_TYPES.test(type)) {
          throw new BatonError(
            'UNSUPPORTED_MEDIA_TYPE',
            `Expected the BLOB file as application/jwt, application/octet-stream or text/plain, got "${type}"`,
          );
        }
        const metadata = await deps.authenticators.load(ctx.body, ctx.actor ?? 'admin:unknown', 'upload');
        return { status: 201, body: { metadata } };
      },
    },
    {
      route: 'adminModels',
      handler: async () => ({ metadata: await deps.authenticators.view(), models: await deps.authenticators.list() }),
    },
  ];
}
