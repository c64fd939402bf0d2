import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { writeFileSync } from 'node:fs';
import pino, { type Logger } from 'pino';
import { CONSOLE_WS_PATH } from '../shared/protocol.js';
import type { BackendConfig } from './config.js';
import { newSecretToken, sha256Hex } from './crypto/secrets.js';
import { adminRoutes, assertNotLastAdmin } from './http/admin-routes.js';
import { withPagedLists } from './http/admin-table-routes.js';
import { DEFAULT_ADMIN_CONSOLE_DIR, adminAssetRoutes } from './http/admin-assets.js';
import { adminAuthRoutes } from './http/admin-auth-routes.js';
import { adminConsoleRoutes } from './http/admin-console-routes.js';
import { authenticatorMetadataRoutes } from './http/authenticator-metadata-routes.js';
import { ClientAddresses } from './http/client-address.js';
import { HttpLimits } from './http/http-limits.js';
import { AdminAuth } from './services/admin-auth.js';
import { AdminCeremonies } from './services/admin-ceremonies.js';
import { consoleRoutes } from './http/console-routes.js';
import { tokenRoutes } from './tokens/token-routes.js';
import { SECURITY_HEADERS, httpDate, readBody, sendError, sendJson } from './http/http-kit.js';
import { Router, isReply, type RouteContext } from './http/router.js';
import { ROUTES } from '../shared/routes.js';
import type { OutboxReport } from './store/admin-repositories.js';
import { GroupedStatements } from './store/grouped-reads.js';
import type { Store } from './store/repositories.js';
import { ConsoleChannel, type ConsoleConnection } from './ws/console-channel.js';
import {
  composeServices,
  startCluster,
  stopCluster,
  type ClusterDeps,
  type Services,
} from './services/compose-services.js';
import { ChainCheckpoints } from './services/chain-checkpoints.js';
import { DatabaseHealth, isDatabaseDamage, probeDatabase } from './store/database-health.js';
import { NodeHealth } from './node-health.js';
import { DATABASE_FILE } from './store/sqlite-store.js';
import { openStore } from './store/open-store.js';
import { createOnce } from './services/signed-challenges.js';
import { AssertionGate } from './services/assertion-gate.js';
import { BatonError } from '../shared/errors.js';
import { ServiceAccounts } from './service-accounts/service-accounts.js';
import { serviceRoutes } from './service-accounts/service-routes.js';
import { BreakGlass, breakGlassAllows } from './break-glass/break-glass.js';
import { breakGlassRoutes } from './break-glass/break-glass-routes.js';
import { join } from 'node:path';
import { ConsoleConnections } from './ws/console-connections.js';
import type { EventLog } from './services/event-log.js';
import type { PolicyService } from './services/policy-service.js';
import type { RevocationHub } from './services/revocation-hub.js';
import { SiemExporter } from './siem/exporter.js';
// Shared Signals receiver and SCIM provisioning (issue 13, helper "ssf-in")
import { SsfReceiver } from './ssf/receiver/receiver-service.js';
import { ssfReceiverRoutes } from './ssf/receiver/routes.js';
import { ScimService } from './scim/scim-service.js';
import { answerScimError, isScimPath, scimRoutes } from './scim/routes.js';
import { siemRoutes } from './http/siem-routes.js';
import { sweepExpiredSessions } from './services/session-expiry-sweep.js';
// Shared Signals transmitter (issue 13, helper "ssf-out"): backend/ssf/transmitter/
import { composeSsfTransmitter } from './ssf/transmitter/index.js';

export interface BackendDeps {
  clock?: () => number;
  logger?: Logger;
  /** A store opened by the caller (tests, benchmarks); it is closed by `stop()` all the same. */
  store?: Store;
  /**
   * Whether this start ends the admin sessions of an earlier run (an admin signs in again after a
   * restart). Default: on the embedded engine, where one start is the whole backend's restart; never
   * on PostgreSQL, where one node starting must not sign out the admins of the others.
   */
  endAdminSessionsAtStart?: boolean;
  /** Cluster parts' test hooks (the freshness monitor's clock): compose-services.ts. */
  cluster?: ClusterDeps;
}

export interface Backend {
  readonly config: BackendConfig;
  readonly url: string;
  readonly port: number;
  /** The admin console's origin (admin passkey ceremonies run there): `http://localhost:<port>` unless configured. */
  readonly adminOrigin: string;
  /** The bootstrap admin token, only on the first start of a fresh data directory. */
  readonly bootstrapAdminToken: string | undefined;
  readonly store: Store;
  readonly events: EventLog;
  readonly channel: ConsoleChannel;
  readonly revocations: RevocationHub;
  readonly policies: PolicyService;
  /** The composed services, for in-process tests and benchmarks. */
  readonly services: Services;
  stop(): Promise<void>;
}

export const BACKEND_VERSION = '0.1.0';

/** How often expired challenges, nonces and admin sessions are swept. */
const SWEEP_INTERVAL_MS = 30_000;

/**
 * The one place the backend's store is opened from its configuration: PostgreSQL (a cluster node)
 * when a database URL is configured, else the embedded SQLite store in the data directory.
 */
export function openBackendStore(config: BackendConfig, logger: Logger): Promise<Store> {
  return openStore({
    dataDir: config.dataDir,
    durability: config.durability,
    databaseUrl: config.databaseUrl,
    // An idle pooled connection that fails is replaced by the pool; it is only worth a line in the log.
    onPoolError: (error) => logger.warn({ err: error }, 'a pooled database connection failed'),
  });
}

/** The composition root: wires the parts together and starts listening. Nothing runs on import. */
export async function startBackend(config: BackendConfig, deps: BackendDeps = {}): Promise<Backend> {
  const clock = deps.clock ?? Date.now;
  const logger =
    deps.logger ??
    pino({
      level: config.logLevel,
      base: { service: 'baton-backend' },
      redact: {
        paths: ['req.headers.authorization', 'req.headers["x-baton-signature"]', '*.token', '*.code'],
        censor: '[redacted]',
      },
    });
  const store = deps.store ?? (await openBackendStore(config, logger));
  try {
    return await startOn(store, config, deps, clock, logger);
  } catch (error) {
    // A start that fails (the port taken, a refused metadata file) leaves nothing it opened behind it.
    if (deps.store === undefined) await store.close().catch(() => undefined);
    throw error;
  }
}

async function startOn(
  store: Store,
  config: BackendConfig,
  deps: BackendDeps,
  clock: () => number,
  logger: Logger,
): Promise<Backend> {
  // This node's console connections: built first and given to the services (their ConsolePort) and
  // to the console channel below (which fills it), so nothing is bound after the fact.
  const consoles = new ConsoleConnections<ConsoleConnection>();
  const services = await composeServices(config, {
    clock,
    logger,
    store,
    consoles,
    ...(deps.cluster === undefined ? {} : { cluster: deps.cluster }),
  });
  try {
    return await listenOn(services, store, config, deps, clock, logger, consoles);
  } catch (error) {
    await stopCluster(services, logger);
    await services.verifyPool?.close();
    throw error;
  }
}

async function listenOn(
  services: Services,
  store: Store,
  config: BackendConfig,
  deps: BackendDeps,
  clock: () => number,
  logger: Logger,
  consoles: ConsoleConnections<ConsoleConnection>,
): Promise<Backend> {
  const { events, policies, tokens, registry, operators, sessions, stepUps, revocations, attestationRoots } = services;
  // Chain heads signed with a key outside the database; the database file's integrity as last checked.
  const checkpoints = await ChainCheckpoints.open({
    store,
    dataDir: config.dataDir,
    clock,
    logger,
    intervalSeconds: config.checkpointIntervalSeconds,
    keyRotationDays: config.checkpointKeyRotationDays,
  });
  const database = new DatabaseHealth(join(config.dataDir, DATABASE_FILE), clock);
  const outboxReports = new GroupedStatements<OutboxReport, void>(
    (_consoleId, report) => store.admin.recordOutbox(report),
    async (reports) => {
      await store.admin.recordOutboxMany([...reports.values()]);
      return new Map();
    },
  );
  const channel = new ConsoleChannel({
    commands: store.commands,
    registry,
    events,
    policies,
    revocations,
    sessions,
    logger,
    clock,
    heartbeatSeconds: config.heartbeatSeconds,
    helloTimeoutSeconds: config.helloTimeoutSeconds,
    // The outbox backlog a console reports is stored for the admin console (a failure is logged by the channel),
    // grouped under load: a burst of reconnects writes a few statements.
    onHello: (consoleId, hello) =>
      hello.outbox === undefined
        ? undefined
        : outboxReports.run(consoleId, { consoleId, ...hello.outbox, reportedAt: clock() }),
    consoles,
    bus: services.bus,
    // Consoles on this node are told while its view of revocations may be stale (a non-fatal `error`
    // NODE_STALE, which the agent shows as a notice); sign-ins there are refused or marked meanwhile.
    freshness: services.freshness,
  });

  const clientAddresses = new ClientAddresses(config.trustProxy);
  // Known once the server listens (the default is http://localhost:<the port actually bound>).
  let adminOrigin = config.adminOrigin ?? '';
  const origin = () => adminOrigin;
  const adminAuth = new AdminAuth({ store, events, clock, origin, logger, bus: services.bus });
  const adminCeremonies = new AdminCeremonies({
    store,
    events,
    policies,
    operators,
    auth: adminAuth,
    clock,
    rpId: config.rpId,
    rpName: config.rpName,
    origin,
    challengeTtlMs: config.challengeTtlSeconds * 1000,
    attestationRootsConfigured: attestationRoots > 0,
    authenticators: services.authenticators,
    verifyPool: services.verifyPool,
  });

  const siem = new SiemExporter({
    store,
    events,
    sinks: config.siem.sinks,
    nodeId: services.nodeId,
    logger,
    productVersion: BACKEND_VERSION,
  });

  // ---- service accounts (issue 14 items 5-6, helper "services"): backend/service-accounts/ ----
  const serviceAccounts = new ServiceAccounts({
    store,
    events,
    clock,
    policy: () => policies.version,
    signer: services.actionTokens.issuer,
  });
  // ---- break-glass, backend side (issue 14 item 7, helper "services"): backend/break-glass/ ----
  // The supervisor's tap (helper "glass"): the console ceremonies' context and assertion checks.
  const breakGlassTap = {
    store,
    events,
    policies,
    challenges: services.challenges,
    ceremonies: services.ceremonies,
    clock,
    authenticators: services.authenticators,
  };
  const breakGlass = new BreakGlass({
    store,
    events,
    sessions,
    clock,
    policy: () => policies.version,
    tap: { ctx: breakGlassTap, gate: new AssertionGate(breakGlassTap) },
  });
  // Action tokens (helper "tokens"): a break-glass session's tokens only for the policy's breakGlass.actions.
  services.actionTokens.exchange.useBreakGlass({
    grantForSession: (id) => breakGlass.grantForSession(id),
    allows: breakGlassAllows,
  });

  // ---- Shared Signals transmitter (issue 13, helper "ssf-out"): backend/ssf/transmitter/, docs/shared-signals.md ----
  const ssfOut = await composeSsfTransmitter({
    store,
    events,
    config: config.ssf,
    dataDir: config.dataDir,
    clock,
    logger,
    nodeId: services.nodeId,
    // The admin origin is known once the server listens; the transmitter starts after that.
    issuer: () => config.ssf.issuer ?? adminOrigin,
  });

  const router = new Router()
    .add(consoleRoutes({ registry, operators, sessions, stepUps, policies, revocations, clock }))
    .add(
      adminRoutes({
        store,
        registry,
        operators,
        sessions,
        policies,
        revocations,
        events,
        auth: adminAuth,
        isConnected: (id) => channel.isConnected(id),
        clock,
        checkpoints,
        database,
        tokens,
        streamStallMs: config.eventStreamStallSeconds * 1000,
        streamKeepAliveMs: config.eventStreamKeepAliveSeconds * 1000,
        cluster: {
          nodeId: services.nodeId,
          nodes: services.nodes,
          freshness: services.freshness,
          staleAfterMs: config.staleAfterSeconds * 1000,
        },
      }),
    )
    .add(
      adminAuthRoutes({
        store,
        auth: adminAuth,
        ceremonies: adminCeremonies,
        origin,
        clock,
        clientAddress: (req) => clientAddresses.of(req),
      }),
    )
    .add(
      adminConsoleRoutes({
        store,
        events,
        operators,
        policies,
        auth: adminAuth,
        isConnected: (id) => channel.isConnected(id),
        clock,
        checkpoints,
      }),
    )
    // ---- action tokens (issue 14, helper "tokens"): exchange, JWKS, the apps' revocation stream ----
    .add(tokenRoutes(services.actionTokens))
    // ---- service accounts (issue 14, helper "services"): enrolment, token endpoint, key rotation, admin ----
    .add(
      withPagedLists(
        { store, services: serviceAccounts },
        serviceRoutes({
          services: serviceAccounts,
          publicOrigin: origin,
          clientAddress: (req) => clientAddresses.of(req),
        }),
      ),
    )
    .add(withPagedLists({ store, services: serviceAccounts }, breakGlassRoutes({ breakGlass })))
    .add(authenticatorMetadataRoutes({ authenticators: services.authenticators }))
    // The continuous export to the SIEM (backend/siem): one node at a time delivers each sink.
    .add(siemRoutes({ siem }))
    // ---- Shared Signals receiver and SCIM provisioning (issue 13, helper "ssf-in"): backend/ssf/receiver/, backend/scim/ ----
    .add(
      withPagedLists(
        { store, services: serviceAccounts },
        ssfReceiverRoutes({
          receiver: new SsfReceiver({
            store,
            events,
            revocations,
            clock,
            logger,
            assertNotLastAdmin: (operatorId) => assertNotLastAdmin(store, operatorId),
          }),
        }),
      ),
    )
    .add(scimRoutes({ scim: new ScimService({ store, events, revocations, clock, logger, adminSessions: adminAuth }) }))
    .add(withPagedLists({ store, services: serviceAccounts }, ssfOut.routes)) // Shared Signals transmitter (ssf-out)
    .add(adminAssetRoutes(config.adminConsoleDir ?? DEFAULT_ADMIN_CONSOLE_DIR));

  let stopping: Promise<void> | undefined;
  // Real time, not the services' clock: a test's frozen clock would keep the database probe cached forever.
  const health = new NodeHealth({
    nodeId: services.nodeId,
    engine: store.engine,
    version: BACKEND_VERSION,
    startedAt: Date.now(),
    consolesConnected: () => channel.connectionCount,
    logger,
    // One statement through the store (its pool, its connection lock), the path requests take; on
    // PostgreSQL it also asks whether the server accepts writes (a standby after a failover).
    probeDatabase: () => probeDatabase(store),
    // The integrity of the embedded file; PostgreSQL checks its own pages.
    ...(store.engine === 'sqlite' ? { databaseFile: () => database.view() } : {}),
    freshness: () => services.freshness.state(),
    stopping: () => stopping !== undefined,
  });
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const rawPath = req.url ?? '/';
    const url = new URL(rawPath, 'http://backend.invalid');
    if (req.method === 'GET' && (url.pathname === ROUTES.health.path || url.pathname === ROUTES.readyz.path)) {
      // 503 while the database is away or damaged, or the node is stale: monitoring and load balancers
      // see it; the process stays up, recovers by itself, or waits for the admin to act.
      const answer = url.pathname === ROUTES.health.path ? await health.healthz() : await health.readyz();
      sendJson(res, answer.status, answer.body);
      return;
    }
    if (req.method === 'GET' && url.pathname === ROUTES.jwks.path) {
      sendJson(res, 200, await tokens.servedJwks());
      return;
    }
    const { route, params } = router.match(req.method ?? 'GET', url.pathname);
    // A route taking a large body (the metadata BLOB) reads it only once its admin is authenticated.
    const early =
      route.maxBodyBytes !== undefined && route.auth === 'admin'
        ? await adminAuth.authenticate(req, { stream: false })
        : undefined;
    const body = await readBody(req, route.maxBodyBytes);
    const ctx: RouteContext = {
      req,
      res,
      params,
      query: url.searchParams,
      rawPath,
      body,
      console: undefined,
      actor: undefined,
    };
    if (route.auth === 'console') {
      ctx.console = await registry.authenticate({
        method: req.method ?? 'GET',
        path: rawPath,
        headers: req.headers,
        body,
      });
    } else if (route.auth === 'admin') {
      const principal = early ?? (await adminAuth.authenticate(req, { stream: route.passive === true }));
      ctx.admin = principal;
      ctx.actor = principal.actor;
      if (route.stepUp === true) adminAuth.requireStepUp(principal);
    }
    const result = await route.handler(ctx);
    if (result === undefined) return;
    if (isReply(result)) sendJson(res, result.status, result.body);
    else sendJson(res, 200, result);
  };

  // Under /scim/v2 a directory reads SCIM's error shape, whatever failed (RFC 7644 §3.12).
  const errorAnswerFor = (req: IncomingMessage) => (isScimPath(req.url) ? answerScimError : undefined);
  const httpLimits = new HttpLimits(config, logger, clock, errorAnswerFor);
  const server: Server = createServer(httpLimits.serverOptions, (req, res) => {
    res.setHeader('date', httpDate(clock()));
    handle(req, res).catch((error: unknown) => {
      const answer = errorAnswerFor(req);
      if (!isDatabaseDamage(error)) return sendError(res, error, logger, clock(), answer);
      database.markDamaged([error instanceof Error ? error.message : String(error)]);
      const damaged = new BatonError('DATABASE_DAMAGED', 'The database is damaged; an admin must restore it', {
        cause: error,
      });
      return sendError(res, damaged, logger, clock(), answer);
    });
  });
  server.on('upgrade', (req: IncomingMessage, socket, head: Buffer) => {
    const path = new URL(req.url ?? '/', 'http://backend.invalid').pathname;
    if (path !== CONSOLE_WS_PATH) {
      socket.end(
        `HTTP/1.1 404 Not Found\r\n${Object.entries(SECURITY_HEADERS)
          .map(([k, v]) => `${k}: ${v}`)
          .join('\r\n')}\r\nConnection: close\r\n\r\n`,
      );
      return;
    }
    channel.handleUpgrade(req, socket, head);
  });
  httpLimits.apply(server);
  server.maxHeadersCount = 64;

  // The bus listens (and ran its first resync) and the node's view is confirmed before any request.
  await startCluster(services);

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, config.host, () => resolve());
  });
  let bootstrapAdminToken: string | undefined;
  try {
    // Only now, owning the port, does the backend change what a running one may be using.
    if (deps.endAdminSessionsAtStart ?? store.engine === 'sqlite') await adminAuth.endSessionsFromEarlierRun();
    bootstrapAdminToken = await ensureBootstrapToken(store, clock, config.bootstrapTokenFile);
  } catch (error) {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    throw error;
  }
  channel.start();
  checkpoints.start();
  await siem.start();
  // The integrity check reads the embedded database file; a PostgreSQL server checks its own pages.
  if (deps.store === undefined && store.engine === 'sqlite') {
    void database.check(config.integrityCheckSeconds * 1000).then((state) => {
      if (state === 'damaged') logger.error({ file: database.file, ...database.view() }, 'the database is damaged');
    });
  }
  /** Runs a periodic task, one at a time, logging (never throwing) a failure: the next run tries again. */
  const every = (ms: number, what: string, task: () => Promise<unknown>) => {
    let running = false;
    const timer = setInterval(() => {
      if (running) return;
      running = true;
      task()
        .catch((error: unknown) => logger.warn({ err: error }, `${what} failed`))
        .finally(() => (running = false));
    }, ms);
    timer.unref();
    return timer;
  };
  const seenTimer = every(5000, 'recording when consoles were last seen', () => registry.flushLastSeen());
  const adminSweep = every(SWEEP_INTERVAL_MS, 'ending expired admin sessions', () => adminAuth.sweep());
  // Challenges and nonces every node shares expire in the store; any node may sweep them.
  const ephemeralSweep = every(SWEEP_INTERVAL_MS, 'sweeping expired challenges', () => store.ephemeral.sweep(clock()));
  // No silent ends: a session past its lifetime that no console closed is closed here, with its event.
  const sessionSweep = every(SWEEP_INTERVAL_MS, 'closing sessions past their lifetime', () =>
    sweepExpiredSessions(store, events, sessions, clock()),
  );
  // Service accounts: the jtis of expired service tokens (kept only to report what a revocation cut short).
  const serviceTokenSweep = every(SWEEP_INTERVAL_MS, 'sweeping expired service tokens', () => serviceAccounts.sweep());

  const port = (server.address() as AddressInfo).port;
  adminOrigin = config.adminOrigin ?? `http://localhost:${port}`;
  // Shared Signals transmitter (ssf-out): follows the event log from its stored cursor, delivers its queues.
  await ssfOut.transmitter.start();
  const url = `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`;
  logger.info(
    {
      url,
      dataDir: config.dataDir,
      rpId: config.rpId,
      origins: config.origins,
      adminConsole: `${adminOrigin}/admin/`,
      policyVersion: policies.version.version,
      attestationRoots,
    },
    'baton backend listening',
  );

  const stop = () => {
    stopping ??= (async () => {
      logger.info('baton backend shutting down');
      clearInterval(seenTimer);
      clearInterval(adminSweep);
      clearInterval(ephemeralSweep);
      clearInterval(sessionSweep);
      clearInterval(serviceTokenSweep);
      services.actionTokens.feed.close(); // action tokens: ends the app servers' revocation streams
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      await channel.close();
      server.closeAllConnections();
      await closed;
      // What is still held in memory is written before the store closes; a failure is logged and the
      // rest still runs, so the store is always closed.
      const settle = async (what: string, task: () => Promise<unknown>) => {
        try {
          await task();
        } catch (error) {
          logger.error({ err: error }, `${what} failed while stopping`);
        }
      };
      // No request is left that could still verify a signature.
      await settle('closing the verification threads', async () => services.verifyPool?.close());
      await settle('committing queued console events', () => events.drain());
      await settle('stopping the Shared Signals transmitter', () => ssfOut.transmitter.stop());
      await settle('stopping the SIEM export', () => siem.stop());
      await settle('recording revocation acknowledgements', () => revocations.flushAcks());
      await settle('recording when consoles were last seen', () => registry.flushLastSeen());
      await settle('signing the last chain checkpoint', () => checkpoints.stop());
      // Freshness first (it removes this node's registry row through the store), then the bus.
      await settle('stopping the cluster bus', () => stopCluster(services, logger));
      database.close();
      await store.close();
      logger.info('baton backend stopped');
    })();
    return stopping;
  };

  return {
    config,
    url,
    port,
    adminOrigin,
    bootstrapAdminToken,
    store,
    events,
    channel,
    revocations,
    policies,
    services,
    stop,
  };
}

/**
 * The bootstrap admin token, created on the first start of a fresh database only: by exactly one
 * node when several start together, even one that stalled past its claim (`createOnce`); that node
 * returns it (and writes the file), every other start gets undefined. Whether it may still be used
 * is decided by the store at each request.
 */
async function ensureBootstrapToken(
  store: Store,
  clock: () => number,
  file: string | undefined,
): Promise<string | undefined> {
  let created: string | undefined;
  await createOnce(
    store,
    'bootstrap-admin-token',
    clock,
    async () => ((await store.adminTokens.any()) ? true : undefined),
    async (tx) => {
      const token = newSecretToken('bat');
      await tx.adminTokens.insert(sha256Hex(token), 'bootstrap', clock());
      created = token;
      return true;
    },
  );
  if (created !== undefined && file !== undefined) writeFileSync(file, `${created}\n`, { mode: 0o600 });
  return created;
}
