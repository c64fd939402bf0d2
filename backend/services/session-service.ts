import type { AuthenticationResponseJSON } from '@simplewebauthn/server';
import { BatonError, type ErrorCode } from '../../shared/errors.js';
import {
  SIGN_IN_ACTION,
  effectiveMaxSessionSeconds,
  evaluatePolicy,
  type Decision,
} from '../../shared/evaluate-policy.js';
import type { AssuranceEvent } from '../../shared/events.js';
import type { SessionView } from '../../shared/http-api.js';
import { LEVEL_PROFILES, isAtLeast, levelFromAuthentication, type AssuranceLevel } from '../../shared/levels.js';
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
import type { EventLog } from './event-log.js';
import type { PolicyService } from './policy-service.js';
import type { ChallengeStore, WebAuthnCeremonies } from './webauthn-ceremonies.js';
import { readClientData } from './webauthn-ceremonies.js';

/** NIST 800-63B: at most 100 consecutive failed attempts per account. */
export const MAX_FAILED_ATTEMPTS = 100;

/** Delivers a stored command to its console now, if it is connected (it is re-sent on reconnect). */
export interface CommandSender {
  deliver(command: CommandRecord): void;
}

export interface AuthenticatedSession {
  session: SessionView;
  resumed: boolean;
  token: string;
  tokenExpiresAt: number;
  /** The operator's credential public key (COSE, base64url) for the agent's offline resume cache. */
  credential: { id: string; publicKey: string; counter: number };
  /** Sessions on this console the sign-in suspended or ended, so the agent can follow. */
  suspended: string[];
  evicted: string[];
}

export interface StepUpResult {
  decision: Decision;
  session: SessionView;
  token: string;
  tokenExpiresAt: number;
}

/** Sign-in (start or resume), step-up and session ends: the backend's half of every session. */
export class SessionService {
  commands: CommandSender = { deliver: () => undefined };

  constructor(
    private readonly store: Store,
    private readonly events: EventLog,
    private readonly policies: PolicyService,
    private readonly challenges: ChallengeStore,
    private readonly ceremonies: WebAuthnCeremonies,
    private readonly tokens: TokenIssuer,
    private readonly clock: () => number,
  ) {}

  signInOptions(console: ConsoleRecord) {
    const challenge = this.challenges.create({ purpose: 'sign-in', consoleId: console.id });
    return this.ceremonies.authenticationOptions({
      challenge,
      userVerification: this.policies.policy.credentials.userVerification,
    });
  }

  async signIn(console: ConsoleRecord, response: AuthenticationResponseJSON): Promise<AuthenticatedSession> {
    const client = readClientData(response.response.clientDataJSON);
    const context = this.consume(client.challenge, console, 'sign-in-failed');
    if (context.purpose !== 'sign-in')
      throw new BatonError('CHALLENGE_UNKNOWN', 'The challenge was not issued for sign-in');
    const { credential, operator } = this.usableCredential(console, response.id, 'sign-in-failed');
    if (response.response.userHandle !== undefined && response.response.userHandle !== operator.webauthnUserId) {
      this.fail(console, 'sign-in-failed', 'WEBAUTHN_VERIFICATION_FAILED', { operator: operator.id });
      throw new BatonError('WEBAUTHN_VERIFICATION_FAILED', 'The user handle does not belong to this credential');
    }
    const { level, counter } = await this.verifyAssertion(
      console,
      response,
      client.challenge,
      credential,
      operator,
      this.policies.policy.credentials.userVerification === 'required',
      'sign-in-failed',
    );
    const policy = this.policies.policy;
    const now = this.clock();
    const decision = evaluatePolicy(policy, { channel: console.channel, level, authTime: now, now }, SIGN_IN_ACTION);
    if (decision.outcome !== 'allow') {
      this.events.atomically(() => {
        this.recordUse(credential, counter);
        this.fail(console, 'sign-in-failed', 'LEVEL_NOT_ALLOWED_ON_CHANNEL', { operator: operator.id }, level);
      });
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
    const outcome = this.events.atomically(() => {
      // Verification awaited: a revocation may have landed meanwhile. Decide on the state as it is now.
      this.assertStillUsable(console.id, credential.id, operator.id);
      this.recordUse(credential, counter);
      this.store.operators.resetFailures(operator.id);
      const live = this.store.sessions.liveOnConsole(console.id);
      let session: SessionRecord | undefined;
      let resumed = false;
      for (const s of live) {
        if (s.operatorId !== operator.id) continue;
        const anchor = s.suspendedAt ?? s.authTime;
        if (now < s.expiresAt && now - anchor <= channel.continuitySeconds * 1000 && session === undefined) {
          session = s;
          resumed = true;
        } else {
          this.close(s, 'expired', now < s.expiresAt ? 'continuity-window-elapsed' : 'lifetime-exceeded');
        }
      }
      for (const s of live) {
        if (s.operatorId === operator.id || s.state !== 'active') continue;
        this.store.sessions.update(s.id, { state: 'suspended', suspendedAt: now });
        suspended.push(s.id);
        this.events.record({
          type: 'session-suspended',
          subject: { operator: s.operatorId, console: console.id, session: s.id },
          assurance: assuranceContext(s.level, s.authTime),
          outcome: 'info',
          reasons: ['another-operator-signed-in'],
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
          credentialId: credential.id,
          expiresAt: Math.min(session.expiresAt, cap),
        };
        this.store.sessions.update(session.id, changes);
        session = { ...session, ...changes };
        this.events.record({
          type: 'session-resumed',
          subject: { operator: operator.id, console: console.id, session: session.id, credential: credential.id },
          assurance,
          outcome: 'success',
          reasons: ['within-continuity-window'],
        });
      } else {
        const stillLive = this.store.sessions.liveOnConsole(console.id);
        const excess = stillLive.length + 1 - channel.maxSessions;
        const evictable = stillLive
          .filter((s) => s.state === 'suspended')
          .sort((a, b) => (a.suspendedAt ?? 0) - (b.suspendedAt ?? 0));
        for (const s of evictable.slice(0, Math.max(0, excess))) {
          this.close(s, 'ended', 'evicted-by-session-limit');
          evicted.push(s.id);
          commands.push(this.storeEndCommand(s, 'evicted-by-session-limit'));
        }
        session = {
          id: newId('ses'),
          operatorId: operator.id,
          consoleId: console.id,
          channel: console.channel,
          credentialId: credential.id,
          level,
          authTime: now,
          startedAt: now,
          expiresAt: now + (effectiveMaxSessionSeconds(policy, console.channel, level) ?? 0) * 1000,
          state: 'active',
          suspendedAt: null,
          endedAt: null,
          endReason: null,
        };
        this.store.sessions.insert(session);
        this.events.record({
          type: 'session-established',
          subject: { operator: operator.id, console: console.id, session: session.id, credential: credential.id },
          assurance,
          outcome: 'success',
          reasons: ['sign-in-allowed'],
          detail: { acr: assurance.acr, channel: console.channel, policyVersion: this.policies.version.version },
        });
      }
      return { session, resumed };
    });
    for (const command of commands) this.commands.deliver(command);
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
      suspended,
      evicted,
    };
  }

  /** Evaluates an action for a session; when step-up is needed, returns the options for it. */
  async stepUpOptions(console: ConsoleRecord, sessionId: string, action: string) {
    const session = this.liveSession(console, sessionId, 'active');
    const decision = this.decide(console, session, action, session.level, session.authTime);
    if (decision.outcome !== 'step-up') return { decision };
    const operatorCredentials = this.store.operators
      .listCredentials(session.operatorId)
      .filter((c) => c.revokedAt === null)
      .map((c) => ({ id: c.id, transports: c.transports }));
    const challenge = this.challenges.create({ purpose: 'step-up', consoleId: console.id, sessionId, action });
    const options = await this.ceremonies.authenticationOptions({
      challenge,
      userVerification: isAtLeast(decision.level, 'verified')
        ? 'required'
        : this.policies.policy.credentials.userVerification,
      allow: operatorCredentials,
    });
    return { decision, options };
  }

  async stepUp(
    console: ConsoleRecord,
    sessionId: string,
    action: string,
    response: AuthenticationResponseJSON,
  ): Promise<StepUpResult> {
    const client = readClientData(response.response.clientDataJSON);
    const context = this.consume(client.challenge, console, 'step-up-failed');
    if (context.purpose !== 'step-up' || context.sessionId !== sessionId || context.action !== action) {
      throw new BatonError('CHALLENGE_UNKNOWN', 'The challenge was not issued for this step-up');
    }
    const session = this.liveSession(console, sessionId, 'active');
    const { credential, operator } = this.usableCredential(console, response.id, 'step-up-failed');
    if (credential.operatorId !== session.operatorId) {
      this.fail(console, 'step-up-failed', 'STEP_UP_WRONG_OPERATOR', { operator: operator.id, session: session.id });
      throw new BatonError('STEP_UP_WRONG_OPERATOR', 'Step-up must be done by the operator who owns the session');
    }
    const required = this.decide(console, session, action, session.level, session.authTime, false);
    const requireUv = required.outcome === 'step-up' && isAtLeast(required.level, 'verified');
    const { level, counter } = await this.verifyAssertion(
      console,
      response,
      client.challenge,
      credential,
      operator,
      requireUv,
      'step-up-failed',
      session.id,
    );
    const now = this.clock();
    const decision = evaluatePolicy(
      this.policies.policy,
      { channel: console.channel, level, authTime: now, now, sessionStartedAt: session.startedAt },
      action,
    );
    if (decision.outcome !== 'allow') {
      this.events.atomically(() => {
        this.recordUse(credential, counter);
        this.events.record({
          type: 'step-up-failed',
          subject: { operator: operator.id, console: console.id, session: session.id },
          assurance: assuranceContext(level, now),
          outcome: 'failure',
          reasons: ['step-up-insufficient', ...decision.reasons],
          detail: { action },
        });
      });
      throw new BatonError('STEP_UP_INSUFFICIENT', `A "${level}" authentication does not satisfy "${action}"`, {
        extra: { decision },
      });
    }
    const updated = this.events.atomically(() => {
      this.assertStillUsable(console.id, credential.id, operator.id);
      const current = this.store.sessions.get(session.id);
      if (current?.state !== 'active') {
        throw new BatonError('SESSION_NOT_ACTIVE', `Session "${session.id}" is ${current?.state ?? 'gone'}`);
      }
      this.recordUse(credential, counter);
      // The session now rests on this credential: revoking it ends the session.
      const changes = { level, authTime: now, credentialId: credential.id };
      this.store.sessions.update(session.id, changes);
      const subject = { operator: operator.id, console: console.id, session: session.id, credential: credential.id };
      const assurance = assuranceContext(level, now);
      if (level !== session.level) {
        const previous = LEVEL_PROFILES[session.level].aal;
        const current = LEVEL_PROFILES[level].aal;
        this.events.record({
          type: 'assurance-level-change',
          subject,
          assurance,
          outcome: 'success',
          reasons: ['step-up'],
          detail: {
            namespace: 'NIST-AAL',
            current_level: `nist-aal${current}`,
            previous_level: `nist-aal${previous}`,
            change_direction: current > previous ? 'increase' : 'decrease',
          },
        });
      }
      this.events.record({
        type: 'session-stepped-up',
        subject,
        assurance,
        outcome: 'success',
        reasons: ['step-up'],
        detail: { action },
      });
      this.events.record({
        type: 'policy-decision',
        subject,
        assurance,
        outcome: 'allow',
        reasons: decision.reasons,
        detail: { action },
      });
      return { ...session, ...changes };
    });
    const { token, expiresAt } = await this.issueToken(updated, console);
    return { decision, session: sessionView(updated, operator.displayName), token, tokenExpiresAt: expiresAt };
  }

  /** The console ends one of its sessions (sign-out, eviction it decided, expiry it observed). */
  end(console: ConsoleRecord, sessionId: string, reason: string): SessionView {
    const session = this.liveSession(console, sessionId);
    this.events.atomically(() => this.close(session, reason === 'expired' ? 'expired' : 'ended', reason));
    const operator = this.store.operators.get(session.operatorId);
    return sessionView(this.store.sessions.get(session.id) ?? session, operator?.displayName ?? '');
  }

  /** An admin ends a session: the console is told at once to end it. */
  endByAdmin(sessionId: string, reason: string, actor: string): SessionRecord {
    const session = this.store.sessions.get(sessionId);
    if (session === undefined) throw new BatonError('SESSION_UNKNOWN', `No session "${sessionId}"`);
    if (session.state !== 'active' && session.state !== 'suspended') {
      throw new BatonError('SESSION_NOT_ACTIVE', `Session "${sessionId}" is already ${session.state}`);
    }
    const command = this.events.atomically(() => {
      this.close(session, 'ended', 'ended-by-admin', reason);
      this.events.record({
        type: 'admin-action',
        subject: { operator: session.operatorId, console: session.consoleId, session: session.id },
        outcome: 'success',
        reasons: ['session-ended'],
        detail: { actor, reason },
      });
      return this.storeEndCommand(session, reason);
    });
    this.commands.deliver(command);
    return this.store.sessions.get(session.id) ?? session;
  }

  /** Stores an end-session command in the caller's transaction, so it cannot be lost in a crash. */
  private storeEndCommand(session: SessionRecord, reason: string): CommandRecord {
    const command: CommandRecord = {
      id: newId('cmd'),
      consoleId: session.consoleId,
      sessionId: session.id,
      reason: reason.slice(0, 500),
      createdAt: this.clock(),
    };
    this.store.commands.insert(command);
    return command;
  }

  /** Console events that move a session's continuity anchor (lock, suspend) or resume it offline. */
  applyConsoleEvents(consoleId: string, events: readonly AssuranceEvent[]): void {
    const now = this.clock();
    for (const event of events) {
      const id = event.subject.session;
      if (id === undefined || (event.type !== 'session-locked' && event.type !== 'session-suspended')) continue;
      const session = this.store.sessions.get(id);
      if (session === undefined || session.consoleId !== consoleId || session.state !== 'active') continue;
      const at = Math.min(Math.max(event.time, session.authTime), now);
      this.store.sessions.update(id, { state: 'suspended', suspendedAt: at });
    }
  }

  private decide(
    console: ConsoleRecord,
    session: SessionRecord,
    action: string,
    level: AssuranceLevel,
    authTime: number,
    record = true,
  ): Decision {
    const now = this.clock();
    const decision = evaluatePolicy(
      this.policies.policy,
      { channel: console.channel, level, authTime, now, sessionStartedAt: session.startedAt },
      action,
    );
    if (record && decision.outcome !== 'allow') {
      this.events.record({
        type: 'policy-decision',
        subject: { operator: session.operatorId, console: console.id, session: session.id },
        assurance: assuranceContext(level, authTime),
        outcome: decision.outcome,
        reasons: decision.reasons,
        detail: { action, policyVersion: this.policies.version.version },
      });
    }
    return decision;
  }

  private consume(challenge: string, console: ConsoleRecord, failureType: 'sign-in-failed' | 'step-up-failed') {
    try {
      return this.challenges.consume(challenge, console.id);
    } catch (error) {
      if (error instanceof BatonError) this.fail(console, failureType, error.code, {});
      throw error;
    }
  }

  /**
   * A session of this console that is still live. Step-up asks for `active` only: a suspended
   * session comes back through sign-in, which applies the continuity window and suspends others.
   */
  private liveSession(console: ConsoleRecord, sessionId: string, only?: 'active'): SessionRecord {
    const session = this.store.sessions.get(sessionId);
    if (session === undefined || session.consoleId !== console.id) {
      throw new BatonError('SESSION_UNKNOWN', `No session "${sessionId}" on this console`);
    }
    if (session.state !== 'active' && (only === 'active' || session.state !== 'suspended')) {
      throw new BatonError('SESSION_NOT_ACTIVE', `Session "${sessionId}" is ${session.state}`);
    }
    if (this.clock() >= session.expiresAt) {
      this.events.atomically(() => this.close(session, 'expired', 'lifetime-exceeded'));
      throw new BatonError('SESSION_NOT_ACTIVE', `Session "${sessionId}" has expired`);
    }
    return session;
  }

  /** Re-reads what a verification awaited on: refuses if the console, credential or operator was revoked since. */
  private assertStillUsable(consoleId: string, credentialId: string, operatorId: string): void {
    if (this.store.consoles.get(consoleId)?.revokedAt !== null) {
      throw new BatonError('CONSOLE_REVOKED', 'This console was revoked during the ceremony');
    }
    if (this.store.operators.getCredential(credentialId)?.revokedAt !== null) {
      throw new BatonError('CREDENTIAL_REVOKED', 'This credential was revoked during the ceremony');
    }
    if (this.store.operators.get(operatorId)?.revokedAt !== null) {
      throw new BatonError('OPERATOR_REVOKED', 'This operator was revoked during the ceremony');
    }
  }

  private usableCredential(
    console: ConsoleRecord,
    credentialId: string,
    failureType: 'sign-in-failed' | 'step-up-failed',
  ) {
    const credential = this.store.operators.getCredential(credentialId);
    if (credential === undefined) {
      this.fail(console, failureType, 'CREDENTIAL_UNKNOWN', {});
      throw new BatonError('CREDENTIAL_UNKNOWN', 'No operator holds this credential');
    }
    const operator = this.store.operators.get(credential.operatorId) as OperatorRecord;
    const refuse = (code: ErrorCode, message: string): never => {
      this.fail(console, failureType, code, { operator: operator.id, credential: credential.id });
      throw new BatonError(code, message);
    };
    if (credential.revokedAt !== null) refuse('CREDENTIAL_REVOKED', 'This credential has been revoked');
    if (operator.revokedAt !== null) refuse('OPERATOR_REVOKED', 'This operator has been revoked');
    if (operator.failedAttempts >= MAX_FAILED_ATTEMPTS) {
      refuse('OPERATOR_LOCKED', 'Too many failed attempts: an administrator must reset this operator');
    }
    if (this.policies.policy.credentials.deviceBoundOnly && !credential.deviceBound) {
      refuse('CREDENTIAL_NOT_DEVICE_BOUND', 'Policy allows device-bound credentials only');
    }
    return { credential, operator };
  }

  private async verifyAssertion(
    console: ConsoleRecord,
    response: AuthenticationResponseJSON,
    challenge: string,
    credential: CredentialRecord,
    operator: OperatorRecord,
    requireUv: boolean,
    failureType: 'sign-in-failed' | 'step-up-failed',
    sessionId?: string,
  ): Promise<{ level: AssuranceLevel; counter: number }> {
    let info;
    try {
      info = await this.ceremonies.verifyAuthentication(
        response,
        challenge,
        {
          id: credential.id,
          publicKey: new Uint8Array(credential.publicKey),
          counter: credential.counter,
          transports: [],
        },
        requireUv,
      );
    } catch (error) {
      const code = error instanceof BatonError ? error.code : 'WEBAUTHN_VERIFICATION_FAILED';
      this.events.atomically(() => {
        // Only a bad signature or a cloned counter is a guess at this operator's key; a wrong origin
        // or RP ID is a console's fault and must not let one console lock operators out.
        if (code === 'WEBAUTHN_VERIFICATION_FAILED' || code === 'WEBAUTHN_COUNTER_REGRESSED') {
          this.store.operators.recordFailure(operator.id);
        }
        this.fail(console, failureType, code, {
          operator: operator.id,
          credential: credential.id,
          ...(sessionId ? { session: sessionId } : {}),
        });
        if (code === 'WEBAUTHN_COUNTER_REGRESSED') {
          this.events.record({
            type: 'credential-counter-regressed',
            subject: { operator: operator.id, console: console.id, credential: credential.id },
            outcome: 'failure',
            reasons: ['possible-cloned-authenticator'],
            detail: { storedCounter: credential.counter },
          });
        }
      });
      throw error;
    }
    const policy = this.policies.policy;
    if (info.backupEligible && (policy.credentials.deviceBoundOnly || credential.deviceBound)) {
      // The BE flag never changes for a credential: a device-bound one now claiming to be syncable is
      // another authenticator or a tampered one.
      this.events.atomically(() => {
        this.recordUse(credential, info.newCounter);
        this.fail(console, failureType, 'CREDENTIAL_NOT_DEVICE_BOUND', {
          operator: operator.id,
          credential: credential.id,
          ...(sessionId ? { session: sessionId } : {}),
        });
      });
      throw new BatonError(
        'CREDENTIAL_NOT_DEVICE_BOUND',
        'The authenticator reports this credential as syncable (backup eligible)',
      );
    }
    const level = levelFromAuthentication({
      userVerified: info.userVerified,
      deviceBound: credential.deviceBound && !info.backupEligible,
      attested: credential.attestationTrust === 'certificate',
      aaguidAllowed: policy.credentials.aaguidAllowList.includes(credential.aaguid),
    });
    return { level, counter: info.newCounter };
  }

  /** Stores the new signature counter of a verified assertion (inside the caller's transaction). */
  private recordUse(credential: CredentialRecord, counter: number): void {
    this.store.operators.recordCredentialUse(credential.id, counter, this.clock());
    credential.counter = counter;
  }

  private fail(
    console: ConsoleRecord,
    type: 'sign-in-failed' | 'step-up-failed',
    code: ErrorCode,
    subject: { operator?: string; credential?: string; session?: string },
    level?: AssuranceLevel,
  ): void {
    this.events.record({
      type,
      subject: { ...subject, console: console.id },
      ...(level === undefined ? {} : { assurance: assuranceContext(level, this.clock()) }),
      outcome: 'failure',
      reasons: [code.toLowerCase().replace(/_/g, '-')],
    });
  }

  /**
   * Ends a session in the store and records it (call inside a transaction). `reason` is a stable
   * code; free text (an admin's reason) goes in `reasonAdmin`, as CAEP's `reason_admin`.
   */
  close(session: SessionRecord, state: 'ended' | 'expired' | 'revoked', reason: string, reasonAdmin?: string): void {
    const now = this.clock();
    this.store.sessions.update(session.id, { state, endedAt: now, endReason: reason });
    const type = state === 'revoked' ? 'session-revoked' : state === 'expired' ? 'session-expired' : 'session-ended';
    this.events.record({
      type,
      subject: { operator: session.operatorId, console: session.consoleId, session: session.id },
      assurance: assuranceContext(session.level, session.authTime),
      outcome: state === 'revoked' ? 'success' : 'info',
      reasons: [reason],
      ...(reasonAdmin === undefined ? {} : { detail: { reason_admin: reasonAdmin } }),
    });
  }

  private issueToken(session: SessionRecord, console: ConsoleRecord) {
    const channel = this.policies.policy.channels[console.channel];
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
        Math.max(1, Math.floor((session.expiresAt - this.clock()) / 1000)),
      ),
    });
  }
}
