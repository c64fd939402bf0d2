import type { Logger } from 'pino';
import type { BackendConfig } from '../config.js';
import { loadAttestationRoots } from '../crypto/attestation-roots.js';
import { defaultMetadataTrustAnchors, readMetadataTrustAnchors } from '../crypto/metadata-blob.js';
import { TokenIssuer } from '../crypto/token-issuer.js';
import type { Store } from '../store/repositories.js';
import { openSqliteStore } from '../store/sqlite-store.js';
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
  /** How many vendor attestation roots were loaded (0: none, so no credential counts as attested). */
  attestationRoots: number;
  /** Authenticator models from the FIDO metadata BLOB an admin supplied. */
  authenticators: AuthenticatorMetadata;
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
     * How the services reach connected consoles: `server.ts` passes a `LateConsolePort` and binds the
     * console channel to it; a composition without a channel passes `NO_CONSOLE_CHANNEL` explicitly.
     */
    consoles: ConsolePort;
  },
): Promise<Services> {
  const { clock, logger, consoles } = deps;
  if (deps.store === undefined && config.databaseUrl !== undefined) {
    // Never fall back to a local SQLite file when the configuration names the cluster's database.
    throw new Error('composeServices: a database URL is configured, so the caller must open that store and pass it');
  }
  const attestationRoots =
    config.attestationRootsFile === undefined ? 0 : loadAttestationRoots(config.attestationRootsFile);
  const store = deps.store ?? openSqliteStore({ dataDir: config.dataDir, durability: config.durability });
  try {
    return await composeOn(store, config, { clock, logger, consoles }, attestationRoots);
  } catch (error) {
    // A store opened here is closed here: a failed start leaves no open database behind.
    if (deps.store === undefined) await store.close().catch(() => undefined);
    throw error;
  }
}

async function composeOn(
  store: Store,
  config: BackendConfig,
  { clock, logger, consoles }: { clock: () => number; logger: Logger; consoles: ConsolePort },
  attestationRoots: number,
): Promise<Services> {
  const events = new EventLog(store, clock, logger);
  const policies = await PolicyService.open(store, events, clock, logger);
  const tokens = await TokenIssuer.open(config.dataDir, clock, { rotationDays: config.tokenKeyRotationDays });
  const challenges = new ChallengeStore(store.ephemeral, clock, config.challengeTtlSeconds * 1000);
  const ceremonies = new WebAuthnCeremonies({
    rpId: config.rpId,
    rpName: config.rpName,
    origins: config.origins,
    timeoutMs: config.challengeTtlSeconds * 1000,
  });
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
  const sessions = new SessionService(ctx, gate, tokens, consoles);
  const stepUps = new StepUpService(ctx, sessions, gate);
  const revocations = new RevocationHub(store, events, sessions, clock, consoles, logger);
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
    attestationRoots,
    authenticators,
  };
}
