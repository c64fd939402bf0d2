import type { Logger } from 'pino';
import type { ClusterBus } from '../cluster/bus.js';
import type { TokenIssuer } from '../crypto/token-issuer.js';
import type { EventLog } from '../services/event-log.js';
import type { PolicyService } from '../services/policy-service.js';
import type { SessionService } from '../services/session-service.js';
import type { Store } from '../store/repositories.js';
import { ActionTokenIssuer } from './action-token-issuer.js';
import { RevocationFeed } from './revocation-feed.js';
import { TokenExchange } from './token-exchange.js';

export interface ActionTokenServices {
  /** Signs action tokens with the `action-token` ring (also for service accounts). */
  issuer: ActionTokenIssuer;
  /** The RFC 8693 exchange consoles make for the operator in front. */
  exchange: TokenExchange;
  /** The revocation stream app servers follow. */
  feed: RevocationFeed;
}

/** Builds the action-token parts; the feed subscribes to the bus here, so call it before the bus starts. */
export async function composeActionTokens(deps: {
  dataDir: string;
  clock: () => number;
  logger: Logger;
  store: Store;
  bus: ClusterBus;
  events: EventLog;
  policies: PolicyService;
  sessions: SessionService;
  assurance: TokenIssuer;
  rotationDays: number | undefined;
}): Promise<ActionTokenServices> {
  const issuer = await ActionTokenIssuer.open(deps.dataDir, deps.clock, {
    store: deps.store,
    logger: deps.logger,
    rotationDays: deps.rotationDays,
  });
  const exchange = new TokenExchange({
    store: deps.store,
    events: deps.events,
    policies: deps.policies,
    sessions: deps.sessions,
    assurance: deps.assurance,
    issuer,
    clock: deps.clock,
  });
  const feed = new RevocationFeed({
    store: deps.store,
    bus: deps.bus,
    clock: deps.clock,
    logger: deps.logger,
    policy: () => deps.policies.policy,
  });
  return { issuer, exchange, feed };
}
