// Child process for the agent crash test (test/integration/agent-faults.test.ts): a real agent core
// against a real backend. It signs an operator in and calls authorize('customer.view') in a loop,
// printing `seq <n>` (the outbox's last sequence number) after each call resolves — that is, once
// the decision event is fsync'd and counts as emitted. The parent kills it with SIGKILL mid-stream.
//
// usage: agent-child.ts --backend <url> --origin <origin> --data-dir <dir> --secrets <file>
//                       --operator-code <code> [--enrolment-token <token>] [--count <n>]
// prints: `recovery <json>`, `online <consoleId>`, `seq <n>`…, and with --count `flushed <lastSeq>`.
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import type {
  AuthenticationResponseJSON,
  PublicKeyCredentialCreationOptionsJSON,
  PublicKeyCredentialRequestOptionsJSON,
  RegistrationResponseJSON,
} from '@simplewebauthn/server';
import { BatonAgent, type AgentStatus, type CeremonyPort } from '../../main/core/agent.js';
import type { SecretStore } from '../../main/core/secret-store.js';
import { SoftAuthenticator } from './soft-authenticator.js';

/**
 * A test-only SecretStore in a JSON file (mode 0600). The OS credential store (keytar over the
 * Secret Service) is not available under plain `node --test`, and a killed process must find its
 * console key again when it restarts, so an in-memory store will not do. The real store is
 * exercised by main/core/console-identity.keytar.test.ts under dbus-run-session.
 */
class FileSecretStore implements SecretStore {
  constructor(private readonly file: string) {
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  }

  get(account: string): Promise<string | null> {
    return Promise.resolve(this.read()[account] ?? null);
  }

  set(account: string, secret: string): Promise<void> {
    this.write({ ...this.read(), [account]: secret });
    return Promise.resolve();
  }

  delete(account: string): Promise<boolean> {
    const values = this.read();
    if (!(account in values)) return Promise.resolve(false);
    delete values[account];
    this.write(values);
    return Promise.resolve(true);
  }

  private read(): Record<string, string> {
    try {
      return JSON.parse(readFileSync(this.file, 'utf8')) as Record<string, string>;
    } catch {
      return {};
    }
  }

  private write(values: Record<string, string>): void {
    writeFileSync(`${this.file}.tmp`, JSON.stringify(values), { mode: 0o600 });
    renameSync(`${this.file}.tmp`, this.file);
  }
}

/** The operator's software key: a fresh one per process, registered with the code the parent issued. */
class ChildCeremonyPort implements CeremonyPort {
  constructor(private readonly authenticator: SoftAuthenticator) {}

  getAssertion(request: { options: PublicKeyCredentialRequestOptionsJSON }): Promise<AuthenticationResponseJSON> {
    return Promise.resolve(this.authenticator.assert(request.options));
  }

  createCredential(request: { options: PublicKeyCredentialCreationOptionsJSON }): Promise<RegistrationResponseJSON> {
    return Promise.resolve(this.authenticator.register(request.options));
  }
}

const { values: args } = parseArgs({
  options: {
    backend: { type: 'string' },
    origin: { type: 'string' },
    'data-dir': { type: 'string' },
    secrets: { type: 'string' },
    'operator-code': { type: 'string' },
    'enrolment-token': { type: 'string' },
    count: { type: 'string' },
  },
});
const backendUrl = args.backend;
const origin = args.origin;
const dataDir = args['data-dir'];
const secretsFile = args.secrets;
const operatorCode = args['operator-code'];
if (!backendUrl || !origin || !dataDir || !secretsFile || !operatorCode) {
  throw new Error('usage: agent-child --backend <url> --origin <o> --data-dir <d> --secrets <f> --operator-code <c>');
}
const count = args.count === undefined ? Infinity : Number(args.count);

const print = (line: string) => process.stdout.write(`${line}\n`);

async function until(agent: BatonAgent, test: (s: AgentStatus) => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!test(agent.status)) {
    if (Date.now() > deadline) throw new Error(`agent-child: timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const authenticator = new SoftAuthenticator(origin);
const agent = await BatonAgent.start(
  {
    backendUrl,
    channel: 'branch-kiosk',
    rpId: 'localhost',
    origin,
    dataDir,
    agentVersion: 'agent-child',
    ...(args['enrolment-token'] === undefined ? {} : { enrolmentToken: args['enrolment-token'] }),
  },
  { secrets: new FileSecretStore(secretsFile), ceremonies: new ChildCeremonyPort(authenticator), random: () => 0 },
);
print(`recovery ${JSON.stringify(agent.recovery ?? null)}`);
await until(agent, (s) => s.connection === 'online', 'the agent to come online');
const identity = agent.status.identity;
print(`online ${identity.kind === 'enrolled' ? identity.consoleId : identity.kind}`);
// Registering the key signs the operator in (issue 12): no second tap.
const enrolled = await agent.enrolOperator(operatorCode);
if (!enrolled.signedIn) throw new Error(`agent-child: the registration signed nobody in (${JSON.stringify(enrolled)})`);
for (let i = 0; i < count; i++) {
  const result = await agent.authorize('customer.view');
  if (result.outcome !== 'allow') throw new Error(`agent-child: authorize gave ${JSON.stringify(result)}`);
  print(`seq ${agent.status.outbox?.lastSeq ?? 0}`);
}
await until(agent, (s) => s.connection === 'online' && s.outbox?.pending === 0, 'the outbox to flush');
print(`flushed ${agent.status.outbox?.lastSeq ?? 0}`);
await agent.stop();
