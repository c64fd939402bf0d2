/**
 * HTTP routes of the Shared Signals receiver: the RFC 8935 push endpoint (its own error bodies) and
 * the admin routes that register upstream transmitters, pause, resume, disable and verify them, and link
 * subject identifiers to operators.
 */
import { parseJson } from '../../http/http-kit.js';
import type { Route, RouteContext } from '../../http/router.js';
import {
  CreateStreamSchema,
  LinkIdentitySchema,
  RegisterTransmitterSchema,
  SourceStatusSchema,
  VerifySourceSchema,
  pushPathOf,
  type SsfReceiver,
} from './receiver-service.js';
import type { IdentityRecord } from './repository.js';

export interface SsfReceiverRouteDeps {
  receiver: SsfReceiver;
}

function actorOf(ctx: RouteContext): string {
  return ctx.actor ?? 'admin:unknown';
}

function identityView(i: IdentityRecord) {
  return {
    id: i.id,
    operatorId: i.operatorId,
    format: i.format,
    subject: i.subject,
    createdAt: i.createdAt,
    createdBy: i.createdBy,
  };
}

/** The base URL the request came to (for the push endpoint Baton gives an upstream). */
function requestBase(ctx: RouteContext): string {
  const host = ctx.req.headers.host ?? 'localhost';
  const proto = (ctx.req.socket as { encrypted?: boolean }).encrypted === true ? 'https' : 'http';
  return `${proto}://${host}`;
}

export function ssfReceiverRoutes(deps: SsfReceiverRouteDeps): Route[] {
  return [
    {
      route: 'ssfReceiverPush',
      handler: async (ctx) => {
        const answer = await deps.receiver.push(
          ctx.params.id ?? '',
          ctx.req.headers.authorization,
          ctx.req.headers['content-type'],
          ctx.body,
        );
        if (answer.status === 202) {
          ctx.res.writeHead(202, { 'cache-control': 'no-store', 'content-length': 0 });
          ctx.res.end();
          return undefined;
        }
        return answer;
      },
    },
    {
      route: 'adminSsfTransmitterRegister',
      handler: async (ctx) => {
        const input = parseJson(ctx.req, ctx.body, RegisterTransmitterSchema);
        const { transmitter, pushToken } = await deps.receiver.register(input, actorOf(ctx));
        return {
          status: 201,
          body: { transmitter, pushEndpoint: `${requestBase(ctx)}${pushPathOf(transmitter.id)}`, pushToken },
        };
      },
    },
    { route: 'adminSsfTransmitters', handler: async () => ({ transmitters: await deps.receiver.list() }) },
    {
      route: 'adminSsfTransmitter',
      handler: async (ctx) => ({ transmitter: await deps.receiver.get(ctx.params.id ?? '') }),
    },
    {
      route: 'adminSsfTransmitterDisable',
      handler: async (ctx) => ({ transmitter: await deps.receiver.disable(ctx.params.id ?? '', actorOf(ctx)) }),
    },
    {
      route: 'adminSsfTransmitterStatus',
      handler: async (ctx) => {
        const input = parseJson(ctx.req, ctx.body, SourceStatusSchema);
        return deps.receiver.setStatus(ctx.params.id ?? '', input, actorOf(ctx));
      },
    },
    {
      route: 'adminSsfTransmitterVerify',
      handler: async (ctx) => {
        const input = parseJson(ctx.req, ctx.body, VerifySourceSchema);
        return deps.receiver.verify(ctx.params.id ?? '', input, actorOf(ctx));
      },
    },
    {
      route: 'adminSsfTransmitterStream',
      handler: async (ctx) => {
        const input = parseJson(ctx.req, ctx.body, CreateStreamSchema);
        return deps.receiver.createStream(ctx.params.id ?? '', input, requestBase(ctx), actorOf(ctx));
      },
    },
    {
      route: 'adminOperatorIdentities',
      handler: async (ctx) => ({
        identities: (await deps.receiver.identities(ctx.params.id ?? '')).map(identityView),
      }),
    },
    {
      route: 'adminOperatorIdentityLink',
      handler: async (ctx) => {
        const input = parseJson(ctx.req, ctx.body, LinkIdentitySchema);
        return {
          status: 201,
          body: { identity: identityView(await deps.receiver.link(ctx.params.id ?? '', input, actorOf(ctx))) },
        };
      },
    },
    {
      route: 'adminOperatorIdentityUnlink',
      handler: async (ctx) => ({
        identity: identityView(
          await deps.receiver.unlink(ctx.params.id ?? '', ctx.params.identityId ?? '', actorOf(ctx)),
        ),
      }),
    },
  ];
}
