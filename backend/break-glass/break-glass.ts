import type { AuthenticationResponseJSON, PublicKeyCredentialRequestOptionsJSON } from '@simplewebauthn/server';
import { randomBytes } from 'node:crypto';
import { BatonError, type ErrorCode } from '../../shared/errors.js';
import { effectiveMaxSessionSeconds } from '../../shared/evaluate-policy.js';
import type { BreakGlassPolicy, Policy } from '../../shared/policy.js';
import { newEnrolmentCode, newId, normaliseEnrolmentCode, sha256Hex } from '../crypto/secrets.js';
import {
  MAX_FAILED_ATTEMPTS,
  SUSPENDED_MESSAGE,
  recordAssertionRefusal,
  verifyStoredCredential,
} from '../services/assertion-gate.js';
import type { AssertionGate } from '../services/assertion-gate.js';
import { assuranceContext, sessionView } from '../services/assurance.js';
import type { CeremonyContext } from '../services/ceremony-context.js';
import { readClientData } from '../services/webauthn-ceremonies.js';
import type { EventLog, UnitOfWork } from '../services/event-log.js';
import type { SessionService } from '../services/session-service.js';
import { kyselyOf } from '../store/kysely-store.js';
import { changed, num, optNum, optStr, str, type Row } from '../store/kysely-schema.js';
import type { ConsoleRecord, CredentialRecord, OperatorRecord, SessionRecord, Store } from '../store/repositories.js';

/** An admin-issued code lives this long unless the policy says otherwise. */
export const DEFAULT_BREAK_GLASS_CODE_TTL_SECONDS = 15 * 60;
const DAY_MS = 24 * 3600 * 1000;
/** The reason every event of a break-glass session carries. */
export const BREAK_GLASS_REASON = 'break-glass';
/** The store's ephemeral namespace of pending supervisor requests (one per console and request id). */
const REQUEST_KIND = 'break-glass-request';
/** Pending requests one console may hold; a new one beyond this drops its oldest. */
const MAX_REQUESTS_PER_CONSOLE = 4;

/** Refusals already recorded in their own unit of work (a refused tap, with its lockout count). */
const recorded = new WeakSet<BatonError>();

export type BreakGlassMethod = 'admin-code' | 'supervisor-tap';

/** The result of a redemption or an approval: the capped session, its console token, and its break-glass terms. */
export interface BreakGlassStart {
  session: ReturnType<typeof sessionView>;
  token: string;
  tokenExpiresAt: number;
  breakGlass: {
    grantId: string;
    actions: string[];
    expiresAt: number;
    method: BreakGlassMethod;
    approvedBy: string;
    /**
     * The approving supervisor's display name (supervisor taps only): the console shows it as the
     * teller knows them, with no directory lookup it could not do offline. `approvedBy` keeps the id.
     */
    approverName?: string;
  };
}

export interface BreakGlassGrant {
  id: string;
  operatorId: string;
  consoleId: string;
  site: string | null;
  method: BreakGlassMethod;
  approvedBy: string;
  reason: string;
  issuedAt: number;
  expiresAt: number;
  usedAt: number | null;
  sessionId: string | null;
  signedOffAt: number | null;
  signedOffBy: string | null;
  signOffNote: string | null;
}

export function grantFrom(row: Row): BreakGlassGrant {
  return {
    id: str(row, 'id'),
    operatorId: str(row, 'operator_id'),
    consoleId: str(row, 'console_id'),
    site: optStr(row, 'site'),
    method: str(row, 'method') === 'supervisor-tap' ? 'supervisor-tap' : 'admin-code',
    approvedBy: str(row, 'approved_by'),
    reason: str(row, 'reason'),
    issuedAt: num(row, 'issued_at'),
    expiresAt: num(row, 'expires_at'),
    usedAt: optNum(row, 'used_at'),
    sessionId: optStr(row, 'session_id'),
    signedOffAt: optNum(row, 'signed_off_at'),
    signedOffBy: optStr(row, 'signed_off_by'),
    signOffNote: optStr(row, 'sign_off_note'),
  };
}

function db(store: Store) {
  const handle = kyselyOf(store);
  if (handle === undefined) throw new Error('break-glass needs a Kysely store');
  return handle;
}

/**
 * Refuses a new grant past the policy's limits: per operator and per site (the console's), in any 24 hours.
 *
 * **limitsSerialised.** A count then an insert: at PostgreSQL's READ COMMITTED two units would both
 * count N-1 and both insert. Every unit that grants therefore records its `break-glass-granted` event
 * *before* calling this: that first `record` takes the backend's event-chain head (lock order 6 in
 * store/repositories.ts), so granting units run one at a time from there, and each one's count (a new
 * snapshot per statement) sees every grant committed before it. What the units take after the head is
 * only the new grant row (and, at a tap, the sessions it had already locked), so the lock order holds.
 * A refusal rolls the event back with the unit. SQLite: BEGIN IMMEDIATE serialises writers anyway.
 */
async function assertWithinLimits(
  k: ReturnType<typeof db>,
  rules: BreakGlassPolicy,
  operatorId: string,
  site: string | null,
  now: number,
): Promise<void> {
  const since = now - DAY_MS;
  const forOperator = await k
    .selectFrom('break_glass_grants')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('operator_id', '=', operatorId)
    .where('issued_at', '>', since)
    .executeTakeFirst();
  if (Number(forOperator?.n ?? 0) >= rules.maxPerOperatorPerDay) {
    throw new BatonError(
      'BREAK_GLASS_LIMIT_REACHED',
      `This operator already had ${rules.maxPerOperatorPerDay} break-glass grant(s) in the last 24 hours (policy breakGlass.maxPerOperatorPerDay)`,
      { extra: { limit: 'maxPerOperatorPerDay' } },
    );
  }
  if (site !== null) {
    const forSite = await k
      .selectFrom('break_glass_grants')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('site', '=', site)
      .where('issued_at', '>', since)
      .executeTakeFirst();
    if (Number(forSite?.n ?? 0) >= rules.maxPerSitePerDay) {
      throw new BatonError(
        'BREAK_GLASS_LIMIT_REACHED',
        `The site "${site}" already had ${rules.maxPerSitePerDay} break-glass grant(s) in the last 24 hours (policy breakGlass.maxPerSitePerDay)`,
        { extra: { limit: 'maxPerSitePerDay' } },
      );
    }
  }
}

/**
 * A code an admin signed off before it was redeemed is closed: the review happened, so no session may
 * start after it (it would never be listed for review). Refused with the sign-off's own code.
 */
function signedOffUnused(): BatonError {
  return new BatonError(
    'BREAK_GLASS_ALREADY_SIGNED_OFF',
    'This code was signed off by an admin before it was used, which closed it: ask IT for a new one',
  );
}

/** Whether the session was started by a break-glass grant (one indexed read). */
export async function isBreakGlassSession(store: Store, sessionId: string): Promise<boolean> {
  const row = await db(store)
    .selectFrom('break_glass_grants')
    .select('id')
    .where('session_id', '=', sessionId)
    .executeTakeFirst();
  return row !== undefined;
}

/** A grant's id (newId('bg')): a break-glass session's `credentialId` is its grant's, a passkey's never has this shape in practice. */
const GRANT_ID = /^bg_[0-9a-f]{32}$/;

/**
 * `[BREAK_GLASS_REASON]` for an event about a break-glass session, else `[]`. Only a session whose
 * `credentialId` has a grant's shape costs the indexed read that confirms it: a passkey's session
 * (every normal sign-in, lock, end and expiry) reads nothing more.
 */
export async function breakGlassMark(
  store: Store,
  session: Pick<SessionRecord, 'id' | 'credentialId'>,
): Promise<string[]> {
  if (!GRANT_ID.test(session.credentialId)) return [];
  return (await isBreakGlassSession(store, session.id)) ? [BREAK_GLASS_REASON] : [];
}

/** Whether a break-glass session may perform `action` under `policy` (only the actions its section lists). */
export function breakGlassAllows(policy: Policy, action: string): boolean {
  return policy.breakGlass?.actions.includes(action) ?? false;
}

/**
 * Break-glass, backend side (issue 14 item 7): an admin issues a one-time temporary access code bound
 * to an operator and a console; the console redeems it for a session capped by the policy's
 * `breakGlass` section (level `presence`, a short lifetime), marked in every event it produces and
 * listed for review until an admin signs it off. Grants per operator and per site in any 24 hours
 * are limited by policy. Step-up options deny every action outside `breakGlass.actions`
 * (step-up-service.ts, `isBreakGlassSession`). Not built yet: the supervisor's tap on the console (the
 * other approval path), and the same cap at the action-token exchange (`breakGlassAllows`).
 */
export class BreakGlass {
  constructor(
    private readonly deps: {
      store: Store;
      events: EventLog;
      sessions: SessionService;
      clock: () => number;
      policy: () => { version: number; policy: Policy };
      /** The WebAuthn side of the supervisor's tap (absent: only admin codes). */
      tap?: { ctx: CeremonyContext; gate: AssertionGate };
    },
  ) {}

  private rules(): BreakGlassPolicy {
    const rules = this.deps.policy().policy.breakGlass;
    if (rules === undefined) throw new BatonError('BREAK_GLASS_DISABLED', 'The policy allows no break-glass access');
    return rules;
  }

  /** An admin issues a one-time code bound to the operator and the console, within the policy's limits. */
  async issueCode(
    input: { operatorId: string; consoleId: string; reason: string },
    actor: string,
  ): Promise<{ grantId: string; code: string; expiresAt: number }> {
    const rules = this.rules();
    const now = this.deps.clock();
    const code = newEnrolmentCode();
    const grant = {
      id: newId('bg'),
      operator_id: input.operatorId,
      console_id: input.consoleId,
      site: null as string | null,
      method: 'admin-code',
      approved_by: actor,
      reason: input.reason,
      code_hash: sha256Hex(code),
      issued_at: now,
      expires_at: now + (rules.codeTtlSeconds ?? DEFAULT_BREAK_GLASS_CODE_TTL_SECONDS) * 1000,
      used_at: null,
      session_id: null,
      signed_off_at: null,
      signed_off_by: null,
      sign_off_note: null,
    };
    await this.deps.events.atomically(async (uow) => {
      const operator = await uow.store.operators.get(input.operatorId);
      if (operator === undefined) throw new BatonError('OPERATOR_UNKNOWN', `No operator "${input.operatorId}"`);
      if (operator.revokedAt !== null) throw new BatonError('OPERATOR_REVOKED', 'This operator has been revoked');
      const console = await uow.store.consoles.get(input.consoleId);
      if (console === undefined) throw new BatonError('NOT_FOUND', `No console "${input.consoleId}"`);
      if (console.revokedAt !== null) throw new BatonError('CONSOLE_REVOKED', 'This console has been revoked');
      grant.site = console.site;
      // The event first: its `record` takes the backend's event-chain head, which serialises this
      // count-then-insert against every other grant's (limitsSerialised). Refused, it rolls back.
      await uow.record({
        type: 'break-glass-granted',
        subject: { operator: input.operatorId, console: input.consoleId },
        outcome: 'success',
        reasons: [BREAK_GLASS_REASON, 'admin-code'],
        detail: { actor, grant: grant.id, reason_admin: input.reason, expiresAt: grant.expires_at, site: console.site },
      });
      const k = db(uow.store);
      await assertWithinLimits(k, rules, input.operatorId, console.site, now);
      await k.insertInto('break_glass_grants').values(grant).execute();
    });
    return { grantId: grant.id, code, expiresAt: grant.expires_at };
  }

  /**
   * The console redeems the code for the operator in front of it: a new session at `presence`, living
   * at most `breakGlass.lifetimeSeconds`; the other active sessions on the console are suspended.
   */
  async redeem(console: ConsoleRecord, input: { operatorId: string; code: string }): Promise<BreakGlassStart> {
    const rules = this.rules();
    const now = this.deps.clock();
    const hash = sha256Hex(normaliseEnrolmentCode(input.code));
    try {
      const row = await db(this.deps.store)
        .selectFrom('break_glass_grants')
        .selectAll()
        .where('code_hash', '=', hash)
        .executeTakeFirst();
      const grant = row === undefined ? undefined : grantFrom(row);
      if (grant === undefined || grant.operatorId !== input.operatorId || grant.consoleId !== console.id) {
        throw new BatonError(
          'BREAK_GLASS_CODE_INVALID',
          'This code is not one issued for this operator on this console',
        );
      }
      if (grant.usedAt !== null) throw new BatonError('BREAK_GLASS_CODE_USED', 'This code was already used');
      // Signed off before it was used: the review closed it (signOff), it never starts a session.
      if (grant.signedOffAt !== null) throw signedOffUnused();
      if (grant.expiresAt <= now) throw new BatonError('BREAK_GLASS_CODE_EXPIRED', 'This code has expired');
      const lifetime = this.lifetime(rules, console);
      const { session, operatorName } = await this.deps.events.atomically(async (uow) => {
        const operator = await uow.store.operators.get(grant.operatorId);
        if (operator === undefined || operator.revokedAt !== null) {
          throw new BatonError('OPERATOR_REVOKED', 'This operator has been revoked');
        }
        const live = await uow.store.sessions.liveOnConsole(console.id, { forUpdate: true });
        const used = await db(uow.store)
          .updateTable('break_glass_grants')
          .set({ used_at: now })
          .where('id', '=', grant.id)
          .where('used_at', 'is', null)
          .where('signed_off_at', 'is', null)
          .executeTakeFirst();
        if (changed(used) !== 1) {
          // A sign-off committed meanwhile (it locked the row first) closed it; else another redemption won.
          const current = await db(uow.store)
            .selectFrom('break_glass_grants')
            .select(['used_at', 'signed_off_at'])
            .where('id', '=', grant.id)
            .executeTakeFirst();
          if (current?.used_at === null && current.signed_off_at !== null) throw signedOffUnused();
          throw new BatonError('BREAK_GLASS_CODE_USED', 'This code was already used');
        }
        return this.startSession(uow, console, live, grant, operator, rules, lifetime, now);
      });
      return await this.started(session, operatorName, console, grant, rules);
    } catch (error) {
      if (error instanceof BatonError) await this.recordRefusal(console, input.operatorId, error);
      throw error;
    }
  }

  /** The supervisor path's rules: break-glass on, and at least one role that may approve. */
  private tapRules(): {
    rules: BreakGlassPolicy;
    approverRoles: string[];
    tap: NonNullable<BreakGlass['deps']['tap']>;
  } {
    const rules = this.rules();
    const approverRoles = rules.approverRoles ?? [];
    const tap = this.deps.tap;
    if (approverRoles.length === 0 || tap === undefined) {
      throw new BatonError(
        'BREAK_GLASS_DISABLED',
        'The policy names no supervisor role (breakGlass.approverRoles): ask IT for a temporary access code',
      );
    }
    return { rules, approverRoles, tap };
  }

  /**
   * The console asks for a supervisor's approval for the operator in front of it (who typed their
   * operator id): a pending request bound to this console, and the WebAuthn options for the tap
   * (any supervisor's discoverable key, user verification required). Whether the operator exists is
   * not told to whoever stands at the screen (the approving supervisor learns it); the limits are
   * checked now (and again at the approval), so nobody fetches a supervisor for a refused request.
   */
  async request(
    console: ConsoleRecord,
    input: { operatorId: string },
  ): Promise<{
    requestId: string;
    operatorId: string;
    options: PublicKeyCredentialRequestOptionsJSON;
    expiresAt: number;
  }> {
    try {
      const { rules, tap } = this.tapRules();
      const now = this.deps.clock();
      const operator = await this.deps.store.operators.get(input.operatorId);
      if (operator !== undefined) await assertWithinLimits(db(this.deps.store), rules, operator.id, console.site, now);
      const requestId = newId('bgr');
      const challenge = randomBytes(16).toString('base64url');
      const expiresAt = now + tap.ctx.ceremonies.rp.timeoutMs;
      await this.deps.store.ephemeral.put(
        {
          kind: REQUEST_KIND,
          key: `${console.id}:${requestId}`,
          owner: console.id,
          value: JSON.stringify({ operatorId: input.operatorId, challenge, requestedAt: now }),
          expiresAt,
        },
        MAX_REQUESTS_PER_CONSOLE,
      );
      const options = await tap.ctx.ceremonies.authenticationOptions({ challenge, userVerification: 'required' });
      await this.deps.events.record({
        type: 'break-glass-requested',
        subject: { console: console.id, operator: input.operatorId },
        outcome: 'info',
        reasons: [BREAK_GLASS_REASON, 'supervisor-tap'],
        detail: { request: requestId, site: console.site },
      });
      return { requestId, operatorId: input.operatorId, options, expiresAt };
    } catch (error) {
      if (error instanceof BatonError) await this.recordRefusal(console, input.operatorId, error);
      throw error;
    }
  }

  /**
   * A supervisor taps their own key on the same console: the assertion over the request's challenge
   * is verified (user verification required; the request is consumed first, so a replayed assertion
   * finds nothing), the key's operator must be a live, unlocked supervisor (a role in
   * `breakGlass.approverRoles`) other than the operator asking; then, in one unit of work, the limits
   * are checked again, the grant is stored (method `supervisor-tap`, approved by
   * `operator:<supervisor>`) and used at once, and the capped session starts.
   */
  async approve(
    console: ConsoleRecord,
    requestId: string,
    response: AuthenticationResponseJSON,
  ): Promise<BreakGlassStart> {
    let operatorId: string | undefined;
    let supervisorId: string | undefined;
    try {
      const { rules, approverRoles, tap } = this.tapRules();
      const entry = await this.deps.store.ephemeral.take(REQUEST_KIND, `${console.id}:${requestId}`);
      if (entry === undefined || entry.owner !== console.id) {
        throw new BatonError(
          'CHALLENGE_UNKNOWN',
          'No pending break-glass request of this console has this id (or it was already answered)',
        );
      }
      const pending = JSON.parse(entry.value) as { operatorId: string; challenge: string };
      operatorId = pending.operatorId;
      if (entry.expiresAt <= this.deps.clock()) {
        throw new BatonError('CHALLENGE_EXPIRED', 'The break-glass request expired before a supervisor tapped');
      }
      if (readClientData(response.response.clientDataJSON).challenge !== pending.challenge) {
        throw new BatonError('CHALLENGE_UNKNOWN', "The tap answers another challenge than this request's");
      }
      const { credential, supervisor } = await this.supervisorCredential(tap.ctx, response.id);
      supervisorId = supervisor.id;
      const info = await verifyStoredCredential(
        tap.ctx,
        {
          response,
          challenge: pending.challenge,
          credential,
          operatorId: supervisor.id,
          requireUv: true,
          consoleId: console.id,
          onCounterRegression: this.deps.policy().policy.credentials.onCounterRegression,
        },
        (uow, code) => this.refusalIn(uow, console, pending.operatorId, code, supervisor.id),
      ).catch((error: unknown) => {
        // Recorded (with the lockout count) in the refusal's own unit of work.
        if (error instanceof BatonError) recorded.add(error);
        throw error;
      });
      if (response.response.userHandle !== undefined && response.response.userHandle !== supervisor.webauthnUserId) {
        throw new BatonError('WEBAUTHN_VERIFICATION_FAILED', 'The user handle does not belong to this credential');
      }
      if (supervisor.id === pending.operatorId) {
        throw new BatonError('BREAK_GLASS_SELF_APPROVAL', 'A supervisor cannot approve their own break-glass access');
      }
      if (!supervisor.roles.some((role) => approverRoles.includes(role))) {
        throw new BatonError(
          'BREAK_GLASS_NOT_APPROVER',
          "This key is not a supervisor's: its operator has no role that may approve break-glass access",
        );
      }
      const now = this.deps.clock();
      const lifetime = this.lifetime(rules, console);
      const grant = {
        id: newId('bg'),
        operator_id: pending.operatorId,
        console_id: console.id,
        site: console.site,
        method: 'supervisor-tap',
        approved_by: `operator:${supervisor.id}`,
        reason: `approved at the console by supervisor ${supervisor.id}`,
        code_hash: null,
        issued_at: now,
        expires_at: now,
        used_at: now,
        session_id: null,
        signed_off_at: null,
        signed_off_by: null,
        sign_off_note: null,
      };
      const marked = {
        id: grant.id,
        operatorId: grant.operator_id,
        approvedBy: grant.approved_by,
        approverName: supervisor.displayName,
        method: 'supervisor-tap' as const,
      };
      const { session, operatorName } = await this.withCounterCheck(
        tap,
        console,
        credential,
        supervisor.id,
        pending.operatorId,
        () =>
          this.deps.events.atomically(async (uow) => {
            // The supervisor's key use first (its counter, in the lock order), then the re-check: a
            // revocation of the supervisor, their key or the console committed meanwhile refuses.
            await tap.gate.recordUseAndRecheck(uow.store, credential, info.newCounter, supervisor.id, console.id);
            const operator = await uow.store.operators.get(pending.operatorId);
            if (operator === undefined) throw new BatonError('OPERATOR_UNKNOWN', `No operator "${pending.operatorId}"`);
            if (operator.revokedAt !== null) throw new BatonError('OPERATOR_REVOKED', 'This operator has been revoked');
            const live = await uow.store.sessions.liveOnConsole(console.id, { forUpdate: true });
            // The event before the count, as in issueCode: the backend head serialises the limits.
            await uow.record({
              type: 'break-glass-granted',
              subject: { operator: operator.id, console: console.id },
              outcome: 'success',
              reasons: [BREAK_GLASS_REASON, 'supervisor-tap'],
              detail: {
                actor: grant.approved_by,
                method: 'supervisor-tap',
                grant: grant.id,
                supervisor: supervisor.id,
                credential: credential.id,
                request: requestId,
                site: console.site,
              },
            });
            const k = db(uow.store);
            await assertWithinLimits(k, rules, operator.id, console.site, now);
            await k.insertInto('break_glass_grants').values(grant).execute();
            return this.startSession(uow, console, live, marked, operator, rules, lifetime, now);
          }),
      );
      return await this.started(session, operatorName, console, marked, rules);
    } catch (error) {
      if (error instanceof BatonError && !recorded.has(error)) {
        await this.recordRefusal(console, operatorId ?? '', error, supervisorId);
      }
      throw error;
    }
  }

  /** The tapped key and its operator, refused as at a sign-in when unusable (revoked, suspended, locked, model). */
  private async supervisorCredential(
    ctx: CeremonyContext,
    credentialId: string,
  ): Promise<{ credential: CredentialRecord; supervisor: OperatorRecord }> {
    const found = await ctx.store.operators.getCredentialWithOperator(credentialId);
    if (found === undefined) throw new BatonError('CREDENTIAL_UNKNOWN', 'No operator holds this key');
    const { credential, operator } = found;
    if (credential.revokedAt !== null) throw new BatonError('CREDENTIAL_REVOKED', 'This key has been revoked');
    if (credential.suspendedAt !== null) throw new BatonError('CREDENTIAL_SUSPENDED', SUSPENDED_MESSAGE);
    if (operator.revokedAt !== null) throw new BatonError('OPERATOR_REVOKED', 'This supervisor has been revoked');
    if (operator.failedAttempts >= MAX_FAILED_ATTEMPTS) {
      throw new BatonError('OPERATOR_LOCKED', 'Too many failed attempts: an administrator must reset this supervisor');
    }
    const rules = ctx.policies.policy.credentials;
    if (rules.deviceBoundOnly && !credential.deviceBound) {
      throw new BatonError('CREDENTIAL_NOT_DEVICE_BOUND', 'Policy allows device-bound credentials only');
    }
    const model = ctx.authenticators.signInRefusal(credential, rules);
    if (model !== undefined) throw new BatonError(model.code, model.message);
    return { credential, supervisor: operator };
  }

  /**
   * Runs the unit of work acting on the supervisor's verified tap; a counter another node advanced
   * past this assertion's meanwhile is refused as a cloned key is (recorded, the key suspended per policy).
   */
  private async withCounterCheck<T>(
    tap: NonNullable<BreakGlass['deps']['tap']>,
    console: ConsoleRecord,
    credential: CredentialRecord,
    supervisorId: string,
    operatorId: string,
    unit: () => Promise<T>,
  ): Promise<T> {
    try {
      return await unit();
    } catch (error) {
      if (error instanceof BatonError && error.code === 'WEBAUTHN_COUNTER_REGRESSED') {
        await recordAssertionRefusal(
          tap.ctx,
          {
            credential,
            operatorId: supervisorId,
            consoleId: console.id,
            onCounterRegression: tap.ctx.policies.policy.credentials.onCounterRegression,
          },
          error,
          (uow, code) => this.refusalIn(uow, console, operatorId, code, supervisorId),
        );
        recorded.add(error);
      }
      throw error;
    }
  }

  private refusalIn(
    uow: Pick<UnitOfWork, 'record'>,
    console: ConsoleRecord,
    operatorId: string,
    code: ErrorCode,
    supervisorId?: string,
  ) {
    return uow.record({
      type: 'break-glass-refused',
      subject: {
        console: console.id,
        ...(/^[A-Za-z0-9._:-]{1,128}$/.test(operatorId) ? { operator: operatorId } : {}),
      },
      outcome: 'failure',
      reasons: [BREAK_GLASS_REASON, code.toLowerCase().replace(/_/g, '-')],
      detail: { code, ...(supervisorId === undefined ? {} : { supervisor: supervisorId }) },
    });
  }

  /** A break-glass session lives the policy's lifetime, capped by the channel's own maximum at `presence`. */
  private lifetime(rules: BreakGlassPolicy, console: ConsoleRecord): number {
    const channelMax = effectiveMaxSessionSeconds(this.deps.policy().policy, console.channel, 'presence') ?? 0;
    return Math.min(rules.lifetimeSeconds, channelMax);
  }

  /**
   * In the unit of work that used the grant: suspends the console's other active sessions (as a
   * sign-in does) and starts the capped session, marked in its events with the grant and who approved.
   */
  private async startSession(
    uow: UnitOfWork,
    console: ConsoleRecord,
    live: SessionRecord[],
    grant: Pick<BreakGlassGrant, 'id' | 'operatorId' | 'approvedBy' | 'method'>,
    operator: OperatorRecord,
    rules: BreakGlassPolicy,
    lifetime: number,
    now: number,
  ): Promise<{ session: SessionRecord; operatorName: string }> {
    const tx = uow.store;
    for (const s of live) {
      if (s.state !== 'active') continue;
      await tx.sessions.update(s.id, { state: 'suspended', suspendedAt: now });
      await uow.record({
        type: 'session-suspended',
        subject: { operator: s.operatorId, console: console.id, session: s.id },
        assurance: assuranceContext(s.level, s.authTime),
        outcome: 'info',
        reasons: ['another-operator-signed-in', ...(await breakGlassMark(tx, s))],
      });
    }
    const created: SessionRecord = {
      id: newId('ses'),
      operatorId: grant.operatorId,
      consoleId: console.id,
      channel: console.channel,
      // No passkey authenticated it: the grant stands in for the credential (revoking the operator ends it).
      credentialId: grant.id,
      level: 'presence',
      authTime: now,
      startedAt: now,
      expiresAt: now + lifetime * 1000,
      state: 'active',
      suspendedAt: null,
      endedAt: null,
      endReason: null,
    };
    await tx.sessions.insert(created);
    await db(tx).updateTable('break_glass_grants').set({ session_id: created.id }).where('id', '=', grant.id).execute();
    const marked = {
      breakGlass: true,
      grant: grant.id,
      method: grant.method,
      approvedBy: grant.approvedBy,
      lifetimeSeconds: lifetime,
    };
    await uow.record({
      type: 'session-established',
      subject: { operator: grant.operatorId, console: console.id, session: created.id },
      assurance: assuranceContext('presence', now),
      outcome: 'success',
      reasons: [BREAK_GLASS_REASON],
      detail: { ...marked, channel: console.channel, policyVersion: this.deps.policy().version },
    });
    await uow.record({
      type: 'break-glass-session-started',
      subject: { operator: grant.operatorId, console: console.id, session: created.id },
      assurance: assuranceContext('presence', now),
      outcome: 'success',
      reasons: [BREAK_GLASS_REASON, grant.method],
      detail: { ...marked, actions: rules.actions.join(' ') },
    });
    return { session: created, operatorName: operator.displayName };
  }

  /** The session's console token and the answer both paths give. */
  private async started(
    session: SessionRecord,
    operatorName: string,
    console: ConsoleRecord,
    grant: Pick<BreakGlassGrant, 'id' | 'approvedBy' | 'method'> & { approverName?: string },
    rules: BreakGlassPolicy,
  ): Promise<BreakGlassStart> {
    // Marked in its console token too (`break_glass: true`), as in its events and action tokens.
    const { token, expiresAt } = await this.deps.sessions.issueToken(session, console, { breakGlass: true });
    return {
      session: sessionView(session, operatorName),
      token,
      tokenExpiresAt: expiresAt,
      breakGlass: {
        grantId: grant.id,
        actions: rules.actions,
        expiresAt: session.expiresAt,
        method: grant.method,
        approvedBy: grant.approvedBy,
        ...(grant.approverName === undefined ? {} : { approverName: grant.approverName }),
      },
    };
  }

  private async recordRefusal(
    console: ConsoleRecord,
    operatorId: string,
    error: BatonError,
    supervisorId?: string,
  ): Promise<void> {
    try {
      await this.deps.events.atomically((uow) => this.refusalIn(uow, console, operatorId, error.code, supervisorId));
    } catch {
      // The refusal stands whether or not its event could be written.
    }
  }

  /** Grants waiting for review (`pending`: not signed off yet), newest first; with `all`, every grant of 30 days. */
  async list(all: boolean): Promise<BreakGlassGrant[]> {
    let query = db(this.deps.store).selectFrom('break_glass_grants').selectAll();
    query = all
      ? query.where('issued_at', '>', this.deps.clock() - 30 * DAY_MS)
      : query.where('signed_off_at', 'is', null);
    const rows = await query.orderBy('issued_at', 'desc').orderBy('id').limit(1000).execute();
    return rows.map(grantFrom);
  }

  /** The break-glass grant behind a session, if it is one (for the action cap at exchange and step-up). */
  async grantForSession(sessionId: string): Promise<BreakGlassGrant | undefined> {
    const row = await db(this.deps.store)
      .selectFrom('break_glass_grants')
      .selectAll()
      .where('session_id', '=', sessionId)
      .executeTakeFirst();
    return row === undefined ? undefined : grantFrom(row);
  }

  /**
   * An admin reviewed the grant and its session: it leaves the review list. A code signed off before
   * it was used is closed by this: redeeming it is then refused `BREAK_GLASS_ALREADY_SIGNED_OFF` (redeem).
   * A session still running is refused `BREAK_GLASS_SESSION_ACTIVE`: a review covers all the session did,
   * so it comes after the session's end (an admin ends it first, or waits for it to end), and a grant
   * never leaves the review list while its session can still act. A session can only go from live to
   * ended; a grant can go from unused to redeemed (a session starting) while this unit runs, on another
   * node: the UPDATE therefore requires the grant's session to be the one read, and a redeem that
   * committed in between turns the sign-off into `BREAK_GLASS_SESSION_ACTIVE`.
   */
  async signOff(id: string, note: string, actor: string): Promise<BreakGlassGrant> {
    const now = this.deps.clock();
    return this.deps.events.atomically(async (uow) => {
      const k = db(uow.store);
      const row = await k.selectFrom('break_glass_grants').selectAll().where('id', '=', id).executeTakeFirst();
      if (row === undefined) throw new BatonError('NOT_FOUND', `No break-glass grant "${id}"`);
      const sessionId = optStr(row, 'session_id');
      const session =
        sessionId === null
          ? undefined
          : await k
              .selectFrom('sessions')
              .select(['state', 'expires_at'])
              .where('id', '=', sessionId)
              .executeTakeFirst();
      if (
        session !== undefined &&
        (session.state === 'active' || session.state === 'suspended') &&
        num(session, 'expires_at') > now
      ) {
        throw new BatonError(
          'BREAK_GLASS_SESSION_ACTIVE',
          `The session of this grant is still running (until ${new Date(num(session, 'expires_at')).toISOString()}): ` +
            'end it (revoke the session) or wait until it ends, then sign it off',
        );
      }
      const result = await k
        .updateTable('break_glass_grants')
        .set({ signed_off_at: now, signed_off_by: actor, sign_off_note: note })
        .where('id', '=', id)
        .where('signed_off_at', 'is', null)
        .where('session_id', sessionId === null ? 'is' : '=', sessionId)
        .executeTakeFirst();
      if (changed(result) !== 1) {
        const current = await k
          .selectFrom('break_glass_grants')
          .select(['signed_off_at'])
          .where('id', '=', id)
          .executeTakeFirst();
        if (current !== undefined && current.signed_off_at === null) {
          throw new BatonError(
            'BREAK_GLASS_SESSION_ACTIVE',
            'The grant was redeemed while it was being signed off: its session is running; sign it off once it has ended',
          );
        }
        throw new BatonError('BREAK_GLASS_ALREADY_SIGNED_OFF', 'This grant was already signed off');
      }
      const grant = grantFrom(row);
      await uow.record({
        type: 'break-glass-signed-off',
        subject: {
          operator: grant.operatorId,
          console: grant.consoleId,
          ...(grant.sessionId === null ? {} : { session: grant.sessionId }),
        },
        outcome: 'success',
        reasons: [BREAK_GLASS_REASON],
        detail: { actor, grant: id, note },
      });
      return { ...grant, signedOffAt: now, signedOffBy: actor, signOffNote: note };
    });
  }
}
