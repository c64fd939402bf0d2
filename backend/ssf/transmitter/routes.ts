import { BatonError } from '../../../shared/errors.js';
import { ROUTES } from '../../../shared/routes.js';
import { SECURITY_HEADERS, parseJson, sendJson } from '../../http/http-kit.js';
import type { Route, RouteContext } from '../../http/router.js';
import type { TransmitterKeys } from './keys.js';
import {
  CreateStreamSchema,
  PollRequestSchema,
  StatusUpdateSchema,
  SubjectRequestSchema,
  UpdateStreamSchema,
  VerificationRequestSchema,
  type SsfTransmitter,
} from './transmitter.js';

export interface SsfTransmitterRouteDeps {
  transmitter: SsfTransmitter;
  keys: TransmitterKeys;
}

function noContent(ctx: RouteContext): undefined {
  ctx.res.writeHead(204, SECURITY_HEADERS);
  ctx.res.end();
  return undefined;
}

function streamIdOf(ctx: RouteContext): string {
  const id = ctx.query.get('stream_id');
  if (id === null || id === '') {
    throw new BatonError('SSF_STREAM_INVALID', 'stream_id is required (query parameter)', {
      issues: [{ path: 'stream_id', message: 'required' }],
    });
  }
  return id;
}

/**
 * A refusal of the receiver's token carries `WWW-Authenticate` (RFC 6750 §3) beside Baton's error
 * body: `invalid_token` for a missing/unknown/revoked one, `insufficient_scope` with the scope needed.
 */
async function receiver(deps: SsfTransmitterRouteDeps, ctx: RouteContext, scope: 'ssf.manage' | 'ssf.read') {
  try {
    return await deps.transmitter.authenticate(ctx.req, scope);
  } catch (error) {
    if (error instanceof BatonError) {
      const value =
        error.code === 'SSF_SCOPE_INSUFFICIENT'
          ? `Bearer error="insufficient_scope", scope="${scope}"`
          : error.code === 'SSF_TOKEN_INVALID'
            ? 'Bearer error="invalid_token"'
            : 'Bearer';
      ctx.res.setHeader('www-authenticate', value);
    }
    throw error;
  }
}

/** The transmitter's endpoints (receivers') and its admin endpoints. */
export function ssfTransmitterRoutes(deps: SsfTransmitterRouteDeps): Route[] {
  const t = deps.transmitter;
  return [
    { route: 'ssfConfiguration', handler: () => t.configuration() },
    {
      route: 'ssfJwks',
      handler: async (ctx) => {
        ctx.res.setHeader('cache-control', 'max-age=300');
        return deps.keys.publishedJwks();
      },
    },
    {
      route: 'ssfStreamCreate',
      handler: async (ctx) => {
        const r = await receiver(deps, ctx, 'ssf.manage');
        return { status: 201, body: await t.createStream(r, parseJson(ctx.req, ctx.body, CreateStreamSchema)) };
      },
    },
    {
      route: 'ssfStreamRead',
      handler: async (ctx) => {
        const r = await receiver(deps, ctx, 'ssf.read');
        return t.readStreams(r, ctx.query.get('stream_id'));
      },
    },
    {
      route: 'ssfStreamUpdate',
      handler: async (ctx) => {
        const r = await receiver(deps, ctx, 'ssf.manage');
        return t.updateStream(r, parseJson(ctx.req, ctx.body, UpdateStreamSchema), false);
      },
    },
    {
      route: 'ssfStreamReplace',
      handler: async (ctx) => {
        const r = await receiver(deps, ctx, 'ssf.manage');
        return t.updateStream(r, parseJson(ctx.req, ctx.body, UpdateStreamSchema), true);
      },
    },
    {
      route: 'ssfStreamDelete',
      handler: async (ctx) => {
        const r = await receiver(deps, ctx, 'ssf.manage');
        await t.deleteStream(r, streamIdOf(ctx));
        return noContent(ctx);
      },
    },
    {
      route: 'ssfStatusRead',
      handler: async (ctx) => {
        const r = await receiver(deps, ctx, 'ssf.read');
        return t.status(r, streamIdOf(ctx));
      },
    },
    {
      route: 'ssfStatusUpdate',
      handler: async (ctx) => {
        const r = await receiver(deps, ctx, 'ssf.manage');
        const body = parseJson(ctx.req, ctx.body, StatusUpdateSchema);
        return t.setStatus(body.stream_id, body.status, body.reason, `receiver:${r.id}`, r);
      },
    },
    {
      route: 'ssfSubjectAdd',
      handler: async (ctx) => {
        const r = await receiver(deps, ctx, 'ssf.manage');
        const body = parseJson(ctx.req, ctx.body, SubjectRequestSchema);
        await t.addSubject(r, body.stream_id, body.subject);
        return {};
      },
    },
    {
      route: 'ssfSubjectRemove',
      handler: async (ctx) => {
        const r = await receiver(deps, ctx, 'ssf.manage');
        const body = parseJson(ctx.req, ctx.body, SubjectRequestSchema);
        await t.removeSubject(r, body.stream_id, body.subject);
        return noContent(ctx);
      },
    },
    {
      route: 'ssfVerify',
      handler: async (ctx) => {
        const r = await receiver(deps, ctx, 'ssf.read');
        const body = parseJson(ctx.req, ctx.body, VerificationRequestSchema);
        await t.verify(r, body.stream_id, body.state);
        return noContent(ctx);
      },
    },
    {
      route: 'ssfPoll',
      handler: async (ctx) => {
        const r = await receiver(deps, ctx, 'ssf.read');
        const body = parseJson(ctx.req, ctx.body, PollRequestSchema);
        // A poller that hangs up while its long poll waits is handed nothing (its SETs go to its next poll).
        const gone = new AbortController();
        const hungUp = () => {
          if (!ctx.res.writableEnded) gone.abort();
        };
        ctx.res.once('close', hungUp);
        try {
          const answer = await t.poll(r, ctx.params.id ?? '', body, gone.signal);
          if (!ctx.res.destroyed && !gone.signal.aborted) sendJson(ctx.res, 200, answer);
          else await t.unhand(ctx.params.id ?? '', Object.keys((answer.sets ?? {}) as Record<string, string>));
        } finally {
          ctx.res.off('close', hungUp);
        }
        return undefined;
      },
    },
    // ---- admin ----
    { route: 'adminSsfReceivers', handler: async () => ({ receivers: await t.listReceivers() }) },
    {
      route: 'adminSsfReceiverIssue',
      handler: async (ctx) => {
        const body = parseJson(ctx.req, ctx.body, ROUTES.adminSsfReceiverIssue.request);
        return { status: 201, body: await t.issueReceiver(body, ctx.actor ?? 'admin:unknown') };
      },
    },
    {
      route: 'adminSsfReceiverRevoke',
      handler: async (ctx) => {
        parseJson(ctx.req, ctx.body, ROUTES.adminSsfReceiverRevoke.request);
        return { receiver: await t.revokeReceiver(ctx.params.id ?? '', ctx.actor ?? 'admin:unknown') };
      },
    },
    { route: 'adminSsfStreams', handler: async () => ({ streams: await t.adminStreams(), node: t.nodeView() }) },
    {
      route: 'adminSsfStreamStatus',
      handler: async (ctx) => {
        const body = parseJson(ctx.req, ctx.body, ROUTES.adminSsfStreamStatus.request);
        const actor = ctx.actor ?? 'admin:unknown';
        return t.setStatus(ctx.params.id ?? '', body.status, body.reason ?? `set by ${actor}`, actor);
      },
    },
    {
      route: 'adminSsfStreamVerify',
      handler: async (ctx) => {
        parseJson(ctx.req, ctx.body, ROUTES.adminSsfStreamVerify.request);
        return t.adminVerify(ctx.params.id ?? '', ctx.actor ?? 'admin:unknown');
      },
    },
    { route: 'adminSsfKeys', handler: () => ({ keys: deps.keys.list() }) },
    {
      route: 'adminSsfKeysRotate',
      handler: async (ctx) => {
        const body = parseJson(ctx.req, ctx.body, ROUTES.adminSsfKeysRotate.request);
        return t.rotateKeys(body.algorithm, ctx.actor ?? 'admin:unknown');
      },
    },
  ];
}
