import { BatonError } from '../../shared/errors.js';
import { effectiveMaxSessionSeconds } from '../../shared/evaluate-policy.js';
import type { BreakGlassPolicy, Policy } from '../../shared/policy.js';
import { newEnrolmentCode, newId, normaliseEnrolmentCode, sha256Hex } from '../crypto/secrets.js';
import { assuranceContext, sessionView } from '../services/assurance.js';
import type { EventLog } from '../services/event-log.js';
import type { SessionService } from '../services/session-service.js';
import { kyselyOf } from '../store/kysely-store.js';
import { changed, num, optNum, optStr, str, type Row } from '../store/kysely-schema.js';
import type { ConsoleRecord, SessionRecord, Store } from '../store/repositories.js';

/** An admin-issued code lives this long unless the policy says otherwise. */
export const DEFAULT_BREAK_GLASS_CODE_TTL_SECONDS = 15 * 60;
const DAY_MS = 24 * 3600 * 1000;
/** The reason every event of a break-glass session carries. */
export const BREAK_GLASS_REASON = 'break-glass';

export interface BreakGlassGrant {
  id: string;
  operatorId: string;
  consoleId: string;
  site: string | null;
  method: 'admin-code';
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

function grantFrom(row: Row): BreakGlassGrant {
  return {
    id: str(row, 'id'),
    operatorId: str(row, 'operator_id'),
    consoleId: str(row, 'console_id'),
    site: optStr(row, 'site'),
    method: 'admin-code',
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

/** Whether the session was started by a break-glass grant (one indexed read). */
export async function isBreakGlassSession(store: Store, sessionId: string): Promise<boolean> {
  const row = await db(store)
    .selectFrom('break_glass_grants')
    .select('id')
    .where('session_id', '=', sessionId)
    .executeTakeFirst();
  return row !== undefined;
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
      const since = now - DAY_MS;
      const k = db(uow.store);
      const forOperator = await k
        .selectFrom('break_glass_grants')
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .where('operator_id', '=', input.operatorId)
        .where('issued_at', '>', since)
        .executeTakeFirst();
      if (Number(forOperator?.n ?? 0) >= rules.maxPerOperatorPerDay) {
        throw new BatonError(
          'BREAK_GLASS_LIMIT_REACHED',
          `This operator already had ${rules.maxPerOperatorPerDay} break-glass grant(s) in the last 24 hours (policy breakGlass.maxPerOperatorPerDay)`,
        );
      }
      if (console.site !== null) {
        const forSite = await k
          .selectFrom('break_glass_grants')
          .select((eb) => eb.fn.countAll<number>().as('n'))
          .where('site', '=', console.site)
          .where('issued_at', '>', since)
          .executeTakeFirst();
        if (Number(forSite?.n ?? 0) >= rules.maxPerSitePerDay) {
          throw new BatonError(
            'BREAK_GLASS_LIMIT_REACHED',
            `The site "${console.site}" already had ${rules.maxPerSitePerDay} break-glass grant(s) in the last 24 hours (policy breakGlass.maxPerSitePerDay)`,
          );
        }
      }
      await k.insertInto('break_glass_grants').values(grant).execute();
      await uow.record({
        type: 'break-glass-granted',
        subject: { operator: input.operatorId, console: input.consoleId },
        outcome: 'success',
        reasons: [BREAK_GLASS_REASON, 'admin-code'],
        detail: { actor, grant: grant.id, reason_admin: input.reason, expiresAt: grant.expires_at, site: console.site },
      });
    });
    return { grantId: grant.id, code, expiresAt: grant.expires_at };
  }

  /**
   * The console redeems the code for the operator in front of it: a new session at `presence`, living
   * at most `breakGlass.lifetimeSeconds`; the other active sessions on the console are suspended.
   */
  async redeem(console: ConsoleRecord, input: { operatorId: string; code: string }) {
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
      if (grant.expiresAt <= now) throw new BatonError('BREAK_GLASS_CODE_EXPIRED', 'This code has expired');
      const policy = this.deps.policy().policy;
      const channelMax = effectiveMaxSessionSeconds(policy, console.channel, 'presence') ?? 0;
      const lifetime = Math.min(rules.lifetimeSeconds, channelMax);
      const { session, operatorName } = await this.deps.events.atomically(async (uow) => {
        const tx = uow.store;
        const operator = await tx.operators.get(grant.operatorId);
        if (operator === undefined || operator.revokedAt !== null) {
          throw new BatonError('OPERATOR_REVOKED', 'This operator has been revoked');
        }
        const live = await tx.sessions.liveOnConsole(console.id, { forUpdate: true });
        const used = await db(tx)
          .updateTable('break_glass_grants')
          .set({ used_at: now })
          .where('id', '=', grant.id)
          .where('used_at', 'is', null)
          .executeTakeFirst();
        if (changed(used) !== 1) throw new BatonError('BREAK_GLASS_CODE_USED', 'This code was already used');
        for (const s of live) {
          if (s.state !== 'active') continue;
          await tx.sessions.update(s.id, { state: 'suspended', suspendedAt: now });
          await uow.record({
            type: 'session-suspended',
            subject: { operator: s.operatorId, console: console.id, session: s.id },
            assurance: assuranceContext(s.level, s.authTime),
            outcome: 'info',
            reasons: ['another-operator-signed-in'],
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
        await db(tx)
          .updateTable('break_glass_grants')
          .set({ session_id: created.id })
          .where('id', '=', grant.id)
          .execute();
        const marked = { breakGlass: true, grant: grant.id, approvedBy: grant.approvedBy, lifetimeSeconds: lifetime };
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
          reasons: [BREAK_GLASS_REASON, 'admin-code'],
          detail: { ...marked, actions: rules.actions.join(' ') },
        });
        return { session: created, operatorName: operator.displayName };
      });
      const { token, expiresAt } = await this.deps.sessions.issueToken(session, console);
      return {
        session: sessionView(session, operatorName),
        token,
        tokenExpiresAt: expiresAt,
        breakGlass: { grantId: grant.id, actions: rules.actions, expiresAt: session.expiresAt },
      };
    } catch (error) {
      if (error instanceof BatonError) await this.recordRefusal(console, input.operatorId, error);
      throw error;
    }
  }

  private async recordRefusal(console: ConsoleRecord, operatorId: string, error: BatonError): Promise<void> {
    try {
      await this.deps.events.atomically((uow) =>
        uow.record({
          type: 'break-glass-refused',
          subject: {
            console: console.id,
            ...(/^[A-Za-z0-9._:-]{1,128}$/.test(operatorId) ? { operator: operatorId } : {}),
          },
          outcome: 'failure',
          reasons: [BREAK_GLASS_REASON, error.code.toLowerCase().replace(/_/g, '-')],
          detail: { code: error.code },
        }),
      );
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

  /** An admin reviewed the grant and its session: it leaves the review list. */
  async signOff(id: string, note: string, actor: string): Promise<BreakGlassGrant> {
    const now = this.deps.clock();
    return this.deps.events.atomically(async (uow) => {
      const k = db(uow.store);
      const row = await k.selectFrom('break_glass_grants').selectAll().where('id', '=', id).executeTakeFirst();
      if (row === undefined) throw new BatonError('NOT_FOUND', `No break-glass grant "${id}"`);
      const result = await k
        .updateTable('break_glass_grants')
        .set({ signed_off_at: now, signed_off_by: actor, sign_off_note: note })
        .where('id', '=', id)
        .where('signed_off_at', 'is', null)
        .executeTakeFirst();
      if (changed(result) !== 1)
        throw new BatonError('BREAK_GLASS_ALREADY_SIGNED_OFF', 'This grant was already signed off');
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
