import { BatonError } from '../../shared/errors.js';
import type { AssuranceEvent, EventDraft } from '../../shared/events.js';
import { DEFAULT_POLICY, type ChannelPolicy, type Policy } from '../../shared/policy.js';
import type { AgentMessage, RevocationItem } from '../../shared/protocol.js';
import type { AgentContext } from '../../main/core/agent-context.js';
import {
  silentLogger,
  type AgentNotice,
  type AgentOptions,
  type AgentPhase,
  type CeremonyPort,
} from '../../main/core/agent-types.js';
import type { ConsoleIdentity, IdentityStatus } from '../../main/core/console-identity.js';
import type { ConsoleRuntime } from '../../main/core/console-runtime.js';
import { ReadyChallenge } from '../../main/core/ceremonies/ready-challenge.js';
import type { OutboxStatus } from '../../main/core/event-outbox.js';
import { OutboxUplink, type UplinkOutbox } from '../../main/core/outbox-uplink.js';
import { hashPolicy } from '../../main/core/policy-hash.js';
import { SyncMachine } from '../../main/core/sync-machine.js';
import { FakeClock } from './fake-clock.js';

/** An in-memory journal with the outbox's contract: numbered events, acknowledged up to a sequence number. */
export class MemoryOutbox implements UplinkOutbox {
  events: AssuranceEvent[] = [];
  lastSeq = 0;
  ackedSeq = 0;
  max = 1_000;
  failing: Error | undefined;
  readonly emitted: EventDraft[] = [];

  get status(): OutboxStatus {
    const pending = this.events.length;
    return {
      pending,
      max: this.max,
      nearFull: pending >= this.max * 0.9,
      lastSeq: this.lastSeq,
      ackedSeq: this.ackedSeq,
    };
  }

  setMax(max: number): void {
    this.max = max;
  }

  emit(draft: EventDraft): Promise<AssuranceEvent> {
    if (this.failing !== undefined) return Promise.reject(this.failing);
    this.emitted.push(draft);
    const event = { ...draft, seq: ++this.lastSeq } as unknown as AssuranceEvent;
    this.events.push(event);
    return Promise.resolve(event);
  }

  takeLine(event: AssuranceEvent): string {
    return JSON.stringify(event);
  }

  pendingAfter(seq: number, limit: number): AssuranceEvent[] {
    return this.events.filter((e) => e.seq > seq).slice(0, limit);
  }

  acknowledge(seq: number): void {
    this.ackedSeq = Math.max(this.ackedSeq, Math.min(seq, this.lastSeq));
    this.events = this.events.filter((e) => e.seq > this.ackedSeq);
  }

  adoptHead(seq: number): boolean {
    if (seq <= this.lastSeq || this.events.length > 0) return false;
    this.lastSeq = seq;
    this.ackedSeq = seq;
    return true;
  }
}

/** A console identity held in memory, recording what the agent asked of it. */
export class MemoryIdentity {
  status: IdentityStatus = { kind: 'enrolled', consoleId: 'con_1', channel: 'branch-kiosk' };
  policy: { version: number; policy: Policy } | undefined;
  revocationEpoch = 0;
  enrolWith: ((token: string) => IdentityStatus) | undefined;

  credentials(): { consoleId: string } {
    if (this.status.kind !== 'enrolled') throw new BatonError('CONSOLE_NOT_ENROLLED', 'not enrolled');
    return { consoleId: this.status.consoleId };
  }
  rememberPolicy(version: number, policy: Policy): void {
    this.policy = { version, policy };
  }
  /** As ConsoleIdentity: only ever raises it. */
  rememberRevocationEpoch(epoch: number): void {
    if (epoch > this.revocationEpoch) this.revocationEpoch = epoch;
  }
  takeBackendRevocationEpoch(epoch: number): boolean {
    if (epoch >= this.revocationEpoch) return false;
    this.revocationEpoch = epoch;
    return true;
  }
  markRevoked(reason: string): Promise<void> {
    this.status = { kind: 're-enrolment-required', reason: 'revoked', detail: reason };
    return Promise.resolve();
  }
  markUnknown(detail: string): void {
    this.status = { kind: 're-enrolment-required', reason: 'unknown-to-backend', detail };
  }
  enrol(input: { token: string }): Promise<IdentityStatus> {
    if (this.enrolWith === undefined) return Promise.reject(new BatonError('ENROLMENT_TOKEN_INVALID', 'bad token'));
    this.status = this.enrolWith(input.token);
    return Promise.resolve(this.status);
  }
}

/** The session manager's side of the inbox and lifecycle, recorded. */
export class RecordingSessions {
  readonly calls: string[] = [];
  readonly revoked: RevocationItem[] = [];
  applyRevocations(items: readonly RevocationItem[]): string[] {
    this.revoked.push(...items);
    return items.filter((i) => i.kind === 'session').map((i) => i.targetId);
  }
  endedByBackend(id: string, state: string, reason: string): void {
    this.calls.push(`endedByBackend ${id} ${state} ${reason}`);
  }
  policyChanged(): void {
    this.calls.push('policyChanged');
  }
  connectionLost(): void {
    this.calls.push('connectionLost');
  }
  connectionRestored(): void {
    this.calls.push('connectionRestored');
  }
  scheduleToken(): void {
    this.calls.push('scheduleToken');
  }
  clear(): void {
    this.calls.push('clear');
  }
}

/** A hand-built agent context: real sync machine and uplink on a fake clock, everything else in memory. */
export class FakeAgentContext implements AgentContext {
  readonly clock = new FakeClock();
  readonly random = () => 0.5;
  readonly logger = silentLogger;
  readonly ceremonies: CeremonyPort = {
    getAssertion: () => Promise.reject(new Error('no authenticator in this test')),
    createCredential: () => Promise.reject(new Error('no authenticator in this test')),
  };
  readonly memoryIdentity = new MemoryIdentity();
  readonly identity = this.memoryIdentity as unknown as ConsoleIdentity;
  readonly sync = new SyncMachine(this.clock);
  readonly outbox = new MemoryOutbox();
  readonly sessions = new RecordingSessions();
  /** Messages the client sent, frames included (as parsed JSON). */
  readonly sent: (AgentMessage | { type: 'events'; events: AssuranceEvent[] })[] = [];
  readonly clientCalls: string[] = [];
  /** Sign-in challenges the runtime asked for ahead, with the policy version then held. */
  readonly challengesAsked: number[] = [];
  readonly readyChallenge = new ReadyChallenge({
    fetch: () => {
      this.challengesAsked.push(this.memoryIdentity.policy?.version ?? 0);
      return Promise.resolve({ challenge: `ahead-${this.challengesAsked.length}`, timeout: 120_000 });
    },
    clock: this.clock,
    failed: () => undefined,
  });
  connected = true;
  readonly uplink = new OutboxUplink({
    outbox: this.outbox,
    send: (text) =>
      this.connected && this.sent.push(JSON.parse(text) as { type: 'events'; events: AssuranceEvent[] }) > 0,
    consoleId: 'con_1',
    logger: silentLogger,
    onJournalError: (error) => void this.setNotice(error),
    defer: (fn) => fn(),
  });
  runtime: ConsoleRuntime | undefined = {
    consoleId: 'con_1',
    outbox: this.outbox,
    uplink: this.uplink,
    sessions: this.sessions,
    client: {
      send: (message: AgentMessage) => this.connected && this.sent.push(message) > 0,
      drop: () => void this.clientCalls.push('drop'),
      welcomed: (seconds: number) => void this.clientCalls.push(`welcomed ${seconds}`),
    },
    readyChallenge: this.readyChallenge,
    shutdown: () => {
      this.clientCalls.push('shutdown');
      return Promise.resolve();
    },
  } as unknown as ConsoleRuntime;
  phase: AgentPhase = { kind: 'idle' };
  notice: AgentNotice;
  changes = 0;
  readonly options: AgentOptions;

  constructor(dataDir = '/nonexistent') {
    this.options = {
      backendUrl: 'http://127.0.0.1:9',
      channel: 'branch-kiosk',
      rpId: 'baton.test',
      origin: 'https://baton.test',
      dataDir,
      agentVersion: 'test',
    };
  }

  get policy(): Policy {
    return this.memoryIdentity.policy?.policy ?? DEFAULT_POLICY;
  }
  get channel(): string {
    const status = this.memoryIdentity.status;
    return status.kind === 'enrolled' ? status.channel : this.options.channel;
  }
  channelPolicy(): ChannelPolicy | undefined {
    return this.policy.channels[this.channel];
  }
  record(draft: EventDraft): Promise<void> {
    return this.runtime?.uplink.record(draft) ?? Promise.resolve();
  }
  setNotice(error: unknown): BatonError {
    const baton = error instanceof BatonError ? error : new BatonError('INTERNAL', 'Something went wrong');
    this.notice = { code: baton.code, message: baton.message, at: this.clock.now() };
    return baton;
  }
  changed(): void {
    this.changes++;
  }

  /** Events journaled, by type. */
  journaled(type: string): EventDraft[] {
    return this.outbox.emitted.filter((d) => d.type === type);
  }
}

/** A policy message whose hash matches its content. */
export function policyMessage(version: number, policy: Policy = DEFAULT_POLICY) {
  return { type: 'policy' as const, version, policy, hash: hashPolicy(policy) };
}
