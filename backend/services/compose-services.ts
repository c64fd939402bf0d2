import type { Logger } from 'pino';
import { CompiledQuery } from 'kysely';
import { InProcessBus, PostgresBus, type ClusterBus } from '../cluster/bus.js';
import { FreshnessMonitor } from '../cluster/freshness.js';
import {
  MemoryNodeRegistry,
  PostgresNodeRegistry,
  newNodeId,
  thisNode,
  type NodeIdentity,
  type NodeRegistry,
} from '../cluster/nodes.js';
import type { BackendConfig } from '../config.js';
import { VerifyPool, verifyPoolPays } from '../crypto/verify-pool.js';
import { loadAttestationRoots } from '../crypto/attestation-roots.js';
import { defaultMetadataTrustAnchors, readMetadataTrustAnchors } from '../crypto/metadata-blob.js';
import { TokenIssuer } from '../crypto/token-issuer.js';
import type { Store } from '../store/repositories.js';
import { openSqliteStore } from '../store/sqlite-store.js';
import { kyselyOf } from '../store/kysely-store.js';
import type { ConsolePort } from './console-port.js';
import { ConsoleRegistry } from './console-registry.js';
import { EventLog } from './event-log.js';
import { OperatorDirectory } from './operator-directory.js';
import { PolicyService } from './policy-service.js';
import { RevocationHub } from './revocation-hub.js';
import { SessionService } from './session-service.js';
import { StepUpService } from './step-up-service.js';
import { AssertionGate } from './assertion-gate.js';
import { AuthenticatorMetadata } from './authenticator-metadata.js';
import { ChallengeStore, WebAuthnCeremonies } from './webauthn-ceremonies.js';
import { wireServicePushes } from '../cluster/pushes.js';
import { composeActionTokens, type ActionTokenServices } from '../tokens/compose-action-tokens.js';

export interface Services {
  store: Store;
  events: EventLog;
  policies: PolicyService;
  tokens: TokenIssuer;
  challenges: ChallengeStore;
  ceremonies: WebAuthnCeremonies;
  registry: ConsoleRegistry;
  operators: OperatorDirectory;
  sessions: SessionService;
  stepUps: StepUpService;
  revocations: RevocationHub;
  /** Action tokens (issue 14, docs/action-tokens.md): the issuer, the RFC 8693 exchange, the apps' revocation stream. */
  actionTokens: ActionTokenServices;
  /** How many vendor attestation roots were loaded (0: none, so no credential counts as attested). */
  attestationRoots: number;
  /** Authenticator models from the FIDO metadata BLOB an admin supplied. */
  authenticators: AuthenticatorMetadata;
  /** This node's id in the cluster (`config.nodeId`, else a fresh `newNodeId()`): the bus origin, the registry row. */
  nodeId: string;
  /** Who this node is (id, host, pid, start), as its registry row shows it. */
  node: NodeIdentity;
  /**
   * The cluster bus: `PostgresBus` (LISTEN/NOTIFY on the store's database, publishing through the store's
   * pool) on PostgreSQL, `InProcessBus` on embedded SQLite. Built here, not started: subscribers register
   * first, then `startCluster()` starts it (its first resync) before the server listens.
   */
  bus: ClusterBus;
  /** Whether this node's view of revocations may be stale (bound `config.staleAfterSeconds`); sign-in, step-up and resume consult it. */
  freshness: FreshnessMonitor;
  /** The cluster's node heartbeat rows (PostgreSQL: `cluster_nodes`; embedded: this one process, in memory). */
  nodes: NodeRegistry;
  /**
   * WebAuthn verification threads, made when this is the host's only backend process (`workers` 1) and
   * the host has more than one core: the CPU-heavy checks leave the event loop. Undefined otherwise
   * (the workers already use the cores). Whoever composed closes it (`server.ts`: after the HTTP server).
   */
  verifyPool: VerifyPool | undefined;
}

/** What a composition may be given for its cluster parts (tests: a clock to make the node stale without sleeping). */
export interface ClusterDeps {
  /**
   * The freshness monitor's clock (default `Date.now`). Not the services' clock: tests that move the
   * business clock by hours must not make the node stale by accident.
   */
  freshnessClock?: () => number;
  /** The freshness heartbeat period (ms); default a third of the bound. */
  freshnessIntervalMs?: number;
}

/**
 * Builds the backend's services from its configuration, network-free. `server.ts` adds HTTP and
 * the console channel on top; benchmarks use the services directly. Everything the services know
 * at start (the current policy, the authenticator models) is read from the store here.
 */
export async function composeServices(
  config: BackendConfig,
  deps: {
    clock: () => number;
    logger: Logger;
    /** The store to use (PostgreSQL, or a test's); absent: the embedded SQLite store in `config.dataDir`. */
    store?: Store | undefined;
    /**
     * How the services reach connected consoles: `server.ts` passes the node's `ConsoleConnections`
     * table, which the console channel fills; a composition without a channel passes `NO_CONSOLE_CHANNEL` explicitly.
     */
    consoles: ConsolePort;
    cluster?: ClusterDeps;
  },
): Promise<Services> {
  const { clock, logger, consoles } = deps;
  const cluster = deps.cluster ?? {};
  if (deps.store === undefined && config.databaseUrl !== undefined) {
    // Never fall back to a local SQLite file when the configuration names the cluster's database.
    throw new Error('composeServices: a database URL is configured, so the caller must open that store and pass it');
  }
  const attestationRoots =
    config.attestationRootsFile === undefined ? 0 : loadAttestationRoots(config.attestationRootsFile);
  const store = deps.store ?? openSqliteStore({ dataDir: config.dataDir, durability: config.durability });
  try {
    return await composeOn(store, config, { clock, logger, consoles, cluster }, attestationRoots);
  } catch (error) {
    // A store opened here is closed here: a failed start leaves no open database behind.
    if (deps.store === undefined) await store.close().catch(() => undefined);
    throw error;
  }
}

async function composeOn(
  store: Store,
  config: BackendConfig,
  {
    clock,
    logger,
    consoles,
    cluster,
  }: { clock: () => number; logger: Logger; consoles: ConsolePort; cluster: ClusterDeps },
  attestationRoots: number,
): Promise<Services> {
  const { nodeId, node, bus, nodes, freshness } = composeCluster(store, config, logger, cluster);
  const events = new EventLog(store, clock, logger, bus);
  const policies = await PolicyService.open(store, events, clock, logger);
  const tokens = await TokenIssuer.open(config.dataDir, clock, {
    rotationDays: config.tokenKeyRotationDays,
    store,
    logger,
  });
  const challenges = new ChallengeStore(store, clock, config.challengeTtlSeconds * 1000);
  // After loadAttestationRoots (composeServices): the threads get the roots this thread has now.
  const verifyPool = config.workers === 1 && verifyPoolPays() ? new VerifyPool() : undefined;
  const ceremonies = new WebAuthnCeremonies(
    {
      rpId: config.rpId,
      rpName: config.rpName,
      origins: config.origins,
      timeoutMs: config.challengeTtlSeconds * 1000,
    },
    verifyPool,
  );
  const registry = new ConsoleRegistry(store, events, clock, () => policies.policy, config.consoleTokenTtlSeconds);
  const authenticators = await AuthenticatorMetadata.open({
    store,
    events,
    clock,
    trustAnchors:
      config.mdsRootsFile === undefined ? defaultMetadataTrustAnchors() : readMetadataTrustAnchors(config.mdsRootsFile),
  });
  if (config.mdsBlobFile !== undefined) await authenticators.loadFileAtStart(config.mdsBlobFile, logger);
  const ctx = { store, events, policies, challenges, ceremonies, clock, authenticators };
  const operators = new OperatorDirectory(ctx, config.enrolmentCodeTtlSeconds, attestationRoots > 0);
  const gate = new AssertionGate(ctx);
  const sessions = new SessionService(ctx, gate, tokens, consoles, freshness);
  const stepUps = new StepUpService(ctx, sessions, gate);
  const revocations = new RevocationHub(store, events, sessions, clock, consoles, logger);
  wireServicePushes({ bus, revocations, policies, authenticators, logger });
  // ---- action tokens (issue 14, helper "tokens"): their own sealed key ring; the feed subscribes to the bus here ----
  const actionTokens = await composeActionTokens({
    dataDir: config.dataDir,
    clock,
    logger,
    store,
    bus,
    events,
    policies,
    sessions,
    assurance: tokens,
    rotationDays: config.tokenKeyRotationDays,
  });
  return {
    store,
    events,
    policies,
    tokens,
    challenges,
    ceremonies,
    registry,
    operators,
    sessions,
    stepUps,
    revocations,
    actionTokens,
    attestationRoots,
    authenticators,
    nodeId,
    node,
    bus,
    freshness,
    nodes,
    verifyPool,
  };
}

/**
 * The bus, the node registry and the freshness monitor of this node, on the store's engine. Nothing
 * here connects: `startCluster` does, once every subscriber is registered.
 */
function composeCluster(
  store: Store,
  config: BackendConfig,
  logger: Logger,
  cluster: ClusterDeps,
): { nodeId: string; node: NodeIdentity; bus: ClusterBus; nodes: NodeRegistry; freshness: FreshnessMonitor } {
  const nodeId = config.nodeId ?? newNodeId();
  const node = thisNode(nodeId, Date.now());
  const busLogger = logger.child({ node: nodeId });
  let bus: ClusterBus;
  let nodes: NodeRegistry;
  if (store.engine === 'postgres') {
    const db = kyselyOf(store);
    if (config.databaseUrl === undefined || db === undefined) {
      // LISTEN needs a connection of its own to the store's database; guessing one would listen elsewhere.
      throw new Error(
        'composeServices: a PostgreSQL store needs config.databaseUrl (the cluster bus listens on that database) and a Kysely store',
      );
    }
    // Publishing and the registry run on the store's own pool: no second pool per node.
    const pool = {
      query: async (text: string, values: unknown[] = []) => {
        const result = await db.executeQuery(CompiledQuery.raw(text, values));
        return {
          rows: result.rows,
          rowCount: result.numAffectedRows === undefined ? null : Number(result.numAffectedRows),
        };
      },
    };
    bus = new PostgresBus({
      nodeId,
      logger: busLogger,
      connection: config.databaseUrl,
      pool,
      // The safety net for a pointer published after a commit by a node that died before sending it.
      resyncEveryMs: Math.max(5_000, config.staleAfterSeconds * 1000),
    });
    nodes = new PostgresNodeRegistry(pool);
  } else {
    bus = new InProcessBus({ nodeId, logger: busLogger });
    // Embedded SQLite is one process by construction (the config refuses more workers, the data
    // directory lock a second backend): the only node anyone can list is this one, and a row kept in
    // the file would only outlive it as a ghost after a restart.
    nodes = new MemoryNodeRegistry();
  }
  const freshness = new FreshnessMonitor({
    bus,
    logger: busLogger,
    boundMs: config.staleAfterSeconds * 1000,
    ...(cluster.freshnessIntervalMs === undefined ? {} : { intervalMs: cluster.freshnessIntervalMs }),
    ...(cluster.freshnessClock === undefined ? {} : { clock: cluster.freshnessClock }),
    registry: { nodes, node },
  });
  return { nodeId, node, bus, nodes, freshness };
}

/**
 * Starts the cluster parts of a composition: the bus listens and runs its first resync, then the
 * freshness heartbeat starts (its first beat at once). Call once every subscriber is registered and
 * before the server listens.
 */
export async function startCluster(services: Pick<Services, 'bus' | 'freshness'>): Promise<void> {
  await services.bus.start();
  services.freshness.start();
  // The first confirmation, so a node is fresh (and ready) the moment it listens.
  await services.freshness.check();
}

/** Stops the freshness heartbeat (removing this node's row), then the bus. */
export async function stopCluster(services: Pick<Services, 'bus' | 'freshness'>, logger: Logger): Promise<void> {
  try {
    await services.freshness.stop();
  } catch (error) {
    logger.error({ err: error }, 'stopping the freshness monitor failed');
  }
  await services.bus.close();
}
