import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { after, before } from 'node:test';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type {
  AuthenticationResponseJSON,
  PublicKeyCredentialCreationOptionsJSON,
  PublicKeyCredentialRequestOptionsJSON,
  RegistrationResponseJSON,
} from '@simplewebauthn/server';
import { BatonAgent, type AgentStatus, type CeremonyPort } from '../../main/core/agent.js';
import type { SecretStore } from '../../main/core/secret-store.js';
import type { BackendConfig } from '../../backend/config.js';
import type { StoredEvent } from '../../shared/events.js';
import { BatonError } from '../../shared/errors.js';
import { FakeClock } from './fake-clock.js';
import { TcpProxy } from './tcp-proxy.js';
import { SoftAuthenticator, type CeremonyOverrides } from './soft-authenticator.js';
import { TEST_ORIGIN, startTestBackend, type Json, type TestBackend } from './backend-harness.js';

/**
 * The OS credential store in memory: the development store (main/ui/dev-secret-store.ts), which is
 * what the core tests need under plain Node. `*.keytar.test.ts` use the real one.
 */
import { DevMemorySecretStore as MemorySecretStore } from '../../main/ui/dev-secret-store.js';
export { MemorySecretStore };

/**
 * The operator UI's browser half, played by software authenticators: the test says whose key
 * is tapped next (and how), the port answers the agent's ceremony with it.
 */
export class SoftCeremonyPort implements CeremonyPort {
  next: { authenticator: SoftAuthenticator; overrides?: CeremonyOverrides } | undefined;
  cancelNext = false;
  /** Answer the next get() with this recorded response instead of a fresh signature (a replay). */
  replayNext: AuthenticationResponseJSON | undefined;
  readonly answers: AuthenticationResponseJSON[] = [];
  readonly asked: { purpose: string; action?: string; options: PublicKeyCredentialRequestOptionsJSON }[] = [];

  tap(authenticator: SoftAuthenticator, overrides?: CeremonyOverrides): this {
    this.next = { authenticator, ...(overrides === undefined ? {} : { overrides }) };
    return this;
  }

  getAssertion(request: {
    purpose: 'sign-in' | 'step-up' | 'offline-resume';
    action?: string;
    options: PublicKeyCredentialRequestOptionsJSON;
  }): Promise<AuthenticationResponseJSON> {
    this.asked.push(request);
    if (this.replayNext !== undefined) {
      const replay = this.replayNext;
      this.replayNext = undefined;
      return Promise.resolve(replay);
    }
    if (this.cancelNext || this.next === undefined) {
      this.cancelNext = false;
      return Promise.reject(new Error('NotAllowedError: the operation was cancelled'));
    }
    const { authenticator, overrides } = this.next;
    // A real key answers the challenge it was given; a tap by another operator's key ignores allowCredentials.
    const options =
      overrides?.credentialId === undefined ? request.options : { ...request.options, allowCredentials: [] };
    const answer = authenticator.assert(options, overrides);
    this.answers.push(answer);
    return Promise.resolve(answer);
  }

  createCredential(request: { options: PublicKeyCredentialCreationOptionsJSON }): Promise<RegistrationResponseJSON> {
    if (this.next === undefined) return Promise.reject(new Error('NotAllowedError: no authenticator'));
    return Promise.resolve(this.next.authenticator.register(request.options, this.next.overrides));
  }
}

export interface RigOperator {
  id: string;
  name: string;
  authenticator: SoftAuthenticator;
}

/**
 * Resolves with the agent's status once it satisfies `test`: now, or at the first `onStatus` event
 * that does (the event the operator UI renders from). Fails after `ms` of real time (the network is
 * real) naming what was awaited and the last status seen.
 */
export function untilStatus(
  agent: Pick<BatonAgent, 'status' | 'onStatus'>,
  test: (status: AgentStatus) => boolean,
  what = 'condition',
  ms = 10_000,
): Promise<AgentStatus> {
  const current = agent.status;
  if (test(current)) return Promise.resolve(current);
  return new Promise((resolve, reject) => {
    let last = current;
    const timer = setTimeout(() => {
      unsubscribe();
      const seen = JSON.stringify({ ...last, sessions: last.sessions.length });
      reject(new Error(`No status event showed ${what} within ${ms} ms; last status: ${seen}`));
    }, ms);
    const unsubscribe = agent.onStatus((status) => {
      last = status;
      if (!test(status)) return;
      clearTimeout(timer);
      unsubscribe();
      resolve(status);
    });
  });
}

/**
 * Moves the fake clock on in steps, so the reconnect backoff (which runs on it) fires, until the
 * agent reports itself online again. After each step it waits for that status event; an attempt
 * that has not got there within a moment of real time gets the next step.
 */
export async function reconnectOnClock(
  agent: Pick<BatonAgent, 'status' | 'onStatus'>,
  clock: FakeClock,
  ms = 20_000,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (agent.status.connection !== 'online') {
    if (Date.now() > deadline) throw new Error(`agent did not come back online: ${agent.status.connection}`);
    await clock.advance(500);
    await untilStatus(agent, (s) => s.connection === 'online', 'online', 250).catch(() => undefined);
  }
}

/** A real backend, a fake clock both sides read, and agents built from the real core. */
export class AgentRig {
  readonly agents: BatonAgent[] = [];
  readonly dirs: string[] = [];

  private constructor(
    readonly clock: FakeClock,
    public backend: TestBackend,
  ) {}

  static async start(overrides: Partial<Record<keyof BackendConfig, unknown>> = {}): Promise<AgentRig> {
    const clock = new FakeClock(Date.now());
    const backend = await startTestBackend(overrides, { clock: () => clock.now() });
    return new AgentRig(clock, backend);
  }

  async consoleToken(channel = 'branch-kiosk'): Promise<string> {
    const { token } = (await this.backend.admin.ok('POST', '/v1/admin/console-tokens', { channel })) as Json;
    return token as string;
  }

  async agent(
    options: {
      channel?: string;
      dataDir?: string;
      secrets?: SecretStore;
      port?: SoftCeremonyPort;
      /** Another way to the backend (a TcpProxy the test can cut). */
      backendUrl?: string;
    } = {},
  ): Promise<{ agent: BatonAgent; port: SoftCeremonyPort; secrets: SecretStore; dataDir: string }> {
    const channel = options.channel ?? 'branch-kiosk';
    const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'baton-agent-'));
    if (options.dataDir === undefined) this.dirs.push(dataDir);
    const port = options.port ?? new SoftCeremonyPort();
    const secrets = options.secrets ?? new MemorySecretStore();
    const agent = await BatonAgent.start(
      {
        backendUrl: options.backendUrl ?? this.backend.url,
        channel,
        rpId: 'localhost',
        origin: TEST_ORIGIN,
        dataDir,
        agentVersion: 'test',
        enrolmentToken: await this.consoleToken(channel),
      },
      { secrets, ceremonies: port, clock: this.clock, random: () => 0.5 },
    );
    this.agents.push(agent);
    await this.until(agent, (s) => s.connection === 'online');
    return { agent, port, secrets, dataDir };
  }

  /**
   * Creates an operator and enrols their software passkey through the agent, as at the kiosk. A
   * fixture by default: the key is registered and nobody signed in (`signIn: false`); with
   * `signIn: true` the registration signs the operator in, as the operator UI's always does (issue 12).
   */
  async operator(
    agent: BatonAgent,
    port: SoftCeremonyPort,
    name: string,
    authenticator = new SoftAuthenticator(TEST_ORIGIN),
    options: { signIn?: boolean } = {},
  ): Promise<RigOperator> {
    const admin = this.backend.admin;
    const { operator } = (await admin.ok('POST', '/v1/admin/operators', {
      displayName: name,
      roles: ['teller'],
    })) as Json;
    const { code } = (await admin.ok(
      'POST',
      `/v1/admin/operators/${operator.id as string}/enrolment-codes`,
      {},
    )) as Json;
    port.tap(authenticator);
    await agent.enrolOperator(code as string, { signIn: options.signIn === true });
    return { id: operator.id as string, name, authenticator };
  }

  /** Resolves once the agent's status satisfies `test` (see `untilStatus`). */
  until(
    agent: BatonAgent,
    test: (status: AgentStatus) => boolean,
    what = 'condition',
    ms = 10_000,
  ): Promise<AgentStatus> {
    return untilStatus(agent, test, what, ms);
  }

  /** Moves the fake clock on until the agent is online again (see `reconnectOnClock`). */
  reconnect(agent: BatonAgent, ms = 20_000): Promise<void> {
    return reconnectOnClock(agent, this.clock, ms);
  }

  /** Every event the backend stored, oldest first (paging through the admin API). */
  async events(filter: Record<string, string> = {}): Promise<StoredEvent[]> {
    const out: StoredEvent[] = [];
    let after = 0;
    for (;;) {
      const query = new URLSearchParams({ ...filter, after: String(after), limit: '1000' });
      const page = (await this.backend.admin.ok('GET', `/v1/admin/events?${query.toString()}`)) as Json;
      const events = page.events as StoredEvent[];
      out.push(...events);
      if (events.length < 1000) return out;
      after = events.at(-1)?.cursor ?? after;
    }
  }

  async stop(): Promise<void> {
    for (const agent of this.agents) await agent.stop();
    await this.backend.stop();
    for (const dir of this.dirs) rmSync(dir, { recursive: true, force: true });
  }
}

/** What `withAgentConsole` sets up for a describe block (filled in by its `before` hook). */
export interface AgentConsoleFixture {
  rig: AgentRig;
  agent: BatonAgent;
  port: SoftCeremonyPort;
  /** Operators enrolled through the agent, in the order named. */
  ops: RigOperator[];
  /** The TCP relay between agent and backend, when asked for. */
  proxy: TcpProxy | undefined;
}

/**
 * Registers before/after hooks for a describe block: a real backend, one enrolled agent on
 * `channel` (through a cuttable TCP relay with `proxy: true`) and operators enrolled on it.
 */
export function withAgentConsole(
  channel: string,
  names: string[],
  options: { proxy?: boolean } = {},
): AgentConsoleFixture {
  const fixture = { ops: [] as RigOperator[], proxy: undefined } as unknown as AgentConsoleFixture;
  before(async () => {
    fixture.rig = await AgentRig.start();
    if (options.proxy === true) {
      fixture.proxy = await TcpProxy.start({ host: '127.0.0.1', port: fixture.rig.backend.backend.port });
    }
    const { agent, port } = await fixture.rig.agent({
      channel,
      ...(fixture.proxy === undefined ? {} : { backendUrl: fixture.proxy.url }),
    });
    fixture.agent = agent;
    fixture.port = port;
    for (const name of names) fixture.ops.push(await fixture.rig.operator(agent, port, name));
  });
  after(async () => {
    await fixture.rig.stop();
    await fixture.proxy?.stop();
  });
  return fixture;
}

/** Awaits a promise that must fail with the BatonError `code` (what the UI would show). */
export async function rejectsWithCode(promise: Promise<unknown>, code: string): Promise<BatonError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof BatonError, `expected a BatonError, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    return error;
  }
  assert.fail(`expected ${code}, but it succeeded`);
}
