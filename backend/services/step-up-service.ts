import type { AuthenticationResponseJSON } from '@simplewebauthn/server';
import { BatonError } from '../../shared/errors.js';
import { evaluatePolicy, type Decision, type DecisionReason } from '../../shared/evaluate-policy.js';
import { BREAK_GLASS_REASON, breakGlassAllows, isBreakGlassSession } from '../break-glass/break-glass.js';
import type { SessionView } from '../../shared/http-api.js';
import { LEVEL_PROFILES, isAtLeast, type AssuranceLevel } from '../../shared/levels.js';
import type { ConsoleRecord, SessionRecord } from '../store/repositories.js';
import { assuranceContext, sessionView } from './assurance.js';
import type { CeremonyContext } from './ceremony-context.js';
import { readClientData } from './webauthn-ceremonies.js';

import type { AssertionGate } from './assertion-gate.js';
import type { SessionService, StaleMark } from './session-service.js';

/**
 * The decision with this node's stale mark (`stale-node`, best-effort channels only) among its reasons.
 * `stale-node` is an event reason the shared evaluator never produces itself, hence the widening.
 */
function marked(decision: Decision, stale: StaleMark): Decision {
  if (stale.reasons.length === 0) return decision;
  return { ...decision, reasons: [...decision.reasons, ...(stale.reasons as DecisionReason[])] };
}

export interface StepUpResult {
  decision: Decision;
  session: SessionView;
  token: string;
  tokenExpiresAt: number;
}

/** Step-up: re-authenticates the operator in front for a named action, under the policy. */
export class StepUpService {
  constructor(
    private readonly ctx: CeremonyContext,
    private readonly sessions: SessionService,
    private readonly gate: AssertionGate,
  ) {}

  /** Evaluates an action for a session; when step-up is needed, returns the options for it. */
  async stepUpOptions(console: ConsoleRecord, sessionId: string, action: string) {
    // Before any work: a strict channel on a stale node is refused (NODE_STALE), best-effort is marked.
    const stale = this.sessions.staleCheck(console.channel);
    const session = await this.sessions.liveSession(console, sessionId, 'active');
    // Break-glass (backend/break-glass/): a session started without a key may do only the policy's
    // `breakGlass.actions`; anything else is refused as the action-token exchange refuses it.
    const breakGlass = await this.refuseOutsideBreakGlass(console, session, action);
    const decision = await this.decide(
      console,
      session,
      action,
      session.level,
      session.authTime,
      true,
      stale,
      breakGlass,
    );
    if (decision.outcome !== 'step-up') return { decision };
    const operatorCredentials = (await this.ctx.store.operators.listCredentials(session.operatorId))
      .filter((c) => c.revokedAt === null && c.suspendedAt === null)
      .map((c) => ({ id: c.id, transports: c.transports }));
    const challenge = await this.ctx.challenges.create({
      purpose: 'step-up',
      consoleId: console.id,
      sessionId,
      action,
    });
    const options = await this.ctx.ceremonies.authenticationOptions({
      challenge,
      userVerification: isAtLeast(decision.level, 'verified')
        ? 'required'
        : this.ctx.policies.policy.credentials.userVerification,
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
    const stale = this.sessions.staleCheck(console.channel);
    const client = readClientData(response.response.clientDataJSON);
    const context = await this.gate.consume(client.challenge, console, 'step-up-failed');
    if (context.purpose !== 'step-up' || context.sessionId !== sessionId || context.action !== action) {
      throw new BatonError('CHALLENGE_UNKNOWN', 'The challenge was not issued for this step-up');
    }
    const session = await this.sessions.liveSession(console, sessionId, 'active');
    // Checked again: a policy published since the options may have taken the action off `breakGlass.actions`.
    const breakGlass = await this.refuseOutsideBreakGlass(console, session, action);
    const { credential, operator } = await this.gate.usableCredential(console, response.id, 'step-up-failed');
    if (credential.operatorId !== session.operatorId) {
      await this.gate.fail(console, 'step-up-failed', 'STEP_UP_WRONG_OPERATOR', {
        operator: operator.id,
        session: session.id,
      });
      throw new BatonError('STEP_UP_WRONG_OPERATOR', 'Step-up must be done by the operator who owns the session');
    }
    const required = await this.decide(console, session, action, session.level, session.authTime, false);
    const requireUv = required.outcome === 'step-up' && isAtLeast(required.level, 'verified');
    const { level: verified, counter } = await this.gate.verifyAssertion(
      console,
      response,
      client.challenge,
      credential,
      operator,
      requireUv,
      'step-up-failed',
      session.id,
    );
    // A break-glass session never gets above `presence` (docs/break-glass.md): a step-up renews its
    // authentication time only, and the session keeps resting on its grant (not on this key).
    const level = breakGlass ? 'presence' : verified;
    const now = this.ctx.clock();
    const decision = marked(
      evaluatePolicy(
        this.ctx.policies.policy,
        { channel: console.channel, level, authTime: now, now, sessionStartedAt: session.startedAt },
        action,
      ),
      stale,
    );
    // The events of a break-glass session's step-up carry its mark (the decision the console gets is unchanged).
    const mark = breakGlass ? [BREAK_GLASS_REASON] : [];
    if (decision.outcome !== 'allow') {
      // A refusal changes nothing: the credential's counter and last use stay as they were.
      await this.ctx.events.record({
        type: 'step-up-failed',
        subject: { operator: operator.id, console: console.id, session: session.id },
        assurance: assuranceContext(level, now),
        outcome: 'failure',
        reasons: ['step-up-insufficient', ...decision.reasons, ...mark],
        detail: { action, ...stale.detail },
      });
      throw new BatonError('STEP_UP_INSUFFICIENT', `A "${level}" authentication does not satisfy "${action}"`, {
        extra: { decision },
      });
    }
    // A counter another node advanced past this assertion's meanwhile: refused as a cloned key is.
    const updated = await this.gate.actOn(console, credential, operator.id, 'step-up-failed', session.id, () =>
      this.ctx.events.atomically(async (uow) => {
        const tx = uow.store;
        // Verification awaited: a revocation may have landed meanwhile, on any node. The unit's first
        // writes take the rows a revocation updates (credential, operator, console, then the session,
        // the store's lock order in repositories.ts, as sign-in takes them: see
        // `AssertionGate.recordUse`), each returning the state it left (one statement on PostgreSQL,
        // as sign-in's `recordUseAndRecheck`); the session's update returns its row; then the checks
        // decide on the state as it is now. The session now rests on this credential: revoking it
        // ends the session.
        const rows = await this.gate.recordUseForRecheck(tx, credential, counter, operator.id, console.id);
        const changes = breakGlass ? { authTime: now } : { level, authTime: now, credentialId: credential.id };
        const stored = await tx.sessions.updateAndGet(session.id, changes);
        if (stored?.state !== 'active') {
          throw new BatonError('SESSION_NOT_ACTIVE', `Session "${session.id}" is ${stored?.state ?? 'gone'}`);
        }
        this.gate.refuseRevoked(rows);
        const subject = { operator: operator.id, console: console.id, session: session.id, credential: credential.id };
        const assurance = assuranceContext(level, now);
        if (level !== session.level) {
          const previous = LEVEL_PROFILES[session.level].aal;
          const current = LEVEL_PROFILES[level].aal;
          await uow.record({
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
        await uow.record({
          type: 'session-stepped-up',
          subject,
          assurance,
          outcome: 'success',
          reasons: ['step-up', ...stale.reasons, ...mark],
          detail: { action, ...stale.detail },
        });
        await uow.record({
          type: 'policy-decision',
          subject,
          assurance,
          outcome: 'allow',
          reasons: [...decision.reasons, ...mark],
          detail: { action, ...stale.detail },
        });
        return stored;
      }),
    );
    // Every token of a break-glass session says so (`break_glass: true`), as its first one and its action tokens do.
    const { token, expiresAt } = await this.sessions.issueToken(updated, console, breakGlass ? { breakGlass } : {});
    return { decision, session: sessionView(updated, operator.displayName), token, tokenExpiresAt: expiresAt };
  }

  /**
   * Whether the session is a break-glass one; for one, an action outside the policy's
   * `breakGlass.actions` is refused with the exchange's answer (`403 ACTION_DENIED`, decision `deny`
   * with reason `break-glass`, backend/tokens/token-exchange.ts) and recorded as a `policy-decision`.
   */
  private async refuseOutsideBreakGlass(console: ConsoleRecord, session: SessionRecord, action: string) {
    if (!(await isBreakGlassSession(this.ctx.store, session.id))) return false;
    if (breakGlassAllows(this.ctx.policies.policy, action)) return true;
    const reasons = [BREAK_GLASS_REASON];
    await this.ctx.events.record({
      type: 'policy-decision',
      subject: { operator: session.operatorId, console: console.id, session: session.id },
      assurance: assuranceContext(session.level, session.authTime),
      outcome: 'deny',
      reasons,
      detail: { action, policyVersion: this.ctx.policies.version.version },
    });
    throw new BatonError('ACTION_DENIED', `A break-glass session may not do "${action}"`, {
      extra: { decision: { outcome: 'deny', reasons } },
    });
  }

  private async decide(
    console: ConsoleRecord,
    session: SessionRecord,
    action: string,
    level: AssuranceLevel,
    authTime: number,
    record = true,
    stale: StaleMark = { reasons: [], detail: {} },
    breakGlass = false,
  ): Promise<Decision> {
    const now = this.ctx.clock();
    const decision = marked(
      evaluatePolicy(
        this.ctx.policies.policy,
        { channel: console.channel, level, authTime, now, sessionStartedAt: session.startedAt },
        action,
      ),
      stale,
    );
    if (record && decision.outcome !== 'allow') {
      await this.ctx.events.record({
        type: 'policy-decision',
        subject: { operator: session.operatorId, console: console.id, session: session.id },
        assurance: assuranceContext(level, authTime),
        outcome: decision.outcome,
        reasons: [...decision.reasons, ...(breakGlass ? [BREAK_GLASS_REASON] : [])],
        detail: { action, policyVersion: this.ctx.policies.version.version, ...stale.detail },
      });
    }
    return decision;
  }
}
