import { randomBytes } from 'node:crypto';
import type { AuthenticationResponseJSON, RegistrationResponseJSON } from '@simplewebauthn/server';
import { BatonError, type ErrorCode } from '../../shared/errors.js';
import type { OperatorRecord, Store } from '../store/repositories.js';
import type { AdminSessionRecord } from '../store/admin-repositories.js';
import { ADMIN_STEP_UP_MS, adminActor, type AdminAuth } from './admin-auth.js';
import { AdminSignInGuard } from './admin-sign-in-guard.js';
import { SUSPENDED_MESSAGE, verifyStoredCredential } from './assertion-gate.js';
import type { AuthenticatorMetadata } from './authenticator-metadata.js';
import type { EventLog } from './event-log.js';
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
/** Sign-in challenges presented and not yet expired; more are refused until some expire. */
const MAX_SIGN_INS_IN_FLIGHT = 100_000;

type AdminChallenge =
  | { purpose: 'admin-register'; codeHash: string; operatorId: string }
  | { purpose: 'admin-step-up'; sessionId: string };

export interface AdminCeremonyDeps {
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
 */
export class AdminCeremonies {
  private readonly pools = new Map<string, Map<string, { context: AdminChallenge; expiresAt: number }>>();
  /** Which pool each outstanding challenge is in. */
  private readonly poolOf = new Map<string, string>();
  private readonly signInChallenges: SignedChallenges;
  /** Per-client limits on the unauthenticated ceremonies, and back-off after failed assertions. */
  readonly guard: AdminSignInGuard;

  constructor(private readonly deps: AdminCeremonyDeps) {
    this.signInChallenges = new SignedChallenges({
      purpose: 'admin-sign-in',
      ttlMs: () => deps.challengeTtlMs,
      clock: deps.clock,
      maxInFlight: MAX_SIGN_INS_IN_FLIGHT,
    });
    this.guard = new AdminSignInGuard({ events: deps.events, clock: deps.clock });
  }

  private get rp(): WebAuthnCeremonies {
    return new WebAuthnCeremonies({
      rpId: this.deps.rpId,
      rpName: this.deps.rpName,
      origins: [this.deps.origin()],
      timeoutMs: this.deps.challengeTtlMs,
    });
  }

  /** The bootstrap step: an operator with the admin role and a one-time code to register a passkey with. */
  createFirstAdmin(input: { id?: string | undefined; displayName: string }, actor: string, codeTtlSeconds?: number) {
    const operator = this.deps.operators.create({ ...input, roles: ['admin'] }, actor);
    const { code, expiresAt } = this.deps.operators.issueCode(operator.id, codeTtlSeconds, actor);
    return { operator, code, expiresAt };
  }

  async registrationOptions(typedCode: string) {
    const { operator, hash } = this.usableAdminCode(typedCode);
    const challenge = this.issue({ purpose: 'admin-register', codeHash: hash, operatorId: operator.id });
    const options = await this.rp.registrationOptions({
      challenge,
      userId: Buffer.from(operator.webauthnUserId, 'base64url'),
      userName: operator.id,
      displayName: operator.displayName,
      userVerification: 'required',
      attestation: this.deps.policies.policy.credentials.attestation,
      exclude: this.deps.store.operators
        .listCredentials(operator.id)
        .map((c) => ({ id: c.id, transports: c.transports })),
    });
    return { options, operator: { id: operator.id, displayName: operator.displayName } };
  }

  /** Verifies the new admin passkey, stores it, retires the bootstrap token and signs the admin in. */
  async register(typedCode: string, response: RegistrationResponseJSON) {
    const client = readClientData(response.response.clientDataJSON);
    const context = this.consume(client.challenge);
    const { operator, hash } = this.usableAdminCode(typedCode);
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
    if (this.deps.store.operators.getCredential(info.credential.id) !== undefined) {
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
    const started = this.deps.events.atomically(() => {
      if (!this.deps.store.operators.useCode(hash, now, credential.id)) {
        throw new BatonError('ENROLMENT_CODE_USED', 'This enrolment code was already used');
      }
      this.deps.store.operators.insertCredential(credential);
      // The first admin passkey retires the bootstrap token, and every admin code it minted: of two
      // registrations racing with bootstrap-minted codes, the second finds its code used.
      this.deps.auth.retireBootstrap();
      this.deps.events.record(
        credentialCreatedEvent(
          credential,
          { operator: operator.id },
          ['admin-passkey'],
          info.fmt,
          this.deps.authenticators.eventDetail(info.aaguid),
        ),
      );
      const started = this.deps.auth.startSession(operator.id, credential.id, true);
      this.signedInEvent(started.session, 'admin-passkey-registered');
      return started;
    });
    return { ...started, operator, credential: credentialSummary(credential) };
  }

  async signInOptions() {
    const challenge = this.signInChallenges.issue();
    return { options: await this.rp.authenticationOptions({ challenge, userVerification: 'required' }) };
  }

  /** `from`: the client's address, for the back-off after failed assertions. */
  async signIn(response: AuthenticationResponseJSON, from: string) {
    const client = readClientData(response.response.clientDataJSON);
    this.signInChallenges.consume(client.challenge);
    const { credential, operator, recordUse } = await this.verify(response, client.challenge, 'sign-in-failed', from);
    if (!operator.roles.includes('admin')) {
      this.fail('sign-in-failed', 'ADMIN_ROLE_REQUIRED', operator.id, credential.id);
      throw new BatonError('ADMIN_ROLE_REQUIRED', `Operator "${operator.id}" does not hold the admin role`);
    }
    return this.deps.events.atomically(() => {
      recordUse();
      const started = this.deps.auth.startSession(operator.id, credential.id, true);
      this.signedInEvent(started.session, 'admin-signed-in');
      return { ...started, operator };
    });
  }

  async stepUpOptions(session: AdminSessionRecord) {
    const challenge = this.issue({ purpose: 'admin-step-up', sessionId: session.id });
    const allow = this.deps.store.operators
      .listCredentials(session.operatorId)
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
    const context = this.consume(client.challenge);
    if (context.purpose !== 'admin-step-up' || context.sessionId !== session.id) {
      throw new BatonError('CHALLENGE_UNKNOWN', 'The challenge was not issued for this admin session');
    }
    const { credential, operator, recordUse } = await this.verify(response, client.challenge, 'step-up-failed', from);
    if (operator.id !== session.operatorId) {
      this.fail('step-up-failed', 'STEP_UP_WRONG_OPERATOR', operator.id, credential.id);
      throw new BatonError('STEP_UP_WRONG_OPERATOR', 'The passkey belongs to another operator than this admin session');
    }
    const now = this.deps.clock();
    this.deps.events.atomically(() => {
      recordUse();
      this.deps.auth.recordStepUp(session);
      this.deps.events.record({
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
    const credential = this.deps.store.operators.getCredential(response.id);
    if (credential === undefined) {
      this.fail(failureType, 'CREDENTIAL_UNKNOWN');
      throw new BatonError('CREDENTIAL_UNKNOWN', 'No operator holds this credential');
    }
    const operator = this.deps.store.operators.get(credential.operatorId) as OperatorRecord;
    const refuse = (code: ErrorCode, message: string): never => {
      this.fail(failureType, code, operator.id, credential.id);
      throw new BatonError(code, message);
    };
    if (credential.revokedAt !== null) refuse('CREDENTIAL_REVOKED', 'This passkey has been revoked');
    if (credential.suspendedAt !== null) refuse('CREDENTIAL_SUSPENDED', SUSPENDED_MESSAGE);
    if (operator.revokedAt !== null) refuse('OPERATOR_REVOKED', 'This operator has been revoked');
    if (!credential.deviceBound) refuse('CREDENTIAL_NOT_DEVICE_BOUND', 'Admin passkeys must be device-bound');
    try {
      this.guard.checkBackoff(credential.id, from);
    } catch (error) {
      this.fail(failureType, 'ADMIN_SIGN_IN_THROTTLED', operator.id, credential.id);
      throw error;
    }
    const gate = { ceremonies: this.rp, store: this.deps.store, events: this.deps.events, clock: this.deps.clock };
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
      (code) => {
        this.guard.recordFailure(credential.id, from);
        this.fail(failureType, code, operator.id, credential.id);
      },
    );
    this.guard.recordSuccess(credential.id, from);
    if (info.backupEligible)
      refuse('CREDENTIAL_NOT_DEVICE_BOUND', 'The authenticator reports this passkey as syncable');
    // Re-read after the awaited verification: a revocation or suspension that landed meanwhile wins.
    const stored = this.deps.store.operators.getCredential(credential.id);
    if (stored?.revokedAt !== null) {
      throw new BatonError('CREDENTIAL_REVOKED', 'This passkey was revoked during the ceremony');
    }
    if (stored.suspendedAt !== null) throw new BatonError('CREDENTIAL_SUSPENDED', SUSPENDED_MESSAGE);
    const current = this.deps.store.operators.get(operator.id);
    if (current === undefined || current.revokedAt !== null) {
      throw new BatonError('OPERATOR_REVOKED', 'This operator was revoked during the ceremony');
    }
    // Nothing is stored yet: the caller runs `recordUse` in the transaction that acts on the assertion,
    // after its own checks (admin role, session owner), so a refused assertion changes nothing.
    const recordUse = () => {
      this.deps.store.operators.recordCredentialUse(credential.id, info.newCounter, this.deps.clock());
      this.deps.store.operators.resetFailures(operator.id);
    };
    return { credential, operator: current, recordUse };
  }

  private signedInEvent(session: AdminSessionRecord, reason: string): void {
    this.deps.events.record({
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

  private fail(type: 'sign-in-failed' | 'step-up-failed', code: ErrorCode, operator?: string, credential?: string) {
    this.deps.events.record({
      type,
      subject: {
        ...(operator === undefined ? {} : { operator }),
        ...(credential === undefined ? {} : { credential }),
      },
      outcome: 'failure',
      reasons: [code.toLowerCase().replace(/_/g, '-')],
      detail: { surface: 'admin-console' },
    });
  }

  private usableAdminCode(typed: string): { operator: OperatorRecord; hash: string } {
    const { record, hash } = usableEnrolmentCode(this.deps.store, typed, this.deps.clock());
    const operator = this.deps.operators.get(record.operatorId);
    if (operator.revokedAt !== null) throw new BatonError('OPERATOR_REVOKED', `Operator "${operator.id}" is revoked`);
    if (!operator.roles.includes('admin')) {
      throw new BatonError(
        'ADMIN_ROLE_REQUIRED',
        'This enrolment code is for an operator without the admin role: register it on a console',
      );
    }
    return { operator, hash };
  }

  private issue(context: AdminChallenge): string {
    const now = this.deps.clock();
    const name = context.purpose === 'admin-step-up' ? `step-up:${context.sessionId}` : `register:${context.codeHash}`;
    const max = MAX_CHALLENGES_PER_POOL;
    this.sweep(now);
    const pool = this.pools.get(name) ?? new Map<string, { context: AdminChallenge; expiresAt: number }>();
    for (const key of pool.keys()) {
      if (pool.size < max) break;
      pool.delete(key);
      this.poolOf.delete(key);
    }
    const challenge = randomBytes(16).toString('base64url');
    pool.set(challenge, { context, expiresAt: now + this.deps.challengeTtlMs });
    this.pools.set(name, pool);
    this.poolOf.set(challenge, name);
    return challenge;
  }

  /** Drops expired challenges: they share one lifetime, so each pool's oldest come first. */
  private sweep(now: number): void {
    for (const [name, pool] of this.pools) {
      for (const [key, entry] of pool) {
        if (entry.expiresAt > now) break;
        pool.delete(key);
        this.poolOf.delete(key);
      }
      if (pool.size === 0) this.pools.delete(name);
    }
  }

  private forget(challenge: string): { context: AdminChallenge; expiresAt: number } | undefined {
    const name = this.poolOf.get(challenge);
    if (name === undefined) return undefined;
    this.poolOf.delete(challenge);
    const pool = this.pools.get(name);
    const entry = pool?.get(challenge);
    pool?.delete(challenge);
    if (pool?.size === 0) this.pools.delete(name);
    return entry;
  }

  private consume(challenge: string): AdminChallenge {
    const entry = this.forget(challenge);
    if (entry === undefined) throw new BatonError('CHALLENGE_UNKNOWN', 'The challenge is unknown or was already used');
    if (entry.expiresAt <= this.deps.clock()) throw new BatonError('CHALLENGE_EXPIRED', 'The challenge has expired');
    return entry.context;
  }
}
