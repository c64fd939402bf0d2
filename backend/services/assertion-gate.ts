import type { AuthenticationResponseJSON } from '@simplewebauthn/server';
import { BatonError, type ErrorCode } from '../../shared/errors.js';
import { DEFAULT_ON_COUNTER_REGRESSION } from '../../shared/policy.js';
import { levelFromAuthentication, type AssuranceLevel } from '../../shared/levels.js';
import type {
  AssertionRowsState,
  ConsoleRecord,
  CredentialRecord,
  OperatorRecord,
  Store,
} from '../store/repositories.js';
import { assuranceContext } from './assurance.js';
import type { CeremonyContext } from './ceremony-context.js';
import type { UnitOfWork } from './event-log.js';
import type { ChallengeContext } from './webauthn-ceremonies.js';

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
 * `recordFailure` adds the caller's own failure event in the same unit of work; then the error is rethrown.
 * The verification itself (CPU) runs outside any transaction.
 */
export async function verifyStoredCredential(
  deps: Pick<CeremonyContext, 'ceremonies' | 'events'> & { clock: () => number },
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
  recordFailure: (uow: UnitOfWork, code: ErrorCode) => Promise<unknown>,
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
    await recordAssertionRefusal(deps, input, error, recordFailure);
    throw error;
  }
}

/**
 * Records a refused assertion in a unit of work of its own (the caller rethrows `error`): counts a
 * guess toward the lockout and, for a counter that went back (found by the verification, or by the
 * store when another node advanced the counter first), suspends the credential as the policy says
 * and records the possible clone. Locks in the store's order (repositories.ts): the credential, then
 * the operator, then the backend chain head (the first `record`).
 */
export async function recordAssertionRefusal(
  deps: Pick<CeremonyContext, 'events'> & { clock: () => number },
  input: {
    credential: CredentialRecord;
    operatorId: string;
    consoleId?: string;
    onCounterRegression?: CounterRegressionAction | undefined;
    countsTowardLockout?: boolean;
  },
  error: unknown,
  recordFailure: (uow: UnitOfWork, code: ErrorCode) => Promise<unknown>,
): Promise<void> {
  const { credential } = input;
  const code = error instanceof BatonError ? error.code : 'WEBAUTHN_VERIFICATION_FAILED';
  await deps.events.atomically(async (uow) => {
    const regressed = code === 'WEBAUTHN_COUNTER_REGRESSED';
    const action = input.onCounterRegression ?? DEFAULT_ON_COUNTER_REGRESSION;
    const suspended =
      regressed &&
      action === 'suspend' &&
      (await uow.store.operators.suspendCredential(credential.id, deps.clock(), 'possible-cloned-authenticator'));
    const guess = code === 'WEBAUTHN_VERIFICATION_FAILED' || regressed;
    if (guess && input.countsTowardLockout !== false) {
      await uow.store.operators.recordFailure(input.operatorId);
    }
    await recordFailure(uow, code);
    if (regressed) {
      const received = error instanceof BatonError ? error.extra?.receivedCounter : undefined;
      await uow.record({
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
}

/**
 * The checks every assertion passes, for sign-in and step-up alike: the challenge, the credential
 * and its operator, the WebAuthn verification, the counter, and the failure record.
 */
export class AssertionGate {
  constructor(private readonly ctx: CeremonyContext) {}

  async consume(
    challenge: string,
    console: ConsoleRecord,
    failureType: 'sign-in-failed' | 'step-up-failed',
  ): Promise<ChallengeContext> {
    try {
      return await this.ctx.challenges.consume(challenge, console.id);
    } catch (error) {
      if (error instanceof BatonError) await this.fail(console, failureType, error.code, {});
      throw error;
    }
  }

  /**
   * Re-reads, inside the unit of work that acts on a verified assertion, what the verification
   * awaited on: refuses if the console, credential or operator was revoked (or the credential
   * suspended) since. Call it after the unit's first writes (see `recordUse`), through its store.
   */
  async assertStillUsable(store: Store, consoleId: string, credentialId: string, operatorId: string): Promise<void> {
    if ((await store.consoles.get(consoleId))?.revokedAt !== null) {
      throw new BatonError('CONSOLE_REVOKED', 'This console was revoked during the ceremony');
    }
    const credential = await store.operators.getCredential(credentialId);
    if (credential?.revokedAt !== null) {
      throw new BatonError('CREDENTIAL_REVOKED', 'This credential was revoked during the ceremony');
    }
    if (credential.suspendedAt !== null) {
      throw new BatonError('CREDENTIAL_SUSPENDED', 'This credential was suspended during the ceremony');
    }
    if ((await store.operators.get(operatorId))?.revokedAt !== null) {
      throw new BatonError('OPERATOR_REVOKED', 'This operator was revoked during the ceremony');
    }
  }

  /**
   * Stores the new signature counter of a verified assertion, inside the unit of work that acts on
   * it: a refused assertion changes nothing (the unit rolls back). It is one of the unit's first
   * writes, made before its revocation re-check: it takes the credential's row, which revoking the
   * credential updates too, so on an engine with row locks (PostgreSQL, read committed) a concurrent
   * revocation either committed first (the re-check then sees it) or waits for this unit to commit
   * (and then finds the session resting on the credential). On SQLite units are serialised whole.
   */
  async recordUse(store: Store, credential: CredentialRecord, counter: number): Promise<void> {
    await store.operators.recordCredentialUse(credential.id, counter, this.ctx.clock());
    credential.counter = counter;
  }

  /**
   * `recordUse` and `assertStillUsable` in one store call (`OperatorRepository.recordAssertionUse`:
   * one statement on PostgreSQL): the credential's counter, the operator's failure count reset to
   * zero and the console's last contact written, in the lock order, then the same refusals as
   * `assertStillUsable` on the state each write left. Call it first in the unit of work.
   */
  async recordUseAndRecheck(
    store: Store,
    credential: CredentialRecord,
    counter: number,
    operatorId: string,
    consoleId: string,
  ): Promise<void> {
    this.refuseRevoked(await this.recordUseForRecheck(store, credential, counter, operatorId, consoleId));
  }

  /**
   * The writes of `recordUseAndRecheck` without its refusals: the unit may first check something of
   * its own (step-up: its session still active), then calls `refuseRevoked` with what this returned.
   */
  async recordUseForRecheck(
    store: Store,
    credential: CredentialRecord,
    counter: number,
    operatorId: string,
    consoleId: string,
  ): Promise<AssertionRowsState> {
    const state = await store.operators.recordAssertionUse({
      credentialId: credential.id,
      counter,
      at: this.ctx.clock(),
      operatorId,
      consoleId,
    });
    credential.counter = counter;
    return state;
  }

  /** The refusals of `assertStillUsable`, on the state `recordUseForRecheck` returned. */
  refuseRevoked(state: AssertionRowsState): void {
    if (state.consoleRevokedAt !== null) {
      throw new BatonError('CONSOLE_REVOKED', 'This console was revoked during the ceremony');
    }
    if (state.credential.revokedAt !== null) {
      throw new BatonError('CREDENTIAL_REVOKED', 'This credential was revoked during the ceremony');
    }
    if (state.credential.suspendedAt !== null) {
      throw new BatonError('CREDENTIAL_SUSPENDED', 'This credential was suspended during the ceremony');
    }
    if (state.operatorRevokedAt !== null) {
      throw new BatonError('OPERATOR_REVOKED', 'This operator was revoked during the ceremony');
    }
  }

  /**
   * Runs `unit` (the unit of work that acts on a verified assertion, which calls `recordUse`). When
   * the store refuses the counter because another node (or unit) advanced it past this assertion's
   * meanwhile, the assertion is refused as a counter regression found by the verification is:
   * WEBAUTHN_COUNTER_REGRESSED, the possible clone recorded, the credential suspended per policy.
   */
  async actOn<T>(
    console: ConsoleRecord,
    credential: CredentialRecord,
    operatorId: string,
    failureType: 'sign-in-failed' | 'step-up-failed',
    sessionId: string | undefined,
    unit: () => Promise<T>,
  ): Promise<T> {
    try {
      return await unit();
    } catch (error) {
      if (error instanceof BatonError && error.code === 'WEBAUTHN_COUNTER_REGRESSED') {
        await recordAssertionRefusal(
          this.ctx,
          {
            credential,
            operatorId,
            consoleId: console.id,
            onCounterRegression: this.ctx.policies.policy.credentials.onCounterRegression,
          },
          error,
          (uow, code) =>
            this.fail(
              console,
              failureType,
              code,
              { operator: operatorId, credential: credential.id, ...(sessionId ? { session: sessionId } : {}) },
              undefined,
              uow,
            ),
        );
      }
      throw error;
    }
  }

  async usableCredential(
    console: ConsoleRecord,
    credentialId: string,
    failureType: 'sign-in-failed' | 'step-up-failed',
  ): Promise<{ credential: CredentialRecord; operator: OperatorRecord }> {
    const found = await this.ctx.store.operators.getCredentialWithOperator(credentialId);
    if (found === undefined) {
      await this.fail(console, failureType, 'CREDENTIAL_UNKNOWN', {});
      throw new BatonError('CREDENTIAL_UNKNOWN', 'No operator holds this credential');
    }
    const { credential, operator } = found;
    const refuse = async (code: ErrorCode, message: string): Promise<never> => {
      await this.fail(console, failureType, code, { operator: operator.id, credential: credential.id });
      throw new BatonError(code, message);
    };
    if (credential.revokedAt !== null) await refuse('CREDENTIAL_REVOKED', 'This credential has been revoked');
    if (credential.suspendedAt !== null) await refuse('CREDENTIAL_SUSPENDED', SUSPENDED_MESSAGE);
    if (operator.revokedAt !== null) await refuse('OPERATOR_REVOKED', 'This operator has been revoked');
    if (operator.failedAttempts >= MAX_FAILED_ATTEMPTS) {
      await refuse('OPERATOR_LOCKED', 'Too many failed attempts: an administrator must reset this operator');
    }
    if (this.ctx.policies.policy.credentials.deviceBoundOnly && !credential.deviceBound) {
      await refuse('CREDENTIAL_NOT_DEVICE_BOUND', 'Policy allows device-bound credentials only');
    }
    const model = this.ctx.authenticators.signInRefusal(credential, this.ctx.policies.policy.credentials);
    if (model !== undefined) await refuse(model.code, model.message);
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
      (uow, code) =>
        this.fail(
          console,
          failureType,
          code,
          { operator: operator.id, credential: credential.id, ...(sessionId ? { session: sessionId } : {}) },
          undefined,
          uow,
        ),
    );
    const policy = this.ctx.policies.policy;
    if (info.backupEligible && (policy.credentials.deviceBoundOnly || credential.deviceBound)) {
      // The BE flag never changes for a credential: a device-bound one now claiming to be syncable is
      // another authenticator or a tampered one.
      // A refusal: nothing about the credential's use is stored.
      await this.fail(console, failureType, 'CREDENTIAL_NOT_DEVICE_BOUND', {
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

  /** Records a refused assertion: in the given unit of work, or in one of its own. */
  async fail(
    console: ConsoleRecord,
    type: 'sign-in-failed' | 'step-up-failed',
    code: ErrorCode,
    subject: { operator?: string; credential?: string; session?: string },
    level?: AssuranceLevel,
    uow?: Pick<UnitOfWork, 'record'>,
  ): Promise<void> {
    await (uow ?? this.ctx.events).record({
      type,
      subject: { ...subject, console: console.id },
      ...(level === undefined ? {} : { assurance: assuranceContext(level, this.ctx.clock()) }),
      outcome: 'failure',
      reasons: [code.toLowerCase().replace(/_/g, '-')],
    });
  }
}
