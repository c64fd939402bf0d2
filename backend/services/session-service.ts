import type { AuthenticationResponseJSON } from '@simplewebauthn/server';
import { BatonError } from '../../shared/errors.js';
import { SIGN_IN_ACTION, effectiveMaxSessionSeconds, evaluatePolicy } from '../../shared/evaluate-policy.js';
import { EVENT_CLOCK_SKEW_MS, type AssuranceEvent } from '../../shared/events.js';
import type { SessionView, SignInResult } from '../../shared/http-api.js';
import { breakGlassMark, isBreakGlassSession } from '../break-glass/break-glass.js';
import { newId } from '../crypto/secrets.js';
import type { TokenIssuer } from '../crypto/token-issuer.js';
import type {
  CommandRecord,
  ConsoleRecord,
  CredentialRecord,
  OperatorRecord,
  SessionRecord,
  Store,
} from '../store/repositories.js';
import { assuranceContext, sessionView } from './assurance.js';
import type { CeremonyContext } from './ceremony-context.js';
import { readClientData } from './webauthn-ceremonies.js';
import { levelFromAuthentication, levelRank, type AssuranceLevel } from '../../shared/levels.js';
import { MAX_FAILED_ATTEMPTS, type AssertionGate } from './assertion-gate.js';
import type { ConsoleEventEffect, UnitOfWork } from './event-log.js';
import { staleNodeMode, type ChannelPolicy, type Policy } from '../../shared/policy.js';
import type { FreshnessMonitor } from '../cluster/freshness.js';
import type { EndSessionReason } from '../../shared/protocol.js';

/** Whether this node's view of revocations may be stale (backend/cluster/freshness.ts). */
export type StaleGate = Pick<FreshnessMonitor, 'decide'>;

/** What a decision taken on this node adds to its reasons and its events' detail (nothing while fresh). */
export interface StaleMark {
  reasons: string[];
  /** `staleSince`, `staleCause` while stale (event detail is flat); empty while fresh. */
  detail: Record<string, number | string | null>;
}

/**
 * The stale-node decision for a sign-in, step-up, resume or action-token exchange on `channelName`, taken before any
 * work:
 * fresh → nothing added; stale and `strict` (the default) → throws NODE_STALE; stale and
 * `best-effort` → proceed on the last known state, marked `stale-node` in reasons and detail.
 */
export function staleCheck(gate: StaleGate, policy: Policy, channelName: string): StaleMark {
  const channel = Object.hasOwn(policy.channels, channelName) ? policy.channels[channelName] : undefined;
  const decision = gate.decide(staleNodeMode(channel ?? {}));
  if ('refuse' in decision) throw decision.refuse;
  if (decision.stale === undefined) return { reasons: decision.reasons, detail: {} };
  return {
    reasons: decision.reasons,
    detail: { staleSince: decision.stale.since ?? null, staleCause: decision.stale.cause ?? null },
  };
}

/** Delivers a stored command to its console now, if it is connected (it is re-sent on reconnect). */
export interface CommandSender {
  deliver(command: CommandRecord): void;
}

/** Whether registering a key on a console may sign its operator in, and how (`SessionService.enrolmentSignIn`). */
export type EnrolmentSignIn =
  | { level: AssuranceLevel; stale: StaleMark; channel: ChannelPolicy }
  | { refused: { code: string; message: string } };

/** What a sign-in answers the console (the shape is shared with the agent). */
export type AuthenticatedSession = SignInResult;

/** What the backend observed of a console's connection when one of its batches arrived. */
export interface ConsoleContact {
  /** When the connection that carried the batch was opened (backend clock). */
  connectedAt: number;
  /** The console's last sign of life before that connection (backend clock); null when never seen. */
  previousContactAt: number | null;
}

/** The reason the backend adds to the session events it records on a console's word. */
const REPORTED_BY_CONSOLE = 'reported-by-console';

/** Console events that move a session's state on the backend. */
const SESSION_CHANGING_TYPES: ReadonlySet<string> = new Set([
  'session-locked',
  'session-suspended',
  'session-resumed',
  'session-ended',
  'session-expired',
]);

/**
 * The sessions that `consoleEventEffect` may change for these console events, distinct, in ascending
 * id: what an ingest unit locks (`sessions.getForUpdate`) before anything in it records, in the lock
 * order of backend/store/repositories.ts (sessions before the backend chain head).
 */
export function sessionsChangedBy(events: readonly AssuranceEvent[]): string[] {
  const ids = new Set<string>();
  for (const event of events) {
    const id = event.subject.session;
    if (id !== undefined && SESSION_CHANGING_TYPES.has(event.type)) ids.add(id);
  }
  return [...ids].sort();
}

/** Sign-in (start or resume), step-up and session ends: the backend's half of every session. */
export class SessionService {
  constructor(
    private readonly ctx: CeremonyContext,
    private readonly gate: AssertionGate,
    private readonly tokens: TokenIssuer,
    /** The console channel, given at construction (see console-port.ts): never a silent no-op. */
    private readonly commands: CommandSender,
    /** This node's freshness: a stale node refuses (strict) or marks (best-effort) sign-ins and resumes. */
    private readonly freshness: StaleGate,
  ) {}

  /** The stale-node decision for a sign-in, step-up, resume or token exchange on this console's channel (`staleCheck`). */
  staleCheck(channelName: string): StaleMark {
    return staleCheck(this.freshness, this.ctx.policies.policy, channelName);
  }

  async signInOptions(console: ConsoleRecord) {
    // A strict channel is refused before a challenge is issued: the console retries on a fresh node.
    this.staleCheck(console.channel);
    const challenge = await this.ctx.challenges.create({ purpose: 'sign-in', consoleId: console.id });
    return this.ctx.ceremonies.authenticationOptions({
      challenge,
      userVerification: this.ctx.policies.policy.credentials.userVerification,
    });
  }

  /**
   * Checks and verifies the assertion outside any transaction (the challenge is taken from the
   * shared store, WebAuthn verification is CPU), then starts or resumes the session in one unit of
   * work that first re-reads the operator, credential and console: a revocation committed by any
   * node before it refuses the sign-in, one committed after it finds (and revokes) the session.
   */
  async signIn(console: ConsoleRecord, response: AuthenticationResponseJSON): Promise<AuthenticatedSession> {
    // Before any work (the challenge stays unconsumed): strict refuses, best-effort marks the decision.
    const stale = this.staleCheck(console.channel);
    const client = readClientData(response.response.clientDataJSON);
    const context = await this.gate.consume(client.challenge, console, 'sign-in-failed');
    if (context.purpose !== 'sign-in')
      throw new BatonError('CHALLENGE_UNKNOWN', 'The challenge was not issued for sign-in');
    const { credential, operator } = await this.gate.usableCredential(console, response.id, 'sign-in-failed');
    if (response.response.userHandle !== undefined && response.response.userHandle !== operator.webauthnUserId) {
      await this.gate.fail(console, 'sign-in-failed', 'WEBAUTHN_VERIFICATION_FAILED', { operator: operator.id });
      throw new BatonError('WEBAUTHN_VERIFICATION_FAILED', 'The user handle does not belong to this credential');
    }
    const { level, counter } = await this.gate.verifyAssertion(
      console,
      response,
      client.challenge,
      credential,
      operator,
      this.ctx.policies.policy.credentials.userVerification === 'required',
      'sign-in-failed',
    );
    const policy = this.ctx.policies.policy;
    const now = this.ctx.clock();
    const decision = evaluatePolicy(policy, { channel: console.channel, level, authTime: now, now }, SIGN_IN_ACTION);
    if (decision.outcome !== 'allow') {
      // A refusal changes nothing: the credential's counter and last use stay as they were.
      await this.gate.fail(console, 'sign-in-failed', 'LEVEL_NOT_ALLOWED_ON_CHANNEL', { operator: operator.id }, level);
      throw new BatonError(
        'LEVEL_NOT_ALLOWED_ON_CHANNEL',
        `Level "${level}" may not sign in on channel "${console.channel}"`,
      );
    }
    const channel = policy.channels[console.channel];
    if (channel === undefined)
      throw new BatonError('CHANNEL_UNKNOWN', `The policy has no channel "${console.channel}"`);

    const evicted: string[] = [];
    const suspended: string[] = [];
    const commands: CommandRecord[] = [];
    // A counter another node advanced past this assertion's meanwhile: refused as a cloned key is.
    const outcome = await this.gate.actOn(console, credential, operator.id, 'sign-in-failed', undefined, () =>
      this.ctx.events.atomically(async (uow) => {
        const tx = uow.store;
        // Verification awaited: a revocation may have landed meanwhile, on any node. The unit's first
        // writes take the rows a revocation updates (credential, operator, console, in the lock
        // order: see `AssertionGate.recordUse`) and the re-check decides on the state each write left
        // (one statement on PostgreSQL: `recordUseAndRecheck`). The failure count ends at zero.
        await this.gate.recordUseAndRecheck(tx, credential, counter, operator.id, console.id);
        // Locked: a session revoked or ended on another node meanwhile is not resumed or suspended here.
        const live = await tx.sessions.liveOnConsole(console.id, { forUpdate: true });
        return this.establishIn(
          uow,
          { console, operatorId: operator.id, credentialId: credential.id, level, now, stale, channel },
          live,
          { suspended, evicted, commands },
        );
      }),
    );
    return this.answer(console, operator, credential, outcome, { suspended, evicted, commands });
  }

  /**
   * What a started or resumed session answers the console: its end commands delivered, its view,
   * a token bound to the console key, and the credential for an offline resume.
   */
  private async answer(
    console: ConsoleRecord,
    operator: OperatorRecord,
    credential: CredentialRecord,
    outcome: { session: SessionRecord; resumed: boolean },
    out: { suspended: string[]; evicted: string[]; commands: CommandRecord[] },
  ): Promise<AuthenticatedSession> {
    for (const command of out.commands) this.commands.deliver(command);
    const { token, expiresAt } = await this.issueToken(outcome.session, console);
    return {
      session: sessionView(outcome.session, operator.displayName),
      resumed: outcome.resumed,
      token,
      tokenExpiresAt: expiresAt,
      credential: {
        id: credential.id,
        publicKey: Buffer.from(credential.publicKey).toString('base64url'),
        counter: credential.counter,
      },
      suspended: out.suspended,
      evicted: out.evicted,
    };
  }

  /**
   * Registering a key on a console signs its operator in (issue 12): the decision a sign-in with
   * that key would get, taken on the verified registration before its unit of work. The level comes
   * from the registration as a sign-in's comes from an assertion (`levelFromAuthentication`: the
   * user-verification flag, device-bound, attestation chained to a configured root, the allow-list);
   * the channel must accept it, the operator must not be locked out, and a stale node refuses or
   * marks it as it does a sign-in. A refusal is recorded (`sign-in-failed`) and registers the key
   * without a session: the operator then taps it to sign in.
   */
  async enrolmentSignIn(
    console: ConsoleRecord,
    operator: OperatorRecord,
    facts: { userVerified: boolean; deviceBound: boolean; attested: boolean; aaguid: string },
  ): Promise<EnrolmentSignIn> {
    const policy = this.ctx.policies.policy;
    const level = levelFromAuthentication({
      userVerified: facts.userVerified,
      deviceBound: facts.deviceBound,
      attested: facts.attested,
      aaguidAllowed: policy.credentials.aaguidAllowList.includes(facts.aaguid),
    });
    const refuse = async (error: BatonError): Promise<EnrolmentSignIn> => {
      await this.gate.fail(console, 'sign-in-failed', error.code, { operator: operator.id }, level);
      return { refused: { code: error.code, message: error.message } };
    };
    let stale: StaleMark;
    try {
      stale = this.staleCheck(console.channel);
    } catch (error) {
      if (error instanceof BatonError) return refuse(error);
      throw error;
    }
    if (operator.failedAttempts >= MAX_FAILED_ATTEMPTS) {
      return refuse(
        new BatonError('OPERATOR_LOCKED', 'Too many failed attempts: an administrator must reset this operator'),
      );
    }
    const now = this.ctx.clock();
    const decision = evaluatePolicy(policy, { channel: console.channel, level, authTime: now, now }, SIGN_IN_ACTION);
    const channel = Object.hasOwn(policy.channels, console.channel) ? policy.channels[console.channel] : undefined;
    if (decision.outcome !== 'allow' || channel === undefined) {
      return refuse(
        new BatonError(
          'LEVEL_NOT_ALLOWED_ON_CHANNEL',
          `Level "${level}" may not sign in on channel "${console.channel}"`,
        ),
      );
    }
    return { level, stale, channel };
  }

  /**
   * The registration's unit of work that also starts the session (`enrolmentSignIn` allowed it), in
   * the lock order: the new credential's row (new: no other unit can hold it), stored with counter
   * zero so that its use, written next as a sign-in writes it, records the registration's counter and
   * takes credential, operator and console and re-checks their revocation (a revocation landed
   * during the ceremony wins: nothing is registered); this console's live sessions, locked; then
   * `register` (the registration's own events, which take the backend chain head, and its
   * single-use code); then the session, as a sign-in establishes it.
   */
  async establishAtEnrolment(
    console: ConsoleRecord,
    operator: OperatorRecord,
    credential: CredentialRecord,
    plan: Extract<EnrolmentSignIn, { level: AssuranceLevel }>,
    register: (uow: UnitOfWork) => Promise<void>,
  ): Promise<AuthenticatedSession> {
    const counter = credential.counter;
    const stored: CredentialRecord = { ...credential, counter: 0, lastUsedAt: null };
    const out = { suspended: [] as string[], evicted: [] as string[], commands: [] as CommandRecord[] };
    const outcome = await this.ctx.events.atomically(async (uow) => {
      // A unit may run again (a PostgreSQL retry): nothing of a rolled-back run is kept.
      out.suspended = [];
      out.evicted = [];
      out.commands = [];
      stored.counter = 0;
      const tx = uow.store;
      await tx.operators.insertCredential(stored);
      await this.gate.recordUseAndRecheck(tx, stored, counter, operator.id, console.id);
      const live = await tx.sessions.liveOnConsole(console.id, { forUpdate: true });
      await register(uow);
      return this.establishIn(
        uow,
        {
          console,
          operatorId: operator.id,
          credentialId: stored.id,
          level: plan.level,
          now: this.ctx.clock(),
          stale: plan.stale,
          channel: plan.channel,
          reasons: ['operator-enrolled'],
        },
        live,
        out,
      );
    });
    return this.answer(console, operator, stored, outcome, out);
  }

  /**
   * The session of a verified authentication, in the caller's unit of work once it has taken the
   * credential, operator and console rows (lock order) and read this console's `live` sessions
   * locked: the operator's own session resumed inside the continuity window (else a new one), other
   * operators' active sessions suspended, the oldest suspended ones ended beyond the channel's
   * limit, and the events that record all of it. Sign-in and an operator's enrolment on a console
   * (a registration signs its operator in, issue 12) both end here.
   */
  async establishIn(
    uow: UnitOfWork,
    args: {
      console: ConsoleRecord;
      operatorId: string;
      credentialId: string;
      level: AssuranceLevel;
      now: number;
      stale: StaleMark;
      channel: ChannelPolicy;
      /** Reasons the `session-established` event adds after `sign-in-allowed` (an enrolment's). */
      reasons?: string[];
    },
    live: SessionRecord[],
    out: { suspended: string[]; evicted: string[]; commands: CommandRecord[] },
  ): Promise<{ session: SessionRecord; resumed: boolean }> {
    const { console, level, now, stale, channel } = args;
    const { suspended, evicted, commands } = out;
    const tx = uow.store;
    const policy = this.ctx.policies.policy;
    // This console's live sessions as this unit leaves them. The console's row is written above,
    // so no other sign-in on this console runs until this unit ends: nothing but this unit adds
    // a live session to it meanwhile, and they need not be read again.
    const remaining = new Map(live.map((s) => [s.id, s]));
    let session: SessionRecord | undefined;
    let resumed = false;
    for (const s of live) {
      if (s.operatorId !== args.operatorId) continue;
      const anchor = s.suspendedAt ?? s.authTime;
      if (now < s.expiresAt && now - anchor <= channel.continuitySeconds * 1000 && session === undefined) {
        session = s;
        resumed = true;
      } else {
        await this.close(uow, s, 'expired', now < s.expiresAt ? 'continuity-window-elapsed' : 'lifetime-exceeded');
        remaining.delete(s.id);
      }
    }
    for (const s of live) {
      if (s.operatorId === args.operatorId || s.state !== 'active') continue;
      await tx.sessions.update(s.id, { state: 'suspended', suspendedAt: now });
      remaining.set(s.id, { ...s, state: 'suspended', suspendedAt: now });
      suspended.push(s.id);
      await uow.record({
        type: 'session-suspended',
        subject: { operator: s.operatorId, console: console.id, session: s.id },
        assurance: assuranceContext(s.level, s.authTime),
        outcome: 'info',
        reasons: ['another-operator-signed-in', ...(await breakGlassMark(tx, s)), ...stale.reasons],
        ...(stale.reasons.length === 0 ? {} : { detail: stale.detail }),
      });
    }
    const assurance = assuranceContext(level, now);
    if (session !== undefined) {
      const cap = session.startedAt + (effectiveMaxSessionSeconds(policy, console.channel, level) ?? 0) * 1000;
      const changes = {
        state: 'active' as const,
        level,
        authTime: now,
        suspendedAt: null,
        credentialId: args.credentialId,
        expiresAt: Math.min(session.expiresAt, cap),
      };
      await tx.sessions.update(session.id, changes);
      session = { ...session, ...changes };
      await uow.record({
        type: 'session-resumed',
        subject: { operator: args.operatorId, console: console.id, session: session.id, credential: args.credentialId },
        assurance,
        outcome: 'success',
        reasons: ['within-continuity-window', ...stale.reasons],
        ...(stale.reasons.length === 0 ? {} : { detail: stale.detail }),
      });
    } else {
      const stillLive = [...remaining.values()];
      const excess = stillLive.length + 1 - channel.maxSessions;
      const evictable = stillLive
        .filter((s) => s.state === 'suspended')
        .sort((a, b) => (a.suspendedAt ?? 0) - (b.suspendedAt ?? 0));
      for (const s of evictable.slice(0, Math.max(0, excess))) {
        await this.close(uow, s, 'ended', 'evicted-by-session-limit');
        evicted.push(s.id);
        commands.push(await this.storeEndCommand(uow, s, 'evicted-by-session-limit'));
      }
      session = {
        id: newId('ses'),
        operatorId: args.operatorId,
        consoleId: console.id,
        channel: console.channel,
        credentialId: args.credentialId,
        level,
        authTime: now,
        startedAt: now,
        expiresAt: now + (effectiveMaxSessionSeconds(policy, console.channel, level) ?? 0) * 1000,
        state: 'active',
        suspendedAt: null,
        endedAt: null,
        endReason: null,
      };
      await tx.sessions.insert(session);
      await uow.record({
        type: 'session-established',
        subject: { operator: args.operatorId, console: console.id, session: session.id, credential: args.credentialId },
        assurance,
        outcome: 'success',
        reasons: ['sign-in-allowed', ...(args.reasons ?? []), ...stale.reasons],
        detail: {
          acr: assurance.acr,
          channel: console.channel,
          policyVersion: this.ctx.policies.version.version,
          ...stale.detail,
        },
      });
    }
    return { session, resumed };
  }

  /** The console ends one of its sessions (sign-out, eviction it decided, expiry it observed). */
  async end(console: ConsoleRecord, sessionId: string, reason: string): Promise<SessionView> {
    await this.liveSession(console, sessionId);
    const ended = await this.ctx.events.atomically(async (uow) => {
      // Read again in the unit: another node may have ended it meanwhile (then it is not ended twice).
      const session = await this.liveIn(uow.store, console, sessionId);
      await this.close(uow, session, reason === 'expired' ? 'expired' : 'ended', reason);
      return uow.store.sessions.get(session.id);
    });
    if (ended === undefined) throw new BatonError('SESSION_UNKNOWN', `No session "${sessionId}" on this console`);
    const operator = await this.ctx.store.operators.get(ended.operatorId);
    return sessionView(ended, operator?.displayName ?? '');
  }

  /** An admin ends a session: the console is told at once to end it. */
  async endByAdmin(sessionId: string, reason: string, actor: string): Promise<SessionRecord> {
    const { command, session } = await this.ctx.events.atomically(async (uow) => {
      const session = await uow.store.sessions.getForUpdate(sessionId);
      if (session === undefined) throw new BatonError('SESSION_UNKNOWN', `No session "${sessionId}"`);
      if (session.state !== 'active' && session.state !== 'suspended') {
        throw new BatonError('SESSION_NOT_ACTIVE', `Session "${sessionId}" is already ${session.state}`);
      }
      await this.close(uow, session, 'ended', 'ended-by-admin', reason);
      await uow.record({
        type: 'admin-action',
        subject: { operator: session.operatorId, console: session.consoleId, session: session.id },
        outcome: 'success',
        reasons: ['session-ended', ...(await breakGlassMark(uow.store, session))],
        detail: { actor, reason },
      });
      // The console is told a code; the admin's words stay in the two events above (audit).
      const command = await this.storeEndCommand(uow, session, 'ended-by-admin');
      return { command, session: (await uow.store.sessions.get(session.id)) ?? session };
    });
    this.commands.deliver(command);
    return session;
  }

  /**
   * A fresh token for the session in front, before the one it holds expires. Only an active
   * session of this console, of an operator and passkey still in good standing, gets one; the token
   * keeps the session's auth_time, so a refresh never makes an authentication younger.
   */
  async refreshToken(
    console: ConsoleRecord,
    sessionId: string,
  ): Promise<{ session: SessionView; token: string; tokenExpiresAt: number }> {
    const session = await this.liveSession(console, sessionId, 'active');
    const operator = await this.ctx.store.operators.get(session.operatorId);
    if (operator === undefined || operator.revokedAt !== null) {
      throw new BatonError('OPERATOR_REVOKED', 'This operator is revoked');
    }
    const credential = await this.ctx.store.operators.getCredential(session.credentialId);
    // A break-glass session rests on its grant, not on a passkey (backend/break-glass; glass): revoking the operator ends it.
    const breakGlass = credential === undefined && (await isBreakGlassSession(this.ctx.store, session.id));
    if (!breakGlass) {
      if (credential === undefined || credential.operatorId !== operator.id || credential.revokedAt !== null) {
        throw new BatonError('CREDENTIAL_REVOKED', "The session's passkey is revoked");
      }
      if (credential.suspendedAt !== null) {
        throw new BatonError('CREDENTIAL_SUSPENDED', "The session's passkey is suspended until an admin reviews it");
      }
    }
    const { token, expiresAt } = await this.issueToken(session, console, { breakGlass });
    return { session: sessionView(session, operator.displayName), token, tokenExpiresAt: expiresAt };
  }

  /**
   * Stores an end-session command in the caller's unit of work, so it cannot be lost in a crash, and
   * publishes its pointer in the same unit (PostgreSQL: the NOTIFY leaves with the COMMIT, never on a
   * rollback): the node holding the console delivers it, with no window between commit and publish.
   * The reason is a stable code the console acts on (docs/protocol.md "Commands"), never free text.
   */
  private async storeEndCommand(
    uow: UnitOfWork,
    session: SessionRecord,
    reason: EndSessionReason,
  ): Promise<CommandRecord> {
    const command: CommandRecord = {
      id: newId('cmd'),
      consoleId: session.consoleId,
      sessionId: session.id,
      reason,
      createdAt: this.ctx.clock(),
    };
    await uow.store.commands.insert(command);
    await uow.publish('command', { consoleId: command.consoleId, id: command.id });
    return command;
  }

  /**
   * What one stored console event does to its session (docs/protocol.md, "What console events do
   * to sessions"). Called by the event log inside the ingest transaction, in `seq` order, only for
   * events it stored and takes as facts: the change, and the backend event that names it, commit
   * with the batch. A late event (one filling an earlier gap) can only end a session.
   */
  async consoleEventEffect(
    uow: UnitOfWork,
    consoleId: string,
    event: AssuranceEvent,
    late: boolean,
    contact: ConsoleContact,
  ): Promise<ConsoleEventEffect | undefined> {
    const id = event.subject.session;
    // Only these types change a session: skip the lookup for the rest (most of a busy stream).
    if (id === undefined || !SESSION_CHANGING_TYPES.has(event.type)) return undefined;
    // Locked: a unit ending this session on another node (or this one) must not be overwritten.
    const session = await uow.store.sessions.getForUpdate(id);
    if (session === undefined || session.consoleId !== consoleId) return undefined;
    const now = this.ctx.clock();
    const at = Math.min(Math.max(event.time, session.authTime), now);
    const subject = { operator: session.operatorId, console: consoleId, session: id };
    const why = event.reasons[0];
    const reported = { consoleSeq: event.seq, consoleEventId: event.id, consoleEventType: event.type };
    if (event.type === 'session-ended' || event.type === 'session-expired') {
      // Ended by the console while it could not reach the backend. Ending only takes access away.
      if (session.state !== 'active' && session.state !== 'suspended') return undefined;
      const state = event.type === 'session-expired' ? 'expired' : 'ended';
      const reason = why ?? 'ended-by-console';
      return {
        apply: async () => {
          await uow.store.sessions.update(id, { state, endedAt: at, endReason: reason });
          await uow.record({
            type: event.type,
            subject,
            assurance: assuranceContext(session.level, session.authTime),
            outcome: 'info',
            reasons: [
              ...(reason === REPORTED_BY_CONSOLE ? [reason] : [reason, REPORTED_BY_CONSOLE]),
              ...(await breakGlassMark(uow.store, session)),
            ],
            detail: { ...reported, endedAt: at },
          });
        },
      };
    }
    if (late) return undefined;
    if (event.type === 'session-locked' || event.type === 'session-suspended') {
      if (session.state !== 'active') return undefined;
      const reason = why ?? 'locked';
      return {
        apply: async () => {
          await uow.store.sessions.update(id, { state: 'suspended', suspendedAt: at });
          await uow.record({
            type: 'session-suspended',
            subject,
            assurance: assuranceContext(session.level, session.authTime),
            outcome: 'info',
            reasons: [
              ...(reason === REPORTED_BY_CONSOLE ? [reason] : [reason, REPORTED_BY_CONSOLE]),
              ...(await breakGlassMark(uow.store, session)),
            ],
            detail: { ...reported, suspendedAt: at },
          });
        },
      };
    }
    // session-resumed: only a resume the console verified offline, against the operator's cached
    // key, inside the policy's offline grace; online, the backend resumes sessions itself.
    if (!event.reasons.includes('offline-grace') || session.state !== 'suspended') return undefined;
    const authTime = this.offlineResumeTime(session, event.time, now, contact);
    if (authTime === undefined) return { refused: true };
    // A resume on a stale node: refused on a strict channel (the event is stored, flagged), marked on a best-effort one.
    let stale: StaleMark;
    try {
      stale = this.staleCheck(session.channel);
    } catch (error) {
      if (error instanceof BatonError && error.code === 'NODE_STALE') return { refused: true };
      throw error;
    }
    // The session is never rated above the level it started with.
    const level = event.assurance?.level;
    const capped = level !== undefined && levelRank(level) < levelRank(session.level) ? level : session.level;
    return {
      apply: async () => {
        await uow.store.sessions.update(id, { state: 'active', suspendedAt: null, level: capped, authTime });
        await uow.record({
          type: 'session-resumed',
          subject: { ...subject, ...(session.credentialId === null ? {} : { credential: session.credentialId }) },
          assurance: assuranceContext(capped, authTime),
          outcome: 'success',
          reasons: ['offline-grace', REPORTED_BY_CONSOLE, ...stale.reasons],
          detail: { ...reported, suspendedAt: session.suspendedAt, ...stale.detail },
        });
      },
    };
  }

  /**
   * When a console's offline resume may count as having happened, bounded by what the backend itself
   * observed, not by the console's clock: the suspension as the backend recorded it, when the
   * resume reached it, and the console's contact with it. Undefined: the resume is refused.
   *
   * - Received before the grace (the shorter of the channel's offline grace and continuity window,
   *   counted from the recorded suspension) ran out: it happened in time, whatever its `time` says.
   * - Received later: only if the console was out of contact before the grace ran out (its last
   *   contact before the connection that brought the event is no later than the deadline) and
   *   that connection opened after the suspension; and the event's own `time` must then fall
   *   inside the grace (no skew allowance: a clock running ahead is refused, never extended).
   *
   * The session's new auth time is the event's `time`, held inside what the backend allows.
   */
  private offlineResumeTime(
    session: SessionRecord,
    claimed: number,
    now: number,
    contact: ConsoleContact,
  ): number | undefined {
    const channel = Object.hasOwn(this.ctx.policies.policy.channels, session.channel)
      ? this.ctx.policies.policy.channels[session.channel]
      : undefined;
    const suspendedAt = session.suspendedAt;
    if (suspendedAt === null || channel === undefined || now >= session.expiresAt) return undefined;
    const deadline = suspendedAt + Math.min(channel.offlineGraceSeconds, channel.continuitySeconds) * 1000;
    if (now <= deadline) return Math.min(Math.max(claimed, suspendedAt), now);
    const previous = contact.previousContactAt ?? 0;
    if (previous > deadline || contact.connectedAt < suspendedAt) return undefined;
    const latest = Math.min(deadline, contact.connectedAt + EVENT_CLOCK_SKEW_MS);
    if (claimed > latest || claimed < suspendedAt - EVENT_CLOCK_SKEW_MS) return undefined;
    return Math.min(Math.max(claimed, suspendedAt), deadline, contact.connectedAt);
  }

  /**
   * A session of this console that is still live. Step-up asks for `active` only: a suspended
   * session comes back through sign-in, which applies the continuity window and suspends others.
   */
  async liveSession(console: ConsoleRecord, sessionId: string, only?: 'active'): Promise<SessionRecord> {
    const session = await this.ctx.store.sessions.get(sessionId);
    const live = this.checkLive(session, console, sessionId, only);
    if (this.ctx.clock() >= live.expiresAt) {
      await this.ctx.events.atomically(async (uow) => {
        // Read again in the unit: ended once, whichever node notices first.
        const current = await uow.store.sessions.getForUpdate(sessionId);
        if (current?.state === 'active' || current?.state === 'suspended') {
          await this.close(uow, current, 'expired', 'lifetime-exceeded');
        }
      });
      throw new BatonError('SESSION_NOT_ACTIVE', `Session "${sessionId}" has expired`);
    }
    return live;
  }

  /** `liveSession` inside a unit of work: the same refusals, read through its store (no expiry write). */
  private async liveIn(tx: Store, console: ConsoleRecord, sessionId: string): Promise<SessionRecord> {
    return this.checkLive(await tx.sessions.getForUpdate(sessionId), console, sessionId);
  }

  private checkLive(
    session: SessionRecord | undefined,
    console: ConsoleRecord,
    sessionId: string,
    only?: 'active',
  ): SessionRecord {
    if (session === undefined || session.consoleId !== console.id) {
      throw new BatonError('SESSION_UNKNOWN', `No session "${sessionId}" on this console`);
    }
    if (session.state !== 'active' && (only === 'active' || session.state !== 'suspended')) {
      throw new BatonError('SESSION_NOT_ACTIVE', `Session "${sessionId}" is ${session.state}`);
    }
    return session;
  }

  /**
   * Ends a session in the store and records it, in the caller's unit of work. `reason` is a stable
   * code; free text (an admin's reason) goes in `reasonAdmin`, as CAEP's `reason_admin`. `at`: the time of the
   * change that ends it (a revocation's), for the session's end and its event; else now.
   */
  async close(
    uow: UnitOfWork,
    session: SessionRecord,
    state: 'ended' | 'expired' | 'revoked',
    reason: string,
    reasonAdmin?: string,
    at?: number,
  ): Promise<void> {
    const now = at ?? this.ctx.clock();
    await uow.store.sessions.update(session.id, { state, endedAt: now, endReason: reason });
    const type = state === 'revoked' ? 'session-revoked' : state === 'expired' ? 'session-expired' : 'session-ended';
    await uow.record({
      type,
      ...(at === undefined ? {} : { time: at }),
      subject: { operator: session.operatorId, console: session.consoleId, session: session.id },
      assurance: assuranceContext(session.level, session.authTime),
      outcome: state === 'revoked' ? 'success' : 'info',
      // A break-glass session's end is marked too (no extra read for a passkey's session: breakGlassMark).
      reasons: [reason, ...(await breakGlassMark(uow.store, session))],
      ...(reasonAdmin === undefined ? {} : { detail: { reason_admin: reasonAdmin } }),
    });
  }

  /** The session's console token; `breakGlass`: the session is a break-glass one, and its token says so. */
  issueToken(session: SessionRecord, console: ConsoleRecord, options: { breakGlass?: boolean } = {}) {
    const channel = this.ctx.policies.policy.channels[console.channel];
    return this.tokens.issue({
      operatorId: session.operatorId,
      sessionId: session.id,
      level: session.level,
      authTime: session.authTime,
      consoleId: console.id,
      consoleJkt: console.jkt,
      channel: console.channel,
      ttlSeconds: Math.min(
        channel?.tokenTtlSeconds ?? 300,
        Math.max(1, Math.floor((session.expiresAt - this.ctx.clock()) / 1000)),
      ),
      ...(options.breakGlass === true ? { breakGlass: true } : {}),
    });
  }
}
