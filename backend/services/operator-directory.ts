import { randomBytes } from 'node:crypto';
import type { RegistrationResponseJSON } from '@simplewebauthn/server';
import { decodeAttestationObject } from '@simplewebauthn/server/helpers';
import { BatonError } from '../../shared/errors.js';
import type { EventDraft } from '../../shared/events.js';
import { ENROLMENT_CODE_PATTERN } from '../../shared/http-api.js';
import { newEnrolmentCode, newId, normaliseEnrolmentCode, sha256Hex } from '../crypto/secrets.js';
import type {
  AttestationTrust,
  ConsoleRecord,
  CredentialRecord,
  EnrolmentCodeRecord,
  OperatorRecord,
  Store,
} from '../store/repositories.js';
import type { AuthenticatorRefusal } from './authenticator-metadata.js';
import type { CeremonyContext } from './ceremony-context.js';
import { BACKEND_ORIGIN } from './event-log.js';
import type { AuthenticatedSession, SessionService } from './session-service.js';
import { readClientData, type WebAuthnCeremonies } from './webauthn-ceremonies.js';

export interface CredentialSummary {
  id: string;
  deviceBound: boolean;
  aaguid: string;
  attestationFmt: string;
  attestationTrust: AttestationTrust;
  createdAt: number;
  lastUsedAt: number | null;
  revokedAt: number | null;
  revokedReason: string | null;
  /** Suspended after a signature-counter regression (possible copy) until an admin reinstates or revokes it. */
  suspendedAt: number | null;
  suspendedReason: string | null;
  registeredOnConsole: string;
}

export function credentialSummary(c: CredentialRecord): CredentialSummary {
  return {
    id: c.id,
    deviceBound: c.deviceBound,
    aaguid: c.aaguid,
    attestationFmt: c.attestationFmt,
    attestationTrust: c.attestationTrust,
    createdAt: c.createdAt,
    lastUsedAt: c.lastUsedAt,
    revokedAt: c.revokedAt,
    revokedReason: c.revokedReason,
    suspendedAt: c.suspendedAt,
    suspendedReason: c.suspendedReason,
    registeredOnConsole: c.registeredOnConsole,
  };
}

/**
 * How much the attestation says about the authenticator model. Self attestation and `none` carry
 * no model evidence (anyone can claim any AAGUID); a certificate does only once SimpleWebAuthn has
 * chained it to a configured vendor root (without roots it skips that check).
 */
export function attestationTrust(
  fmt: string,
  attestationObject: Uint8Array,
  rootsConfigured: boolean,
): AttestationTrust {
  if (fmt === 'none') return 'none';
  const statement = decodeAttestationObject(new Uint8Array(attestationObject)).get('attStmt');
  const x5c = statement.get('x5c');
  if (!Array.isArray(x5c) || x5c.length === 0) return 'self';
  return rootsConfigured ? 'certificate' : 'unverified-certificate';
}

/** The actor of what the bootstrap token does (admin-auth.ts). */
const BOOTSTRAP_ACTOR = 'admin:bootstrap';

/** Operators, their one-time enrolment codes and their passkeys. */
export class OperatorDirectory {
  constructor(
    private readonly ctx: CeremonyContext,
    private readonly codeTtlSeconds: number,
    private readonly attestationRootsConfigured: boolean,
  ) {}

  async create(
    input: { id?: string | undefined; displayName: string; roles: string[] },
    actor: string,
  ): Promise<OperatorRecord> {
    const record: OperatorRecord = {
      id: input.id ?? newId('op'),
      displayName: input.displayName,
      roles: [...new Set(input.roles)],
      webauthnUserId: randomBytes(32).toString('base64url'),
      createdAt: this.ctx.clock(),
      failedAttempts: 0,
      revokedAt: null,
      revokedReason: null,
    };
    await this.ctx.events.atomically(async (uow) => {
      // Under the backend chain head: two nodes creating the same id one after the other, so the
      // second finds the first (OPERATOR_ID_TAKEN) instead of failing on the key (an internal error).
      await uow.store.events.lockHead(BACKEND_ORIGIN);
      if ((await uow.store.operators.get(record.id)) !== undefined) {
        throw new BatonError('OPERATOR_ID_TAKEN', `An operator "${record.id}" already exists`);
      }
      await uow.store.operators.insert(record);
      await uow.record({
        type: 'operator-created',
        subject: { operator: record.id },
        outcome: 'success',
        reasons: [],
        detail: { actor, roles: record.roles.join(' ') },
      });
    });
    return record;
  }

  async get(id: string): Promise<OperatorRecord> {
    const operator = await this.ctx.store.operators.get(id);
    if (operator === undefined) throw new BatonError('OPERATOR_UNKNOWN', `No operator "${id}"`);
    return operator;
  }

  list(): Promise<OperatorRecord[]> {
    return this.ctx.store.operators.list();
  }

  /** Clears the failed-attempt counter of a locked operator (NIST 800-63B: 100 failures lock). */
  async unlock(operatorId: string, actor: string): Promise<OperatorRecord> {
    const operator = await this.get(operatorId);
    await this.ctx.events.atomically(async (uow) => {
      await uow.store.operators.resetFailures(operatorId);
      await uow.record({
        type: 'admin-action',
        subject: { operator: operatorId },
        outcome: 'success',
        reasons: ['operator-unlocked'],
        detail: { actor, failedAttempts: operator.failedAttempts },
      });
    });
    return { ...operator, failedAttempts: 0 };
  }

  /**
   * Lifts the suspension a signature-counter regression put on a passkey, after an admin reviewed it.
   * The stored counter stays where it was: the authenticator that keeps counting up from it works
   * again; a copy that lags behind is refused (and suspends the passkey) again.
   */
  reinstateCredential(credentialId: string, reason: string, actor: string): Promise<CredentialSummary> {
    return this.ctx.events.atomically(async (uow) => {
      const credential = await uow.store.operators.getCredential(credentialId);
      if (credential === undefined) throw new BatonError('NOT_FOUND', `No credential "${credentialId}"`);
      if (credential.revokedAt !== null) {
        throw new BatonError('CREDENTIAL_REVOKED', 'This credential is revoked: it cannot be reinstated');
      }
      if (!(await uow.store.operators.reinstateCredential(credentialId))) {
        throw new BatonError('CREDENTIAL_NOT_SUSPENDED', 'This credential is not suspended');
      }
      await uow.record({
        type: 'admin-action',
        subject: { operator: credential.operatorId, credential: credentialId },
        outcome: 'success',
        reasons: ['credential-reinstated'],
        detail: { actor, reason, suspendedAt: credential.suspendedAt, suspendedReason: credential.suspendedReason },
      });
      return credentialSummary({ ...credential, suspendedAt: null, suspendedReason: null });
    });
  }

  /** Passkeys suspended as possible copies, with whose they are: the admin console raises them. */
  async suspendedCredentials(): Promise<(CredentialSummary & { operatorId: string; operatorName: string })[]> {
    const suspended = await this.ctx.store.operators.listSuspendedCredentials();
    const names = new Map<string, string>();
    for (const id of new Set(suspended.map((c) => c.operatorId))) {
      names.set(id, (await this.ctx.store.operators.get(id))?.displayName ?? id);
    }
    return suspended.map((c) => ({
      ...credentialSummary(c),
      operatorId: c.operatorId,
      operatorName: names.get(c.operatorId) ?? c.operatorId,
    }));
  }

  async credentials(operatorId: string): Promise<CredentialSummary[]> {
    await this.get(operatorId);
    return (await this.ctx.store.operators.listCredentials(operatorId)).map((c) => ({
      ...credentialSummary(c),
      /** The model as the FIDO metadata BLOB names it; null when no BLOB is loaded or it does not list it. */
      authenticator: this.ctx.authenticators.describe(c.aaguid) ?? null,
    }));
  }

  async issueCode(
    operatorId: string,
    ttlSeconds: number | undefined,
    actor: string,
  ): Promise<{ code: string; expiresAt: number }> {
    const operator = await this.get(operatorId);
    if (operator.revokedAt !== null) throw new BatonError('OPERATOR_REVOKED', `Operator "${operatorId}" is revoked`);
    const code = newEnrolmentCode();
    const now = this.ctx.clock();
    const expiresAt = now + (ttlSeconds ?? this.codeTtlSeconds) * 1000;
    await this.ctx.events.atomically(async (uow) => {
      if (actor === BOOTSTRAP_ACTOR) {
        // The bootstrap token was checked when the request arrived; the first admin passkey may have
        // been registered since, on any node, retiring the token and every code it minted. Under the
        // backend chain head (which that registration takes first), it is checked again: a code
        // minted here after the retirement would outlive it.
        await uow.store.events.lockHead(BACKEND_ORIGIN);
        if (await uow.store.admin.adminPasskeyExists()) {
          throw new BatonError(
            'ADMIN_BOOTSTRAP_DISABLED',
            'The bootstrap token was disabled when the first admin registered a passkey; sign in to the admin console',
          );
        }
      }
      await uow.store.operators.insertCode({
        hash: sha256Hex(code),
        operatorId,
        issuedBy: actor,
        issuedAt: now,
        expiresAt,
        usedAt: null,
      });
      await uow.record({
        type: 'operator-enrolment-code-issued',
        subject: { operator: operatorId },
        outcome: 'success',
        reasons: [],
        detail: { actor, expiresAt },
      });
    });
    return { code, expiresAt };
  }

  /** Step one of passkey registration on a console: check the code and issue creation options. */
  async registrationOptions(console: ConsoleRecord, typedCode: string) {
    const { record, hash } = await usableEnrolmentCode(this.ctx.store, typedCode, this.ctx.clock());
    const operator = await this.get(record.operatorId);
    if (operator.revokedAt !== null) throw new BatonError('OPERATOR_REVOKED', `Operator "${operator.id}" is revoked`);
    const rules = this.ctx.policies.policy.credentials;
    const challenge = await this.ctx.challenges.create({
      purpose: 'registration',
      consoleId: console.id,
      codeHash: hash,
      operatorId: operator.id,
    });
    const options = await this.ctx.ceremonies.registrationOptions({
      challenge,
      userId: Buffer.from(operator.webauthnUserId, 'base64url'),
      userName: operator.id,
      displayName: operator.displayName,
      userVerification: rules.userVerification,
      attestation: rules.attestation,
      exclude: (await this.ctx.store.operators.listCredentials(operator.id)).map((c) => ({
        id: c.id,
        transports: c.transports,
      })),
    });
    return { options, operator: { id: operator.id, displayName: operator.displayName } };
  }

  /**
   * Step two: verify the new credential against the policy's credential rules and store it. With
   * `signIn` (the console route gives the session service), the registration also signs the operator
   * in, in the same unit of work, when a sign-in with that key would be allowed
   * (`SessionService.enrolmentSignIn`): the session rests on this verified registration of that very
   * key, at the level its flags and attestation give. Otherwise `signInRefused` says why not.
   */
  async register(
    console: ConsoleRecord,
    typedCode: string,
    response: RegistrationResponseJSON,
    signIn?: Pick<SessionService, 'enrolmentSignIn' | 'establishAtEnrolment'>,
  ): Promise<{
    operatorId: string;
    displayName: string;
    credential: CredentialSummary;
    signIn?: AuthenticatedSession;
    signInRefused?: { code: string; message: string };
  }> {
    const client = readClientData(response.response.clientDataJSON);
    const context = await this.ctx.challenges.consume(client.challenge, console.id);
    const { record, hash } = await usableEnrolmentCode(this.ctx.store, typedCode, this.ctx.clock());
    if (context.purpose !== 'registration' || context.codeHash !== hash) {
      throw new BatonError('CHALLENGE_UNKNOWN', 'The challenge was not issued for this enrolment code');
    }
    const operator = await this.get(record.operatorId);
    if (operator.revokedAt !== null) throw new BatonError('OPERATOR_REVOKED', `Operator "${operator.id}" is revoked`);
    const rules = this.ctx.policies.policy.credentials;
    const refuse = async (
      code:
        | 'CREDENTIAL_NOT_DEVICE_BOUND'
        | 'CREDENTIAL_AAGUID_NOT_ALLOWED'
        | 'CREDENTIAL_ALREADY_REGISTERED'
        | AuthenticatorRefusal['code'],
      message: string,
      aaguid: string,
    ): Promise<never> => {
      await this.ctx.events.record({
        type: 'credential-change',
        subject: { operator: operator.id, console: console.id },
        outcome: 'failure',
        reasons: [code.toLowerCase().replace(/_/g, '-')],
        detail: {
          credential_type: 'fido2-roaming',
          change_type: 'create',
          fido2_aaguid: aaguid,
          ...this.ctx.authenticators.eventDetail(aaguid),
        },
      });
      throw new BatonError(code, message);
    };
    const info = await this.ctx.ceremonies.verifyRegistration(
      response,
      client.challenge,
      rules.userVerification === 'required',
    );
    const deviceBound = info.credentialDeviceType === 'singleDevice';
    if (rules.deviceBoundOnly && !deviceBound) {
      await refuse(
        'CREDENTIAL_NOT_DEVICE_BOUND',
        'Policy allows device-bound credentials only; this one can be synced',
        info.aaguid,
      );
    }
    const trust = attestationTrust(info.fmt, info.attestationObject, this.attestationRootsConfigured);
    if (rules.aaguidAllowList.length > 0 && (trust !== 'certificate' || !rules.aaguidAllowList.includes(info.aaguid))) {
      await refuse(
        'CREDENTIAL_AAGUID_NOT_ALLOWED',
        `Authenticator model ${info.aaguid} (${info.fmt} attestation, ${trust}) is not on the allow-list, or its attestation is not verified by a certificate chain to a configured root`,
        info.aaguid,
      );
    }
    const model = this.ctx.authenticators.registrationRefusal(info.aaguid, trust, rules);
    if (model !== undefined) await refuse(model.code, model.message, info.aaguid);
    if ((await this.ctx.store.operators.getCredential(info.credential.id)) !== undefined) {
      await refuse('CREDENTIAL_ALREADY_REGISTERED', 'This credential is already registered', info.aaguid);
    }
    const now = this.ctx.clock();
    const credential = newCredentialRecord(info, response, {
      operatorId: operator.id,
      deviceBound,
      trust,
      registeredOn: console.id,
      now,
      usedNow: false,
    });
    const created = credentialCreatedEvent(
      credential,
      { operator: operator.id, console: console.id },
      [],
      info.fmt,
      this.ctx.authenticators.eventDetail(info.aaguid),
    );
    const enrolled: EventDraft = {
      type: 'operator-enrolled',
      subject: { operator: operator.id, console: console.id, credential: credential.id },
      outcome: 'success',
      reasons: [],
    };
    const registered = { operatorId: operator.id, displayName: operator.displayName };
    const plan = await signIn?.enrolmentSignIn(console, operator, {
      userVerified: info.userVerified,
      deviceBound,
      attested: trust === 'certificate',
      aaguid: info.aaguid,
    });
    if (signIn !== undefined && plan !== undefined && !('refused' in plan)) {
      // The code is taken after the chain head (the registration's first event takes it), as below.
      const session = await signIn.establishAtEnrolment(console, operator, credential, plan, async (uow) => {
        await uow.record(created);
        if (!(await uow.store.operators.useCode(hash, now, credential.id))) {
          throw new BatonError('ENROLMENT_CODE_USED', 'This enrolment code was already used');
        }
        await uow.record(enrolled);
      });
      return { ...registered, credential: credentialSummary({ ...credential, lastUsedAt: now }), signIn: session };
    }
    await this.ctx.events.atomically(async (uow) => {
      // The backend chain head first, as an admin-console registration takes it (admin-ceremonies.ts):
      // that one may retire this very code, and taking the code first would deadlock on PostgreSQL.
      await uow.store.events.lockHead(BACKEND_ORIGIN);
      if (!(await uow.store.operators.useCode(hash, now, credential.id))) {
        throw new BatonError('ENROLMENT_CODE_USED', 'This enrolment code was already used');
      }
      await uow.store.operators.insertCredential(credential);
      await uow.record(created);
      await uow.record(enrolled);
    });
    return {
      ...registered,
      credential: credentialSummary(credential),
      ...(plan !== undefined && 'refused' in plan ? { signInRefused: plan.refused } : {}),
    };
  }
}

/**
 * The enrolment code an operator typed, if it can still be used: well-formed, known (by its hash),
 * unused and unexpired. Console enrolment and the admin console's passkey registration both start here.
 */
export async function usableEnrolmentCode(
  store: Store,
  typed: string,
  now: number,
): Promise<{ record: EnrolmentCodeRecord; hash: string }> {
  const code = normaliseEnrolmentCode(typed);
  if (!ENROLMENT_CODE_PATTERN.test(code)) {
    throw new BatonError('ENROLMENT_CODE_INVALID', 'Expected an enrolment code like ABCD-EFGH-JKLM-NPQR');
  }
  const hash = sha256Hex(code);
  const record = await store.operators.getCode(hash);
  if (record === undefined) throw new BatonError('ENROLMENT_CODE_INVALID', 'This enrolment code is not known');
  if (record.usedAt !== null) throw new BatonError('ENROLMENT_CODE_USED', 'This enrolment code was already used');
  if (record.expiresAt <= now) throw new BatonError('ENROLMENT_CODE_EXPIRED', 'This enrolment code has expired');
  return { record, hash };
}

type VerifiedRegistration = Awaited<ReturnType<WebAuthnCeremonies['verifyRegistration']>>;

/** The stored record of a passkey just registered (on a console, or on the admin console). */
export function newCredentialRecord(
  info: VerifiedRegistration,
  response: RegistrationResponseJSON,
  at: {
    operatorId: string;
    deviceBound: boolean;
    trust: AttestationTrust;
    registeredOn: string;
    now: number;
    usedNow: boolean;
  },
): CredentialRecord {
  return {
    id: info.credential.id,
    operatorId: at.operatorId,
    publicKey: info.credential.publicKey,
    counter: info.credential.counter,
    transports: info.credential.transports ?? response.response.transports ?? [],
    deviceBound: at.deviceBound,
    backedUp: info.credentialBackedUp,
    aaguid: info.aaguid,
    attestationFmt: info.fmt,
    attestationTrust: at.trust,
    registeredOnConsole: at.registeredOn,
    createdAt: at.now,
    lastUsedAt: at.usedNow ? at.now : null,
    revokedAt: null,
    revokedReason: null,
    suspendedAt: null,
    suspendedReason: null,
  };
}

/** CAEP `credential-change` (create) for a passkey just registered. */
export function credentialCreatedEvent(
  credential: CredentialRecord,
  subject: { operator: string; console?: string },
  reasons: string[],
  attestation: string,
  /** What the FIDO metadata says about the model (`authenticator_model`, …), when it knows it. */
  authenticator: Record<string, string> = {},
): EventDraft {
  return {
    type: 'credential-change',
    subject: { ...subject, credential: credential.id },
    outcome: 'success',
    reasons,
    detail: {
      credential_type: 'fido2-roaming',
      change_type: 'create',
      fido2_aaguid: credential.aaguid,
      attestation,
      deviceBound: credential.deviceBound,
      ...authenticator,
    },
  };
}
