import type { AuthenticationResponseJSON } from '@simplewebauthn/server';
import { BatonError, type ErrorCode } from '../../shared/errors.js';
import { DEFAULT_ON_COUNTER_REGRESSION } from '../../shared/policy.js';
import { levelFromAuthentication, type AssuranceLevel } from '../../shared/levels.js';
import type { ConsoleRecord, CredentialRecord, OperatorRecord } from '../store/repositories.js';
import { assuranceContext } from './assurance.js';
import type { CeremonyContext } from './ceremony-context.js';

/** NIST 800-63B: at most 100 consecutive failed attempts per account. */
export const MAX_FAILED_ATTEMPTS = 100;

export const SUSPENDED_MESSAGE =
  'This passkey is suspended: its signature counter went backwards, so it looks like a copy of a registered key; an administrator must reinstate or revoke it';

/** What happens to a credential whose signature counter went backwards (policy `credentials.onCounterRegression`). */
export type CounterRegressionAction = 'suspend' | 'refuse';

/**
 * Verifies an assertion against a stored credential (consoles' sign-in and step-up, and admins'
 * alike). It writes nothing about the credential's use: the caller stores the new counter only once
 * every check has passed, in the transaction that acts on the assertion, so a refusal changes nothing.
 * A bad signature or a counter that went back is a guess at (or a copy of) this operator's key: it
 * counts toward the lockout. A counter regression is recorded as a possible cloned authenticator and,
 * unless the policy says `refuse`, suspends the credential until an admin reinstates or revokes it.
 * A wrong origin or RP ID is the caller's fault and must not let one console lock operators out.
 * `recordFailure` adds the caller's own failure event in the same transaction; then the error is rethrown.
 */
export async function verifyStoredCredential(
  deps: Pick<CeremonyContext, 'ceremonies' | 'store' | 'events'> & { clock: () => number },
  input: {
    response: AuthenticationResponseJSON;
    challenge: string;
    credential: CredentialRecord;
    operatorId: string;
    requireUv: boolean;
    consoleId?: string;
    onCounterRegression?: CounterRegressionAction | undefined;
    /** `false` on the admin console: its failures back off per client instead (`AdminSignInGuard`). */
    countsTowardLockout?: boolean;
  },
  recordFailure: (code: ErrorCode) => void,
) {
  const { credential } = input;
  try {
    return await deps.ceremonies.verifyAuthentication(
      input.response,
      input.challenge,
      {
        id: credential.id,
        publicKey: new Uint8Array(credential.publicKey),
        counter: credential.counter,
        transports: [],
      },
      input.requireUv,
    );
  } catch (error) {
    const code = error instanceof BatonError ? error.code : 'WEBAUTHN_VERIFICATION_FAILED';
    deps.events.atomically(() => {
      const guess = code === 'WEBAUTHN_VERIFICATION_FAILED' || code === 'WEBAUTHN_COUNTER_REGRESSED';
      if (guess && input.countsTowardLockout !== false) {
        deps.store.operators.recordFailure(input.operatorId);
      }
      recordFailure(code);
      if (code === 'WEBAUTHN_COUNTER_REGRESSED') {
        const action = input.onCounterRegression ?? DEFAULT_ON_COUNTER_REGRESSION;
        const received = error instanceof BatonError ? error.extra?.receivedCounter : undefined;
        const suspended =
          action === 'suspend' &&
          deps.store.operators.suspendCredential(credential.id, deps.clock(), 'possible-cloned-authenticator');
        deps.events.record({
          type: 'credential-counter-regressed',
          subject: {
            operator: input.operatorId,
            ...(input.consoleId === undefined ? {} : { console: input.consoleId }),
            credential: credential.id,
          },
          outcome: 'failure',
          reasons: ['possible-cloned-authenticator', ...(suspended ? ['credential-suspended'] : [])],
          detail: {
            storedCounter: credential.counter,
            ...(typeof received === 'number' ? { receivedCounter: received } : {}),
            action,
          },
        });
      }
    });
    throw error;
  }
}

/**
 * The checks every assertion passes, for sign-in and step-up alike: the challenge, the credential
 * and its operator, the WebAuthn verification, the counter, and the failure record.
 */
export class AssertionGate {
  constructor(private readonly ctx: CeremonyContext) {}

  consume(challenge: string, console: ConsoleRecord, failureType: 'sign-in-failed' | 'step-up-failed') {
    try {
      return this.ctx.challenges.consume(challenge, console.id);
    } catch (error) {
      if (error instanceof BatonError) this.fail(console, failureType, error.code, {});
      throw error;
    }
  }

  /** Re-reads what a verification awaited on: refuses if the console, credential or operator was revoked since. */
  assertStillUsable(consoleId: string, credentialId: string, operatorId: string): void {
    if (this.ctx.store.consoles.get(consoleId)?.revokedAt !== null) {
      throw new BatonError('CONSOLE_REVOKED', 'This console was revoked during the ceremony');
    }
    const credential = this.ctx.store.operators.getCredential(credentialId);
    if (credential?.revokedAt !== null) {
      throw new BatonError('CREDENTIAL_REVOKED', 'This credential was revoked during the ceremony');
    }
    if (credential.suspendedAt !== null) {
      throw new BatonError('CREDENTIAL_SUSPENDED', 'This credential was suspended during the ceremony');
    }
    if (this.ctx.store.operators.get(operatorId)?.revokedAt !== null) {
      throw new BatonError('OPERATOR_REVOKED', 'This operator was revoked during the ceremony');
    }
  }

  usableCredential(console: ConsoleRecord, credentialId: string, failureType: 'sign-in-failed' | 'step-up-failed') {
    const credential = this.ctx.store.operators.getCredential(credentialId);
    if (credential === undefined) {
      this.fail(console, failureType, 'CREDENTIAL_UNKNOWN', {});
      throw new BatonError('CREDENTIAL_UNKNOWN', 'No operator holds this credential');
    }
    const operator = this.ctx.store.operators.get(credential.operatorId) as OperatorRecord;
    const refuse = (code: ErrorCode, message: string): never => {
      this.fail(console, failureType, code, { operator: operator.id, credential: credential.id });
      throw new BatonError(code, message);
    };
    if (credential.revokedAt !== null) refuse('CREDENTIAL_REVOKED', 'This credential has been revoked');
    if (credential.suspendedAt !== null) refuse('CREDENTIAL_SUSPENDED', SUSPENDED_MESSAGE);
    if (operator.revokedAt !== null) refuse('OPERATOR_REVOKED', 'This operator has been revoked');
    if (operator.failedAttempts >= MAX_FAILED_ATTEMPTS) {
      refuse('OPERATOR_LOCKED', 'Too many failed attempts: an administrator must reset this operator');
    }
    if (this.ctx.policies.policy.credentials.deviceBoundOnly && !credential.deviceBound) {
      refuse('CREDENTIAL_NOT_DEVICE_BOUND', 'Policy allows device-bound credentials only');
    }
    const model = this.ctx.authenticators.signInRefusal(credential, this.ctx.policies.policy.credentials);
    if (model !== undefined) refuse(model.code, model.message);
    return { credential, operator };
  }

  async verifyAssertion(
    console: ConsoleRecord,
    response: AuthenticationResponseJSON,
    challenge: string,
    credential: CredentialRecord,
    operator: OperatorRecord,
    requireUv: boolean,
    failureType: 'sign-in-failed' | 'step-up-failed',
    sessionId?: string,
  ): Promise<{ level: AssuranceLevel; counter: number }> {
    const info = await verifyStoredCredential(
      this.ctx,
      {
        response,
        challenge,
        credential,
        operatorId: operator.id,
        requireUv,
        consoleId: console.id,
        onCounterRegression: this.ctx.policies.policy.credentials.onCounterRegression,
      },
      (code) =>
        this.fail(console, failureType, code, {
          operator: operator.id,
          credential: credential.id,
          ...(sessionId ? { session: sessionId } : {}),
        }),
    );
    const policy = this.ctx.policies.policy;
    if (info.backupEligible && (policy.credentials.deviceBoundOnly || credential.deviceBound)) {
      // The BE flag never changes for a credential: a device-bound one now claiming to be syncable is
      // another authenticator or a tampered one.
      // A refusal: nothing about the credential's use is stored.
      this.fail(console, failureType, 'CREDENTIAL_NOT_DEVICE_BOUND', {
        operator: operator.id,
        credential: credential.id,
        ...(sessionId ? { session: sessionId } : {}),
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

  /**
   * Stores the new signature counter of a verified assertion, inside the transaction that acts on it
   * and only once every check has passed: a refused assertion changes nothing.
   */
  recordUse(credential: CredentialRecord, counter: number): void {
    this.ctx.store.operators.recordCredentialUse(credential.id, counter, this.ctx.clock());
    credential.counter = counter;
  }

  fail(
    console: ConsoleRecord,
    type: 'sign-in-failed' | 'step-up-failed',
    code: ErrorCode,
    subject: { operator?: string; credential?: string; session?: string },
    level?: AssuranceLevel,
  ): void {
    this.ctx.events.record({
      type,
      subject: { ...subject, console: console.id },
      ...(level === undefined ? {} : { assurance: assuranceContext(level, this.ctx.clock()) }),
      outcome: 'failure',
      reasons: [code.toLowerCase().replace(/_/g, '-')],
    });
  }
}
