import type { Logger } from 'pino';
import type { EventLog } from '../../services/event-log.js';
import type { Store } from '../../store/repositories.js';
import type { Route } from '../../http/router.js';
import type { SsfTransmitterConfig } from './config.js';
import { TransmitterKeys } from './keys.js';
import { ssfTransmitterRoutes } from './routes.js';
import { SsfTransmitter } from './transmitter.js';

export { SsfTransmitter } from './transmitter.js';
export { TransmitterKeys } from './keys.js';

export interface SsfTransmitterParts {
  transmitter: SsfTransmitter;
  keys: TransmitterKeys;
  routes: Route[];
}

/** Opens the transmitter's key ring and builds the transmitter and its routes (not started). */
export async function composeSsfTransmitter(deps: {
  store: Store;
  events: EventLog;
  config: SsfTransmitterConfig;
  dataDir: string;
  clock: () => number;
  logger: Logger;
  nodeId: string;
  issuer: () => string;
}): Promise<SsfTransmitterParts> {
  const keys = await TransmitterKeys.open({
    store: deps.store,
    dataDir: deps.dataDir,
    clock: deps.clock,
    algorithm: deps.config.signingAlgorithm,
    overlapMs: deps.config.keyOverlapHours * 3600 * 1000,
    logger: deps.logger,
  });
  const transmitter = new SsfTransmitter({ ...deps, keys });
  return { transmitter, keys, routes: ssfTransmitterRoutes({ transmitter, keys }) };
}
