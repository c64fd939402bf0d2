import type { PublicKeyCredentialRequestOptionsJSON } from '@simplewebauthn/server';
import { BatonError } from '../../../shared/errors.js';
import { evaluatePolicy, type Decision } from '../../../shared/evaluate-policy.js';
import type { AgentContext } from '../agent-context.js';
import type { AgentPhase, AuthorizeResult } from '../agent-types.js';
import { assuranceOf, type AgentSession } from '../session-manager.js';
import { askAssertion } from './authenticator.js';

/** Runs one ceremony at a time with its phase shown (the facade's). */
export type CeremonyRunner = <T>(phase: AgentPhase, fn: () => Promise<T>) => Promise<T>;

/**
 * May the operator in front do `action`? Runs the shared evaluator; when the policy asks for
 * step-up it re-authenticates the *current* operator (a tap by someone else is refused by the
 * backend and recorded there), then allows. Decisions made here are journaled before they are returned.
 */
export async function authorize(ctx: AgentContext, ceremony: CeremonyRunner, action: string): Promise<AuthorizeResult> {
  const sessions = ctx.runtime?.sessions;
  const front = sessions?.front;
  if (sessions === undefined || front === undefined || (front.state !== 'active' && front.state !== 'stepped-up')) {
    const error = ctx.setNotice(
      new BatonError('NO_SESSION_IN_FRONT', 'Nobody is signed in and in front on this console'),
    );
    return { outcome: 'refused', code: error.code, message: error.message };
  }
  sessions.noteActivity();
  const now = ctx.clock.now();
  // A break-glass session (no key: a supervisor's tap or IT's code) may do its grant's actions only,
  // whatever the policy allows at its level; as the backend's step-up and the exchange refuse them.
  if (front.breakGlass !== undefined && !front.breakGlass.actions.includes(action)) {
    const denied: Decision = { outcome: 'deny', reasons: ['break-glass-action-not-allowed'] };
    await recordDecision(ctx, front, action, denied);
    ctx.notice = {
      code: 'ACTION_DENIED',
      message: `Temporary access without a key does not allow "${action}"`,
      at: now,
    };
    ctx.changed();
    return { outcome: 'deny', reasons: denied.reasons };
  }
  const decision = evaluatePolicy(
    ctx.policy,
    { channel: ctx.channel, level: front.level, authTime: front.authTime, sessionStartedAt: front.startedAt, now },
    action,
  );
  if (decision.outcome !== 'step-up') {
    // The decision is on disk before the caller acts on it.
    await recordDecision(ctx, front, action, decision);
    if (decision.outcome === 'allow') return { outcome: 'allow', steppedUp: false, reasons: decision.reasons };
    ctx.notice = { code: 'ACTION_DENIED', message: `The policy does not allow "${action}" here`, at: now };
    ctx.changed();
    return { outcome: 'deny', reasons: decision.reasons };
  }
  try {
    return await ceremony({ kind: 'stepping-up', action }, () => stepUp(ctx, front, action));
  } catch (error) {
    const baton = ctx.setNotice(error);
    return { outcome: 'refused', code: baton.code, message: baton.message };
  }
}

/** The backend's step-up: its decision, the operator's tap, its verification and a fresh token. Online only. */
async function stepUp(ctx: AgentContext, front: AgentSession, action: string): Promise<AuthorizeResult> {
  const runtime = ctx.runtime;
  if (runtime === undefined || ctx.sync.connection !== 'online') {
    void ctx.record({
      type: 'step-up-failed',
      subject: { operator: front.operatorId, console: ctx.identity.credentials().consoleId, session: front.id },
      assurance: assuranceOf(front.level, front.authTime),
      outcome: 'failure',
      reasons: ['backend-unreachable'],
      detail: { action },
    });
    throw new BatonError('BACKEND_UNREACHABLE', `"${action}" needs a step-up, and step-up needs the backend`);
  }
  const client = runtime.client;
  const first = await client.call('stepUpOptions', { id: front.id }, { action });
  if (first.decision.outcome === 'allow')
    return { outcome: 'allow', steppedUp: false, reasons: first.decision.reasons };
  if (first.decision.outcome === 'deny' || first.options === undefined) {
    return { outcome: 'deny', reasons: first.decision.reasons };
  }
  // The UI names the action and why while the operator taps.
  ctx.phase = { kind: 'stepping-up', action, level: first.decision.level, reasons: first.decision.reasons };
  ctx.changed();
  const response = await askAssertion(
    ctx.ceremonies,
    'step-up',
    first.options as unknown as PublicKeyCredentialRequestOptionsJSON,
    action,
  );
  const result = await client.call('stepUpVerify', { id: front.id }, { action, response });
  ctx.runtime?.sessions.steppedUp(result.session, result.token, result.tokenExpiresAt);
  return { outcome: 'allow', steppedUp: true, reasons: result.decision.reasons };
}

function recordDecision(ctx: AgentContext, front: AgentSession, action: string, decision: Decision): Promise<void> {
  return ctx.record({
    type: 'policy-decision',
    subject: { operator: front.operatorId, console: ctx.identity.credentials().consoleId, session: front.id },
    assurance: assuranceOf(front.level, front.authTime),
    outcome: decision.outcome,
    reasons: decision.reasons,
    detail: { action, policyVersion: ctx.identity.policy?.version ?? 0 },
  });
}
