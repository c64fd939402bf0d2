/**
 * A real agent core (`BatonAgent` from main/core) for the agent benchmarks, driven the way the
 * operator UI drives it: enrolled with a one-time token, operators enrolled and tapped in with
 * software authenticators. Unlike test/helpers/agent-rig.ts it loads no backend code (the rig's
 * helpers import the in-process test backend), so an agent process built from this file holds only
 * the agent's own modules — which the memory benchmark depends on. The backend is always another
 * process; this file only speaks HTTP to its admin API.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type {
  AuthenticationResponseJSON,
  PublicKeyCredentialCreationOptionsJSON,
  PublicKeyCredentialRequestOptionsJSON,
  RegistrationResponseJSON,
} from '@simplewebauthn/server';
import { BatonAgent, type AgentStatus, type CeremonyPort } from '../../main/core/agent.js';
import { assuranceOf } from '../../main/core/session-manager.js';
import type { EventDraft } from '../../shared/events.js';
import { SoftAuthenticator } from '../../test/helpers/soft-authenticator.js';

/** The origin the benchmark backends accept (test/helpers/backend-harness.ts TEST_ORIGIN). */
export const BENCH_ORIGIN = 'http://localhost:8471';

// Admin answers are read loosely; the benchmark checks the fields it uses.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Json = any;

/** The admin API calls the benchmarks make (test/helpers/backend-harness.ts AdminClient fits). */
export interface Admin {
  ok(method: string, path: string, body?: unknown): Promise<Json>;
}

/** A fetch-only admin client, for processes that must not load the test harness. */
export function leanAdmin(url: string, token: string): Admin {
  return {
    async ok(method, path, body) {
      const response = await fetch(`${url}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${token}`,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      const text = await response.text();
      if (response.status >= 300) throw new Error(`${method} ${path} → ${response.status} ${text}`);
      return text === '' ? {} : JSON.parse(text);
    },
  };
}

/** The OS credential store, in memory (the benchmarks measure the core, not keytar). */
import { DevMemorySecretStore as MemorySecrets } from '../../main/ui/dev-secret-store.js';
export { MemorySecrets };

/**
 * The browser half of the ceremonies, answered by whichever software authenticator was "tapped"
 * last. `assertionMs` keeps how long the last assertion took to make (it shares the core).
 */
export class SoftTapPort implements CeremonyPort {
  private next: SoftAuthenticator | undefined;
  assertionMs = 0;

  tap(authenticator: SoftAuthenticator): this {
    this.next = authenticator;
    return this;
  }

  getAssertion(request: { options: PublicKeyCredentialRequestOptionsJSON }): Promise<AuthenticationResponseJSON> {
    if (this.next === undefined) return Promise.reject(new Error('NotAllowedError: nobody tapped'));
    const t0 = performance.now();
    const response = this.next.assert(request.options);
    this.assertionMs = performance.now() - t0;
    return Promise.resolve(response);
  }

  createCredential(request: { options: PublicKeyCredentialCreationOptionsJSON }): Promise<RegistrationResponseJSON> {
    if (this.next === undefined) return Promise.reject(new Error('NotAllowedError: nobody tapped'));
    return Promise.resolve(this.next.register(request.options));
  }
}

export interface BenchOperator {
  id: string;
  name: string;
  authenticator: SoftAuthenticator;
}

export interface BenchAgent {
  agent: BatonAgent;
  port: SoftTapPort;
  dataDir: string;
  consoleId: string;
  /** Stops the agent (socket closed, journal closed) and removes its data directory. */
  close(): Promise<void>;
}

/**
 * Waits for the agent's status to satisfy `test`, woken by its status events (no fixed sleeps).
 * Some state (the journal's pending count after an emit) changes without an event, so it also
 * looks again every `pollMs`.
 */
export function untilStatus(
  agent: BatonAgent,
  test: (status: AgentStatus) => boolean,
  what: string,
  timeoutMs = 30_000,
  pollMs = 50,
): Promise<AgentStatus> {
  return new Promise((resolve, reject) => {
    const check = () => {
      const status = agent.status;
      if (!test(status)) return false;
      finish();
      resolve(status);
      return true;
    };
    const unsubscribe = agent.onStatus(() => void check());
    const poll = setInterval(check, pollMs);
    const timer = setTimeout(() => {
      finish();
      const s = agent.status;
      reject(
        new Error(`timed out waiting for ${what}: connection ${s.connection}, outbox ${JSON.stringify(s.outbox)}`),
      );
    }, timeoutMs);
    function finish() {
      unsubscribe();
      clearInterval(poll);
      clearTimeout(timer);
    }
    check();
  });
}

/** Starts an agent with a fresh data directory, enrols it on `channel` and waits until it is online. */
export async function startBenchAgent(options: {
  backendUrl: string;
  admin: Admin;
  channel: string;
}): Promise<BenchAgent> {
  const dataDir = mkdtempSync(join(tmpdir(), 'baton-bench-agent-'));
  const port = new SoftTapPort();
  try {
    const { token } = await options.admin.ok('POST', '/v1/admin/console-tokens', { channel: options.channel });
    const agent = await BatonAgent.start(
      {
        backendUrl: options.backendUrl,
        channel: options.channel,
        rpId: 'localhost',
        origin: BENCH_ORIGIN,
        dataDir,
        agentVersion: 'bench',
        enrolmentToken: token as string,
      },
      { secrets: new MemorySecrets(), ceremonies: port },
    );
    const status = await untilStatus(agent, (s) => s.connection === 'online', 'the agent to come online');
    if (status.identity.kind !== 'enrolled') throw new Error(`agent not enrolled: ${status.identity.kind}`);
    const consoleId = status.identity.consoleId;
    return {
      agent,
      port,
      dataDir,
      consoleId,
      async close() {
        await agent.stop();
        rmSync(dataDir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    rmSync(dataDir, { recursive: true, force: true });
    throw error;
  }
}

/** Creates `count` operators and enrols a software passkey for each through the agent, as at the kiosk. */
export async function enrolOperators(bench: BenchAgent, admin: Admin, count: number): Promise<BenchOperator[]> {
  const operators: BenchOperator[] = [];
  for (let i = 0; i < count; i++) {
    const name = `Bench Operator ${i + 1}`;
    const { operator } = await admin.ok('POST', '/v1/admin/operators', { displayName: name, roles: ['teller'] });
    const { code } = await admin.ok('POST', `/v1/admin/operators/${operator.id as string}/enrolment-codes`, {});
    const authenticator = new SoftAuthenticator(BENCH_ORIGIN);
    bench.port.tap(authenticator);
    // Keys only (no session): the benchmarks time the taps that follow, as before issue 12's sign-in at registration.
    await bench.agent.enrolOperator(code as string, { signIn: false });
    operators.push({ id: operator.id as string, name, authenticator });
  }
  return operators;
}

/** Publishes a new policy version with `change` applied to the current one. */
export async function publishPolicy(admin: Admin, change: (policy: Json) => void): Promise<number> {
  const current = await admin.ok('GET', '/v1/admin/policy');
  const policy = structuredClone(current.policy);
  change(policy);
  const published = await admin.ok('POST', '/v1/admin/policy', { baseVersion: current.version, policy });
  return published.version as number;
}

/** The event an agent journals for an allowed `customer.view` decision, for the journal-only runs. */
export function decisionDraft(consoleId: string, operatorId: string, sessionId: string): EventDraft {
  return {
    type: 'policy-decision',
    subject: { operator: operatorId, console: consoleId, session: sessionId },
    assurance: assuranceOf('verified', Date.now()),
    outcome: 'allow',
    reasons: ['action-allowed'],
    detail: { action: 'customer.view', policyVersion: 1 },
  };
}

/** Runs `fn` `total` times with at most `concurrency` calls in flight (each caller awaits its own). */
export async function runConcurrently(total: number, concurrency: number, fn: () => Promise<void>): Promise<void> {
  let started = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, total) }, async () => {
      while (started < total) {
        started++;
        await fn();
      }
    }),
  );
}

/** Forces full garbage collections (the process must run with --expose-gc) and reads memory. */
export function memoryAfterGc(): NodeJS.MemoryUsage {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) throw new Error('run node with --expose-gc');
  for (let i = 0; i < 4; i++) gc();
  return process.memoryUsage();
}
