import {
  ACCESS_TOKEN_TYPE,
  JWT_TOKEN_TYPE,
  TOKEN_EXCHANGE_GRANT,
  type StepUpDetails,
  type TokenExchangeRequest,
  type TokenExchangeResponse,
} from '../../shared/action-tokens.js';
import { BatonError, type ErrorCode } from '../../shared/errors.js';
import { evaluatePolicy, type Decision, type DecisionReason } from '../../shared/evaluate-policy.js';
import { LEVEL_PROFILES } from '../../shared/levels.js';
import { DEFAULT_ACTION_TOKEN_TTL_SECONDS, appForAudience, type AppPolicy, type Policy } from '../../shared/policy.js';
import type { EventDraft } from '../../shared/events.js';
import type { TokenIssuer } from '../crypto/token-issuer.js';
import { BREAK_GLASS_REASON } from '../break-glass/break-glass.js';
import { assuranceContext } from '../services/assurance.js';
import type { EventLog } from '../services/event-log.js';
import type { PolicyService } from '../services/policy-service.js';
import type { SessionService, StaleMark } from '../services/session-service.js';
import type { ConsoleRecord, SessionRecord, Store } from '../store/repositories.js';
import type { ActionTokenIssuer, IssuedActionToken } from './action-token-issuer.js';
import { ExchangeSubjectReader } from './exchange-subject.js';
import { IssuanceJournal } from './issuance-journal.js';
import { SubjectTokenVerifier } from './subject-token.js';

/** Break-glass sessions (backend/break-glass, issue 14 item 7): which sessions are capped, and to what. */
export interface BreakGlassCap {
  grantForSession(sessionId: string): Promise<unknown>;
  allows(policy: Policy, action: string): boolean;
}

/**
 * The operator and the passkey the session rests on (none for a break-glass session) are still
 * usable (as `refreshToken` checks). Also the check of a service's actor session
 * (backend/service-accounts/service-accounts.ts `verifyActor`).
 */
export function assertUsable(
  operator: { id: string; revokedAt: number | null } | undefined,
  credential: { operatorId: string; revokedAt: number | null; suspendedAt: number | null } | undefined,
  breakGlass: boolean,
): void {
  if (operator === undefined || operator.revokedAt !== null) {
    throw new BatonError('OPERATOR_REVOKED', 'This operator is revoked');
  }
  if (breakGlass) return;
  if (credential === undefined || credential.operatorId !== operator.id || credential.revokedAt !== null) {
    throw new BatonError('CREDENTIAL_REVOKED', "The session's passkey is revoked");
  }
  if (credential.suspendedAt !== null) {
    throw new BatonError('CREDENTIAL_SUSPENDED', "The session's passkey is suspended until an admin reviews it");
  }
}

/**
 * The decision with this node's stale mark (`stale-node`, best-effort channels only) among its reasons,
 * as step-up marks its own (backend/services/step-up-service.ts): the refused exchange's
 * `error.decision` and the events say it. `stale-node` is never the evaluator's, hence the widening.
 */
function withStaleMark(decision: Decision, stale: StaleMark): Decision {
  if (stale.reasons.length === 0) return decision;
  return { ...decision, reasons: [...decision.reasons, ...(stale.reasons as DecisionReason[])] };
}

/** The RFC 8693 answer for an issued action token. */
export function tokenExchangeResponse(issued: IssuedActionToken, action: string): TokenExchangeResponse {
  return {
    access_token: issued.token,
    issued_token_type: ACCESS_TOKEN_TYPE,
    token_type: 'Bearer',
    expires_in: issued.expiresIn,
    scope: action,
  };
}

/**
 * The app of `audience` in the policy, if it declares `action`. AUDIENCE_UNKNOWN when the policy
 * has no such app, ACTION_NOT_FOR_AUDIENCE when the app does not perform that action.
 */
export function appActionCheck(policy: Policy, audience: string, action: string): AppPolicy {
  const app = appForAudience(policy, audience);
  if (app === undefined)
    throw new BatonError('AUDIENCE_UNKNOWN', `No app of the policy has the audience "${audience}"`);
  if (!app.actions.includes(action)) {
    throw new BatonError('ACTION_NOT_FOR_AUDIENCE', `The app "${app.name}" does not declare the action "${action}"`);
  }
  return app;
}

/** A step-up decision with its RFC 9470 parameters, as a refused exchange carries it in `error.decision`. */
export function stepUpDetails(decision: Extract<Decision, { outcome: 'step-up' }>): StepUpDetails {
  return {
    ...decision,
    acr_values: LEVEL_PROFILES[decision.level].acr,
    max_age: decision.maxAgeSeconds,
  };
}

export interface TokenExchangeDeps {
  store: Store;
  events: EventLog;
  policies: PolicyService;
  sessions: SessionService;
  /** The assurance tokens' issuer: it verifies the subject token. */
  assurance: TokenIssuer;
  issuer: ActionTokenIssuer;
  clock: () => number;
}

/**
 * Codes whose refusal an event already recorded (the evaluator's decision); `breakGlass`: the session is
 * break-glass (known once its subject is read), so its refusal carries the mark too; `stale`: this
 * node's stale mark (`stale-node`, best-effort channels), taken before any work, which every refusal
 * after it carries too.
 */
type Refusal = { code: ErrorCode; recorded: boolean; breakGlass?: boolean; stale?: StaleMark };

/**
 * RFC 8693 token exchange for the operator in front of a console: the session's assurance token in,
 * an action token for one app and one action out, after the same re-checks a step-up makes (the
 * session live and active on this console, its operator and passkey not revoked or suspended, this
 * node fresh enough for a strict channel) and the policy's decision on the action. Every issuance
 * and every refusal is an event (`action-token-issued`, `action-token-refused`).
 */
export class TokenExchange {
  private readonly journal: IssuanceJournal;
  private readonly subjects: SubjectTokenVerifier;
  private readonly subjectRows: ExchangeSubjectReader;
  private breakGlass: BreakGlassCap | undefined;

  constructor(private readonly deps: TokenExchangeDeps) {
    this.journal = new IssuanceJournal(deps.events);
    this.subjects = new SubjectTokenVerifier(deps.assurance, deps.clock);
    this.subjectRows = new ExchangeSubjectReader(deps.store);
  }

  /** Break-glass sessions get tokens only for the actions the policy's `breakGlass.actions` lists, marked `break_glass`. */
  useBreakGlass(cap: BreakGlassCap): void {
    this.breakGlass = cap;
  }

  async exchange(console: ConsoleRecord, request: TokenExchangeRequest): Promise<TokenExchangeResponse> {
    const action = request.scope ?? request.action ?? '';
    const refusal: Refusal = { code: 'INTERNAL', recorded: false };
    let session: SessionRecord | undefined;
    try {
      const issued = await this.decideAndIssue(console, request, action, refusal, (s) => (session = s));
      return tokenExchangeResponse(issued, action);
    } catch (error) {
      if (error instanceof BatonError && !refusal.recorded) {
        await this.recordRefusal(
          console,
          session,
          request.audience,
          action,
          error.code,
          'failure',
          [
            error.code.toLowerCase().replaceAll('_', '-'),
            ...(refusal.stale?.reasons ?? []),
            ...(refusal.breakGlass === true ? [BREAK_GLASS_REASON] : []),
          ],
          refusal.stale,
        );
      }
      throw error;
    }
  }

  private async decideAndIssue(
    console: ConsoleRecord,
    request: TokenExchangeRequest,
    action: string,
    refusal: Refusal,
    seen: (session: SessionRecord) => void,
  ): Promise<IssuedActionToken> {
    const { policies, sessions, issuer, clock } = this.deps;
    if (request.grant_type !== TOKEN_EXCHANGE_GRANT) {
      throw new BatonError('TOKEN_EXCHANGE_UNSUPPORTED', `grant_type must be "${TOKEN_EXCHANGE_GRANT}"`);
    }
    if (request.subject_token_type !== ACCESS_TOKEN_TYPE && request.subject_token_type !== JWT_TOKEN_TYPE) {
      throw new BatonError(
        'TOKEN_EXCHANGE_UNSUPPORTED',
        `subject_token_type must be "${ACCESS_TOKEN_TYPE}" (the session's assurance token)`,
      );
    }
    const requested = request.requested_token_type;
    if (requested !== undefined && requested !== ACCESS_TOKEN_TYPE && requested !== JWT_TOKEN_TYPE) {
      throw new BatonError('TOKEN_EXCHANGE_UNSUPPORTED', `Baton issues "${ACCESS_TOKEN_TYPE}" tokens only`);
    }
    // Before anything is signed: a strict channel on a stale node is refused (NODE_STALE), a
    // best-effort one proceeds on the last known state and its decision and events say `stale-node`.
    const stale = sessions.staleCheck(console.channel);
    refusal.stale = stale;
    const policyVersion = policies.version;
    const policy = policyVersion.policy;
    const app = appActionCheck(policy, request.audience, action);

    let subject;
    try {
      subject = await this.subjects.verify(request.subject_token);
    } catch (cause) {
      throw new BatonError('SUBJECT_TOKEN_INVALID', 'The subject_token is not a valid assurance token', { cause });
    }
    if (subject.cnf.jkt !== console.jkt || subject.baton.console !== console.id) {
      throw new BatonError('SUBJECT_TOKEN_INVALID', 'The subject_token was issued to another console');
    }
    // The session, its operator and passkey as the store has them now (a step-up since the token was
    // issued counts; a revocation too): one statement (exchange-subject.ts). Any case but a live,
    // active session of this console goes through SessionService, for its refusals and the expiry it records.
    const read = await this.subjectRows.read(subject.sid, this.breakGlass !== undefined);
    const fast =
      typeof read === 'object' &&
      read.session.consoleId === console.id &&
      read.session.state === 'active' &&
      clock() < read.session.expiresAt
        ? read
        : undefined;
    const session = fast?.session ?? (await sessions.liveSession(console, subject.sid, 'active'));
    seen(session);
    if (session.operatorId !== subject.sub) {
      throw new BatonError('SUBJECT_TOKEN_INVALID', 'The subject_token names another operator than its session');
    }
    // A break-glass session rests on its grant, not on a passkey (no key to step up with either): it may
    // do only the policy's break-glass actions.
    let breakGlass: boolean;
    if (fast !== undefined) {
      breakGlass = fast.breakGlass;
      refusal.breakGlass = breakGlass;
      assertUsable(fast.operator, fast.credential, breakGlass);
    } else {
      breakGlass = this.breakGlass !== undefined && (await this.breakGlass.grantForSession(session.id)) !== undefined;
      refusal.breakGlass = breakGlass;
      await this.assertUsableRead(session, breakGlass);
    }
    if (breakGlass && this.breakGlass?.allows(policy, action) !== true) {
      refusal.recorded = true;
      await this.recordRefusal(
        console,
        session,
        app.audience,
        action,
        'ACTION_DENIED',
        'deny',
        [...stale.reasons, BREAK_GLASS_REASON],
        stale,
      );
      throw new BatonError('ACTION_DENIED', `A break-glass session may not do "${action}"`, {
        extra: { decision: { outcome: 'deny', reasons: ['break-glass'] } },
      });
    }

    // Every event of a break-glass session carries its mark (the refusals above and in exchange() too).
    const marked = (reasons: readonly string[]): string[] =>
      breakGlass ? [...reasons, BREAK_GLASS_REASON] : [...reasons];
    const now = clock();
    const decision = withStaleMark(
      evaluatePolicy(
        policy,
        {
          channel: console.channel,
          level: session.level,
          authTime: session.authTime,
          now,
          sessionStartedAt: session.startedAt,
        },
        action,
      ),
      stale,
    );
    if (decision.outcome !== 'allow') {
      const code = decision.outcome === 'step-up' ? 'ACTION_STEP_UP_REQUIRED' : 'ACTION_DENIED';
      refusal.recorded = true;
      await this.recordRefusal(
        console,
        session,
        app.audience,
        action,
        code,
        decision.outcome,
        marked(decision.reasons),
        stale,
      );
      if (decision.outcome === 'step-up') {
        throw new BatonError(
          'ACTION_STEP_UP_REQUIRED',
          `"${action}" needs a "${decision.level}" authentication within ${decision.maxAgeSeconds} s: step up, then ask again`,
          { extra: { decision: stepUpDetails(decision) } },
        );
      }
      throw new BatonError('ACTION_DENIED', `The policy denies "${action}" here`, { extra: { decision } });
    }

    // Never past the session's own end, nor the app's (policy-capped) lifetime.
    const appTtl = app.tokenTtlSeconds ?? DEFAULT_ACTION_TOKEN_TTL_SECONDS;
    const ttlSeconds = Math.min(appTtl, Math.floor((session.expiresAt - now) / 1000));
    if (ttlSeconds < 1) throw new BatonError('SESSION_NOT_ACTIVE', `Session "${session.id}" ends now`);
    const issued = await issuer.sign({
      subject: session.operatorId,
      audience: app.audience,
      action,
      ttlSeconds,
      channel: console.channel,
      policyVersion: policyVersion.version,
      sessionId: session.id,
      level: session.level,
      authTime: session.authTime,
      consoleId: console.id,
      ...(breakGlass ? { extra: { break_glass: true } } : {}),
    });
    refusal.recorded = true; // from here on a failure is no refusal of the policy's
    await this.journal.record({
      type: 'action-token-issued',
      // Members in code-unit order: the event's canonical JSON then need not sort them.
      subject: { console: console.id, operator: session.operatorId, session: session.id },
      assurance: assuranceContext(session.level, session.authTime),
      outcome: 'success',
      reasons: marked(decision.reasons),
      detail: {
        action,
        audience: app.audience,
        expiresAt: issued.expiresAt,
        jti: issued.jti,
        policyVersion: policyVersion.version,
        ...stale.detail,
      },
    });
    return issued;
  }

  /** The operator and the passkey the session rests on, read through the repositories (a store that is not Kysely's). */
  private async assertUsableRead(session: SessionRecord, breakGlass: boolean): Promise<void> {
    const { store } = this.deps;
    const [operator, credential] = await Promise.all([
      store.operators.get(session.operatorId),
      breakGlass ? undefined : store.operators.getCredential(session.credentialId),
    ]);
    assertUsable(operator, credential, breakGlass);
  }

  private async recordRefusal(
    console: ConsoleRecord,
    session: SessionRecord | undefined,
    audience: string,
    action: string,
    code: ErrorCode,
    outcome: 'deny' | 'step-up' | 'failure',
    reasons: readonly string[],
    stale: StaleMark = { reasons: [], detail: {} },
  ): Promise<void> {
    const draft: EventDraft = {
      type: 'action-token-refused',
      subject:
        session === undefined
          ? { console: console.id }
          : { operator: session.operatorId, console: console.id, session: session.id },
      ...(session === undefined ? {} : { assurance: assuranceContext(session.level, session.authTime) }),
      outcome,
      reasons: reasons.slice(0, 16).map((r) => r.slice(0, 64)),
      detail: {
        action: action.slice(0, 200),
        audience: audience.slice(0, 200),
        code,
        policyVersion: this.deps.policies.version.version,
        ...stale.detail,
      },
    };
    await this.journal.record(draft);
  }
}
