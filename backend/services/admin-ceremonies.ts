import type { VerifyPool } from '../crypto/verify-pool.js';
import { randomBytes } from 'node:crypto';
import type { AuthenticationResponseJSON, RegistrationResponseJSON } from '@simplewebauthn/server';
import { z } from 'zod';
import { BatonError, type ErrorCode } from '../../shared/errors.js';
import type { EventDraft } from '../../shared/events.js';
import type { OperatorRecord, Store } from '../store/repositories.js';
import type { AdminSessionRecord } from '../store/admin-repositories.js';
import { ADMIN_STEP_UP_MS, adminActor, type AdminAuth } from './admin-auth.js';
import { AdminSignInGuard } from './admin-sign-in-guard.js';
import { SUSPENDED_MESSAGE, verifyStoredCredential } from './assertion-gate.js';
import type { AuthenticatorMetadata } from './authenticator-metadata.js';
import { BACKEND_ORIGIN, type EventLog, type UnitOfWork } from './event-log.js';
import {
  attestationTrust,
  credentialCreatedEvent,
  credentialSummary,
  newCredentialRecord,
  usableEnrolmentCode,
  type OperatorDirectory,
} from './operator-directory.js';
import type { PolicyService } from './policy-service.js';
import { SignedChallenges } from './signed-challenges.js';
import { WebAuthnCeremonies, readClientData } from './webauthn-ceremonies.js';

/** Marks a passkey registered from the admin console rather than on a console. */
export const ADMIN_CONSOLE_REGISTRATION = 'admin-console';
/**
 * Outstanding step-up (per admin session) and registration (per enrolment code) challenges, per
 * pool; a new challenge beyond a pool's bound evicts that pool's oldest. Sign-in challenges, which
 * anyone may ask for, are not stored at all (`SignedChallenges`): asking for them evicts nothing.
 */
const MAX_CHALLENGES_PER_POOL = 8;
/** The `store.ephemeral` namespace of the admin ceremonies' outstanding challenges. */
const CHALLENGE_KIND = 'admin-ceremony';

/** What an outstanding challenge was issued for, as stored (and checked again when read back). */
const AdminChallengeSchema = z.discriminatedUnion('purpose', [
  z.strictObject({ purpose: z.literal('admin-register'), codeHash: z.string(), operatorId: z.string() }),
  z.strictObject({ purpose: z.literal('admin-step-up'), sessionId: z.string() }),
]);
type AdminChallenge = z.infer<typeof AdminChallengeSchema>;

export interface AdminCeremonyDeps {
  /** The composition's verification threads, when it made them (passed through to the relying party). */
  verifyPool?: VerifyPool | undefined;
  store: Store;
  events: EventLog;
  policies: PolicyService;
  operators: OperatorDirectory;
  auth: AdminAuth;
  clock: () => number;
  rpId: string;
  rpName: string;
  origin: () => string;
  challengeTtlMs: number;
  attestationRootsConfigured: boolean;
  /** FIDO metadata: an admin passkey meets the policy's certification rules when it is registered. */
  authenticators: AuthenticatorMetadata;
}

/**
 * The admin's WebAuthn ceremonies, run on the admin console's own origin: registering an admin
 * passkey with an enrolment code, signing in, and stepping up. User verification is always
 * required and admin passkeys must be device-bound (the strictest level's rules).
 *
 * Nothing a ceremony depends on is kept in this node's memory: outstanding registration and step-up
 * challenges are in `store.ephemeral` (taken once, whichever node the answer reaches), sign-in
 * challenges are signed with a key every node reads from the store. Only the per-client flood guard
 * is per node (a rate limit, see `AdminSignInGuard`).
 */
export class AdminCeremonies {
  private readonly signInChallenges: SignedChallenges;
  /** Per-client limits on the unauthenticated ceremonies, and back-off after failed assertions. */
  readonly guard: AdminSignInGuard;

  constructor(private readonly deps: AdminCeremonyDeps) {
    this.signInChallenges = new SignedChallenges({
      purpose: 'admin-sign-in',
      ttlMs: () => deps.challengeTtlMs,
      clock: deps.clock,
      store: deps.store,
    });
    this.guard = new AdminSignInGuard({ events: deps.events, clock: deps.clock });
  }

  private get rp(): WebAuthnCeremonies {
    return new WebAuthnCeremonies(
      {
        rpId: this.deps.rpId,
        rpName: this.deps.rpName,
        origins: [this.deps.origin()],
        timeoutMs: this.deps.challengeTtlMs,
      },
      this.deps.verifyPool,
    );
  }

  /** The bootstrap step: an operator with the admin role and a one-time code to register a passkey with. */
  async createFirstAdmin(
    input: { id?: string | undefined; displayName: string },
    actor: string,
    codeTtlSeconds?: number,
  ) {
    const operator = await this.deps.operators.create({ ...input, roles: ['admin'] }, actor);
    const { code, expiresAt } = await this.deps.operators.issueCode(operator.id, codeTtlSeconds, actor);
    return { operator, code, expiresAt };
  }

  async registrationOptions(typedCode: string) {
    const { operator, hash } = await this.usableAdminCode(typedCode);
    const challenge = await this.issue({ purpose: 'admin-register', codeHash: hash, operatorId: operator.id });
    const options = await this.rp.registrationOptions({
      challenge,
      userId: Buffer.from(operator.webauthnUserId, 'base64url'),
      userName: operator.id,
      displayName: operator.displayName,
      userVerification: 'required',
      attestation: this.deps.policies.policy.credentials.attestation,
      exclude: (await this.deps.store.operators.listCredentials(operator.id)).map((c) => ({
        id: c.id,
        transports: c.transports,
      })),
    });
    return { options, operator: { id: operator.id, displayName: operator.displayName } };
  }

  /** Verifies the new admin passkey, stores it, retires the bootstrap token and signs the admin in. */
  async register(typedCode: string, response: RegistrationResponseJSON) {
    const client = readClientData(response.response.clientDataJSON);
    const context = await this.consume(client.challenge);
    const { operator, hash } = await this.usableAdminCode(typedCode);
    if (context.purpose !== 'admin-register' || context.codeHash !== hash) {
      throw new BatonError('CHALLENGE_UNKNOWN', 'The challenge was not issued for this enrolment code');
    }
    const info = await this.rp.verifyRegistration(response, client.challenge, true);
    if (info.credentialDeviceType !== 'singleDevice') {
      throw new BatonError(
        'CREDENTIAL_NOT_DEVICE_BOUND',
        'Admin passkeys must be device-bound; this one can be synced',
      );
    }
    const rules = this.deps.policies.policy.credentials;
    const trust = attestationTrust(info.fmt, info.attestationObject, this.deps.attestationRootsConfigured);
    if (rules.aaguidAllowList.length > 0 && (trust !== 'certificate' || !rules.aaguidAllowList.includes(info.aaguid))) {
      throw new BatonError(
        'CREDENTIAL_AAGUID_NOT_ALLOWED',
        `Authenticator model ${info.aaguid} is not on the allow-list`,
      );
    }
    const model = this.deps.authenticators.registrationRefusal(info.aaguid, trust, rules);
    if (model !== undefined) throw new BatonError(model.code, model.message);
    if ((await this.deps.store.operators.getCredential(info.credential.id)) !== undefined) {
      throw new BatonError('CREDENTIAL_ALREADY_REGISTERED', 'This credential is already registered');
    }
    const now = this.deps.clock();
    const credential = newCredentialRecord(info, response, {
      operatorId: operator.id,
      deviceBound: true,
      trust,
      registeredOn: ADMIN_CONSOLE_REGISTRATION,
      now,
      usedNow: true,
    });
    const started = await this.deps.events.atomically(async (uow) => {
      // Registrations take the backend chain head first, so they run one after the other: on
      // PostgreSQL two of them each holding its own code and then retiring the other's (below)
      // would deadlock instead of one finding its code used. (On SQLite a plain read.)
      await uow.store.events.lockHead(BACKEND_ORIGIN);
      if (!(await uow.store.operators.useCode(hash, now, credential.id))) {
        throw new BatonError('ENROLMENT_CODE_USED', 'This enrolment code was already used');
      }
      await uow.store.operators.insertCredential(credential);
      // The first admin passkey retires the bootstrap token, and every admin code it minted: of two
      // registrations racing with bootstrap-minted codes, the second finds its code used.
      await this.deps.auth.retireBootstrapIn(uow);
      await uow.record(
        credentialCreatedEvent(
          credential,
          { operator: operator.id },
          ['admin-passkey'],
          info.fmt,
          this.deps.authenticators.eventDetail(info.aaguid),
        ),
      );
      const started = await this.deps.auth.startSession(uow.store, operator.id, credential.id, true);
      await this.signedInEvent(uow, started.session, 'admin-passkey-registered');
      return started;
    });
    return { ...started, operator, credential: credentialSummary(credential) };
  }

  async signInOptions() {
    const challenge = await this.signInChallenges.issue();
    return { options: await this.rp.authenticationOptions({ challenge, userVerification: 'required' }) };
  }

  /** `from`: the client's address, for the back-off after failed assertions. */
  async signIn(response: AuthenticationResponseJSON, from: string) {
    const client = readClientData(response.response.clientDataJSON);
    await this.signInChallenges.consume(client.challenge);
    const { credential, operator, recordUse } = await this.verify(response, client.challenge, 'sign-in-failed', from);
    if (!operator.roles.includes('admin')) {
      await this.fail('sign-in-failed', 'ADMIN_ROLE_REQUIRED', operator.id, credential.id);
      throw new BatonError('ADMIN_ROLE_REQUIRED', `Operator "${operator.id}" does not hold the admin role`);
    }
    return this.deps.events.atomically(async (uow) => {
      await recordUse(uow.store);
      const started = await this.deps.auth.startSession(uow.store, operator.id, credential.id, true);
      await this.signedInEvent(uow, started.session, 'admin-signed-in');
      return { ...started, operator };
    });
  }

  async stepUpOptions(session: AdminSessionRecord) {
    const challenge = await this.issue({ purpose: 'admin-step-up', sessionId: session.id });
    const allow = (await this.deps.store.operators.listCredentials(session.operatorId))
      .filter((c) => c.revokedAt === null)
      .map((c) => ({ id: c.id, transports: c.transports }));
    return { options: await this.rp.authenticationOptions({ challenge, userVerification: 'required', allow }) };
  }

  async stepUp(
    session: AdminSessionRecord,
    response: AuthenticationResponseJSON,
    from: string,
  ): Promise<{ stepUpUntil: number }> {
    const client = readClientData(response.response.clientDataJSON);
    const context = await this.consume(client.challenge);
    if (context.purpose !== 'admin-step-up' || context.sessionId !== session.id) {
      throw new BatonError('CHALLENGE_UNKNOWN', 'The challenge was not issued for this admin session');
    }
    const { credential, operator, recordUse } = await this.verify(response, client.challenge, 'step-up-failed', from);
    if (operator.id !== session.operatorId) {
      await this.fail('step-up-failed', 'STEP_UP_WRONG_OPERATOR', operator.id, credential.id);
      throw new BatonError('STEP_UP_WRONG_OPERATOR', 'The passkey belongs to another operator than this admin session');
    }
    const now = this.deps.clock();
    await this.deps.events.atomically(async (uow) => {
      await recordUse(uow.store);
      await this.deps.auth.recordStepUp(uow.store, session);
      await uow.record({
        type: 'admin-action',
        subject: { operator: operator.id, credential: credential.id },
        outcome: 'success',
        reasons: ['admin-stepped-up'],
        detail: { actor: adminActor(operator.id), adminSession: session.id },
      });
    });
    return { stepUpUntil: now + ADMIN_STEP_UP_MS };
  }

  /**
   * The checks every admin assertion passes: credential, operator, signature, UV, counter,
   * device-bound. Failed assertions do not count towards the operator's lockout (anyone who knows
   * a credential id could lock the admin out with them); they slow down further tries with that
   * passkey from the same client address only (`AdminSignInGuard`).
   */
  private async verify(
    response: AuthenticationResponseJSON,
    challenge: string,
    failureType: 'sign-in-failed' | 'step-up-failed',
    from: string,
  ) {
    const credential = await this.deps.store.operators.getCredential(response.id);
    if (credential === undefined) {
      await this.fail(failureType, 'CREDENTIAL_UNKNOWN');
      throw new BatonError('CREDENTIAL_UNKNOWN', 'No operator holds this credential');
    }
    const operator = (await this.deps.store.operators.get(credential.operatorId)) as OperatorRecord;
    const refuse = async (code: ErrorCode, message: string): Promise<never> => {
      await this.fail(failureType, code, operator.id, credential.id);
      throw new BatonError(code, message);
    };
    if (credential.revokedAt !== null) await refuse('CREDENTIAL_REVOKED', 'This passkey has been revoked');
    if (credential.suspendedAt !== null) await refuse('CREDENTIAL_SUSPENDED', SUSPENDED_MESSAGE);
    if (operator.revokedAt !== null) await refuse('OPERATOR_REVOKED', 'This operator has been revoked');
    if (!credential.deviceBound) await refuse('CREDENTIAL_NOT_DEVICE_BOUND', 'Admin passkeys must be device-bound');
    try {
      this.guard.checkBackoff(credential.id, from);
    } catch (error) {
      await this.fail(failureType, 'ADMIN_SIGN_IN_THROTTLED', operator.id, credential.id);
      throw error;
    }
    const gate = { ceremonies: this.rp, events: this.deps.events, clock: this.deps.clock };
    const info = await verifyStoredCredential(
      gate,
      {
        response,
        challenge,
        credential,
        operatorId: operator.id,
        requireUv: true,
        countsTowardLockout: false,
        onCounterRegression: this.deps.policies.policy.credentials.onCounterRegression,
      },
      (uow, code) => {
        this.guard.recordFailure(credential.id, from);
        return uow.record(this.failure(failureType, code, operator.id, credential.id));
      },
    );
    this.guard.recordSuccess(credential.id, from);
    if (info.backupEligible) {
      await refuse('CREDENTIAL_NOT_DEVICE_BOUND', 'The authenticator reports this passkey as syncable');
    }
    // Re-read after the awaited verification: a revocation or suspension that landed meanwhile wins.
    const stored = await this.deps.store.operators.getCredential(credential.id);
    if (stored?.revokedAt !== null) {
      throw new BatonError('CREDENTIAL_REVOKED', 'This passkey was revoked during the ceremony');
    }
    if (stored.suspendedAt !== null) throw new BatonError('CREDENTIAL_SUSPENDED', SUSPENDED_MESSAGE);
    const current = await this.deps.store.operators.get(operator.id);
    if (current === undefined || current.revokedAt !== null) {
      throw new BatonError('OPERATOR_REVOKED', 'This operator was revoked during the ceremony');
    }
    // Nothing is stored yet: the caller runs `recordUse` in the transaction that acts on the assertion,
    // after its own checks (admin role, session owner), so a refused assertion changes nothing.
    const recordUse = async (tx: Store) => {
      await tx.operators.recordCredentialUse(credential.id, info.newCounter, this.deps.clock());
      await tx.operators.resetFailures(operator.id);
    };
    return { credential, operator: current, recordUse };
  }

  private async signedInEvent(uow: UnitOfWork, session: AdminSessionRecord, reason: string): Promise<void> {
    await uow.record({
      type: 'admin-action',
      subject: { operator: session.operatorId, credential: session.credentialId },
      outcome: 'success',
      reasons: [reason],
      detail: {
        actor: adminActor(session.operatorId),
        adminSession: session.id,
        expiresAt: session.expiresAt,
        userVerified: true,
      },
    });
  }

  private async fail(
    type: 'sign-in-failed' | 'step-up-failed',
    code: ErrorCode,
    operator?: string,
    credential?: string,
  ): Promise<void> {
    await this.deps.events.record(this.failure(type, code, operator, credential));
  }

  private failure(
    type: 'sign-in-failed' | 'step-up-failed',
    code: ErrorCode,
    operator?: string,
    credential?: string,
  ): EventDraft {
    return {
      type,
      subject: {
        ...(operator === undefined ? {} : { operator }),
        ...(credential === undefined ? {} : { credential }),
      },
      outcome: 'failure',
      reasons: [code.toLowerCase().replace(/_/g, '-')],
      detail: { surface: 'admin-console' },
    };
  }

  private async usableAdminCode(typed: string): Promise<{ operator: OperatorRecord; hash: string }> {
    const { record, hash } = await usableEnrolmentCode(this.deps.store, typed, this.deps.clock());
    const operator = await this.deps.operators.get(record.operatorId);
    if (operator.revokedAt !== null) throw new BatonError('OPERATOR_REVOKED', `Operator "${operator.id}" is revoked`);
    if (!operator.roles.includes('admin')) {
      throw new BatonError(
        'ADMIN_ROLE_REQUIRED',
        'This enrolment code is for an operator without the admin role: register it on a console',
      );
    }
    return { operator, hash };
  }

  /**
   * Stores a new challenge for `context` in its pool (`store.ephemeral`: any node can take it);
   * beyond the pool's bound, its oldest outstanding challenge is dropped.
   */
  private async issue(context: AdminChallenge): Promise<string> {
    const pool = context.purpose === 'admin-step-up' ? `step-up:${context.sessionId}` : `register:${context.codeHash}`;
    const challenge = randomBytes(16).toString('base64url');
    await this.deps.store.ephemeral.put(
      {
        kind: CHALLENGE_KIND,
        key: challenge,
        owner: pool,
        value: JSON.stringify(context),
        expiresAt: this.deps.clock() + this.deps.challengeTtlMs,
      },
      MAX_CHALLENGES_PER_POOL,
    );
    return challenge;
  }

  /** Takes the challenge (single use, whichever node took it first) and says what it was issued for. */
  private async consume(challenge: string): Promise<AdminChallenge> {
    const entry = await this.deps.store.ephemeral.take(CHALLENGE_KIND, challenge);
    if (entry === undefined) throw new BatonError('CHALLENGE_UNKNOWN', 'The challenge is unknown or was already used');
    if (entry.expiresAt <= this.deps.clock()) throw new BatonError('CHALLENGE_EXPIRED', 'The challenge has expired');
    let context: unknown;
    try {
      context = JSON.parse(entry.value);
    } catch {
      context = undefined;
    }
    const parsed = AdminChallengeSchema.safeParse(context);
    if (!parsed.success)
      throw new BatonError('CHALLENGE_UNKNOWN', 'The stored challenge is not one this backend issued');
    return parsed.data;
  }
}
