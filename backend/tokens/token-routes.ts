import { TokenExchangeRequestSchema } from '../../shared/action-tokens.js';
import { parseJson } from '../http/http-kit.js';
import type { Route } from '../http/router.js';
import type { ActionTokenIssuer } from './action-token-issuer.js';
import type { RevocationFeed } from './revocation-feed.js';
import type { TokenExchange } from './token-exchange.js';

export interface TokenRouteDeps {
  exchange: TokenExchange;
  issuer: ActionTokenIssuer;
  feed: RevocationFeed;
}

/** The action-token routes (docs/action-tokens.md): the exchange a console makes, the JWKS and revocation stream apps use. */
export function tokenRoutes(deps: TokenRouteDeps): Route[] {
  return [
    {
      route: 'tokenExchange',
      handler: (ctx) => {
        if (ctx.console === undefined) throw new Error('console route without an authenticated console');
        const request = parseJson(ctx.req, ctx.body, TokenExchangeRequestSchema);
        return deps.exchange.exchange(ctx.console, request);
      },
    },
    {
      route: 'tokenJwks',
      handler: () => deps.issuer.servedJwks(),
    },
    {
      route: 'tokenRevocations',
      handler: async (ctx) => {
        const app = await deps.feed.authenticate(ctx.req);
        await deps.feed.subscribe(app, ctx.req, ctx.res);
        return undefined;
      },
    },
  ];
}
