import type { PoolAuthenticationOpts, PoolRegistrationOpts, VerifyPool } from '../crypto/verify-pool.js';
import { Es256Assertions } from '../crypto/es256-assertions.js';
import { createHash, randomBytes } from 'node:crypto';
import {
  generateAuthenticationOptions,
  generateRegistrationOptions,
  verifyAuthenticationResponse,
  verifyRegistrationResponse,
} from '@simplewebauthn/server';
import {
  decodeAttestationObject,
  decodeClientDataJSON,
  isoBase64URL,
  parseAuthenticatorData,
} from '@simplewebauthn/server/helpers';
import type {
  AuthenticationResponseJSON,
  PublicKeyCredentialCreationOptionsJSON,
  PublicKeyCredentialRequestOptionsJSON,
  RegistrationResponseJSON,
  WebAuthnCredential,
} from '@simplewebauthn/server';
import { BatonError } from '../../shared/errors.js';
import { ceremonyRefusal, webauthnRefusalCode } from '../../shared/webauthn-errors.js';
import type { Store } from '../store/repositories.js';
import { SignedChallenges } from './signed-challenges.js';

/** What a challenge was issued for; the verify step reads it from here, never from the request. */
export type ChallengeContext =
  | { purpose: 'registration'; consoleId: string; codeHash: string; operatorId: string }
  | { purpose: 'sign-in'; consoleId: string }
  | { purpose: 'step-up'; consoleId: string; sessionId: string; action: string };

/** Outstanding challenges one console may hold; a new one beyond this evicts its oldest. */
export const MAX_CHALLENGES_PER_CONSOLE = 32;

/** The namespace of stored WebAuthn challenges (registration, step-up) in the store's ephemeral table. */
export const CHALLENGE_KIND = 'webauthn';

/** The purpose of console sign-in challenges (`SignedChallenges`: its HMAC key's meta name and its nonces' kind). */
export const SIGN_IN_CHALLENGE_PURPOSE = 'console-sign-in';

/**
 * Single-use, expiring challenges, valid on every node and consumed once whatever the number of
 * nodes. A challenge is consumed even when verification fails, and only by the console it was issued
 * to: another console presenting it neither uses nor burns it. Use it outside a unit of work: it
 * talks to the outer store.
 *
 * - **Sign-in** challenges are signed (`SignedChallenges`, purpose `console-sign-in`): a random
 *   nonce, its expiry and an HMAC over both and the console's id, under a key every node reads from
 *   the store's meta table. Issuing one writes nothing (the options request's one store write is its
 *   request nonce); presenting one checks the MAC and the expiry, then claims its nonce in
 *   `store.ephemeral` (`claimOnce`, cluster-wide) until it expires.
 * - **Registration and step-up** challenges (128 bits) carry a context (the enrolment code, the
 *   session and action) and are kept in the store (`take` deletes and returns in one statement),
 *   under the console they were issued to; each console holds at most `MAX_CHALLENGES_PER_CONSOLE`,
 *   the oldest dropped. Expired ones are deleted by the store's sweep (the server runs it).
 */
export class ChallengeStore {
  private readonly signInChallenges: SignedChallenges;

  constructor(
    private readonly store: Store,
    private readonly clock: () => number,
    private readonly ttlMs: number,
  ) {
    this.signInChallenges = new SignedChallenges({
      purpose: SIGN_IN_CHALLENGE_PURPOSE,
      ttlMs: () => ttlMs,
      clock,
      store,
      unknownMessage: 'The challenge was not issued to this console, or was already used',
    });
  }

  async create(context: ChallengeContext): Promise<string> {
    if (context.purpose === 'sign-in') return this.signInChallenges.issue(context.consoleId);
    const challenge = randomBytes(16).toString('base64url');
    await this.store.ephemeral.put(
      {
        kind: CHALLENGE_KIND,
        key: challengeKey(context.consoleId, challenge),
        owner: context.consoleId,
        value: JSON.stringify(context),
        expiresAt: this.clock() + this.ttlMs,
      },
      MAX_CHALLENGES_PER_CONSOLE,
    );
    return challenge;
  }

  /** Consumes the challenge if this console was issued it and returns what it was issued for; throws otherwise. */
  async consume(challenge: string, consoleId: string): Promise<ChallengeContext> {
    if (SignedChallenges.isSigned(challenge)) {
      await this.signInChallenges.consume(challenge, consoleId);
      return { purpose: 'sign-in', consoleId };
    }
    const entry = await this.store.ephemeral.take(CHALLENGE_KIND, challengeKey(consoleId, challenge));
    if (entry === undefined || entry.owner !== consoleId) {
      throw new BatonError('CHALLENGE_UNKNOWN', 'The challenge was not issued to this console, or was already used');
    }
    if (entry.expiresAt <= this.clock()) throw new BatonError('CHALLENGE_EXPIRED', 'The challenge has expired');
    const context = JSON.parse(entry.value) as ChallengeContext;
    if (context.consoleId !== consoleId) {
      throw new BatonError('CHALLENGE_UNKNOWN', 'The challenge was not issued to this console, or was already used');
    }
    return context;
  }
}

/** Challenges are keyed by console too: a challenge shown by another console finds nothing to take. */
function challengeKey(consoleId: string, challenge: string): string {
  return `${consoleId}:${challenge}`;
}

export interface ClientFacts {
  challenge: string;
  origin: string;
  type: string;
}

/** Reads clientDataJSON just enough to look up the challenge and report a precise error. */
export function readClientData(clientDataJSON: string): ClientFacts {
  let parsed: unknown;
  try {
    parsed = decodeClientDataJSON(clientDataJSON);
  } catch (cause) {
    throw new BatonError('WEBAUTHN_VERIFICATION_FAILED', 'clientDataJSON is not JSON', { cause });
  }
  const data = (typeof parsed === 'object' && parsed !== null ? parsed : {}) as Partial<
    Record<keyof ClientFacts, unknown>
  >;
  if (typeof data.challenge !== 'string' || typeof data.origin !== 'string' || typeof data.type !== 'string') {
    throw new BatonError('WEBAUTHN_VERIFICATION_FAILED', 'clientDataJSON lacks challenge, origin or type');
  }
  return { challenge: data.challenge, origin: data.origin, type: data.type };
}

export interface AuthenticatorFlags {
  userPresent: boolean;
  userVerified: boolean;
  backupEligible: boolean;
  backedUp: boolean;
  counter: number;
}

/** Checks the RP ID hash and reads the flags and counter of authenticatorData (WebAuthn §6.1). */
export function readAuthenticatorData(authData: Uint8Array, rpId: string): AuthenticatorFlags {
  let parsed: ReturnType<typeof parseAuthenticatorData>;
  try {
    parsed = parseAuthenticatorData(new Uint8Array(authData));
  } catch (cause) {
    throw new BatonError('WEBAUTHN_VERIFICATION_FAILED', 'authenticatorData cannot be read', { cause });
  }
  const expected = createHash('sha256').update(rpId).digest();
  if (!expected.equals(Buffer.from(parsed.rpIdHash))) {
    throw new BatonError('WEBAUTHN_RP_ID_MISMATCH', `The authenticator signed for another RP ID than "${rpId}"`);
  }
  return {
    userPresent: parsed.flags.up,
    userVerified: parsed.flags.uv,
    backupEligible: parsed.flags.be,
    backedUp: parsed.flags.bs,
    counter: parsed.counter,
  };
}

function authDataFromAttestation(attestationObject: string): Uint8Array {
  try {
    const decoded = decodeAttestationObject(isoBase64URL.toBuffer(attestationObject));
    return decoded.get('authData');
  } catch (cause) {
    throw new BatonError('WEBAUTHN_VERIFICATION_FAILED', 'attestationObject is not valid CBOR', { cause });
  }
}

/** Refuses, with its own code, a response that breaks a rule checkable before the signature. */
function checkCeremony(
  client: ClientFacts,
  flags: AuthenticatorFlags,
  type: 'webauthn.create' | 'webauthn.get',
  requireUv: boolean,
): void {
  const refusal = ceremonyRefusal(
    { type: client.type, userPresent: flags.userPresent, userVerified: flags.userVerified },
    { type, requireUserVerification: requireUv },
  );
  if (refusal !== undefined) throw new BatonError(refusal.code, refusal.message);
}

function mapLibraryError(error: unknown): BatonError {
  if (error instanceof BatonError) return error;
  const message = error instanceof Error ? error.message : String(error);
  const code = webauthnRefusalCode(error);
  return new BatonError(
    code,
    code === 'WEBAUTHN_VERIFICATION_FAILED' ? `The WebAuthn response did not verify: ${message}` : message,
    { cause: error },
  );
}

/**
 * A counter that did not move forward (WebAuthn §6.1.1): the stored counter and the new one are not
 * both zero, and the new one is not greater. Checked only after the signature verified, so nobody
 * without the private key can trigger it.
 */
export function counterRegressed(stored: number, received: number): boolean {
  return (stored > 0 || received > 0) && received <= stored;
}

export interface RelyingParty {
  rpId: string;
  rpName: string;
  origins: readonly string[];
  timeoutMs: number;
}

/** The relying-party half of each ceremony. Expected values come from configuration only. */
export class WebAuthnCeremonies {
  /**
   * The accept-only fast path for ES256 assertions (backend/crypto/es256-assertions.ts, ADR 0013): a
   * response it does not accept goes to the library, which decides and words every refusal.
   */
  readonly es256: Es256Assertions;

  constructor(
    readonly rp: RelyingParty,
    /**
     * Worker threads that run the signature checks off the event loop (backend/crypto/verify-pool.ts),
     * when the composition made one; absent, they run in this thread. Same results, same errors.
     */
    private readonly pool?: Pick<VerifyPool, 'verifyAuthentication' | 'verifyRegistration'>,
  ) {
    this.es256 = new Es256Assertions(rp.rpId, rp.origins);
  }

  registrationOptions(input: {
    challenge: string;
    userId: Uint8Array;
    userName: string;
    displayName: string;
    userVerification: 'required' | 'preferred';
    attestation: 'direct' | 'none';
    exclude: { id: string; transports: string[] }[];
  }): Promise<PublicKeyCredentialCreationOptionsJSON> {
    return generateRegistrationOptions({
      rpName: this.rp.rpName,
      rpID: this.rp.rpId,
      userName: input.userName,
      userID: new Uint8Array(input.userId),
      userDisplayName: input.displayName,
      challenge: new Uint8Array(Buffer.from(input.challenge, 'base64url')),
      timeout: this.rp.timeoutMs,
      attestationType: input.attestation,
      excludeCredentials: input.exclude,
      authenticatorSelection: { residentKey: 'required', userVerification: input.userVerification },
      supportedAlgorithmIDs: [-7, -8, -257],
    });
  }

  authenticationOptions(input: {
    challenge: string;
    userVerification: 'required' | 'preferred';
    allow?: { id: string; transports: string[] }[];
  }): Promise<PublicKeyCredentialRequestOptionsJSON> {
    return generateAuthenticationOptions({
      rpID: this.rp.rpId,
      challenge: new Uint8Array(Buffer.from(input.challenge, 'base64url')),
      timeout: this.rp.timeoutMs,
      userVerification: input.userVerification,
      ...(input.allow === undefined ? {} : { allowCredentials: input.allow }),
    });
  }

  /**
   * Pre-checks the ceremony type, origin, RP ID, user presence and user verification (each with its
   * own code), then verifies fully.
   */
  async verifyRegistration(response: RegistrationResponseJSON, challenge: string, requireUv: boolean) {
    const client = readClientData(response.response.clientDataJSON);
    this.checkOrigin(client.origin);
    const flags = readAuthenticatorData(authDataFromAttestation(response.response.attestationObject), this.rp.rpId);
    checkCeremony(client, flags, 'webauthn.create', requireUv);
    try {
      const opts: PoolRegistrationOpts = {
        response,
        expectedChallenge: challenge,
        expectedOrigin: [...this.rp.origins],
        expectedRPID: this.rp.rpId,
        expectedType: 'webauthn.create',
        requireUserVerification: requireUv,
        supportedAlgorithmIDs: [-7, -8, -257],
      };
      const result = this.pool ? await this.pool.verifyRegistration(opts) : await verifyRegistrationResponse(opts);
      if (!result.verified) throw new Error('registration not verified');
      return result.registrationInfo;
    } catch (error) {
      throw mapLibraryError(error);
    }
  }

  /**
   * Verifies an assertion against a stored credential. The signature is verified before the counter
   * is compared, so `WEBAUTHN_COUNTER_REGRESSED` always comes from the credential's private key (a
   * copy of it), never from someone who only knows the credential id.
   */
  async verifyAuthentication(
    response: AuthenticationResponseJSON,
    challenge: string,
    credential: WebAuthnCredential,
    requireUv: boolean,
  ) {
    // Only without a verification pool: where the composition made one (three cores or more), every
    // assertion keeps going through it, with its admission limit (BACKEND_BUSY) and its closing (SHUTTING_DOWN).
    const fast =
      this.pool === undefined
        ? await this.es256.verify(response, challenge, { ...credential, counter: 0 }, requireUv)
        : undefined;
    if (fast !== undefined)
      return this.checkedCounter(credential, { ...fast, backupEligible: fast.credentialDeviceType === 'multiDevice' });
    const client = readClientData(response.response.clientDataJSON);
    this.checkOrigin(client.origin);
    let authData: Uint8Array;
    try {
      authData = isoBase64URL.toBuffer(response.response.authenticatorData);
    } catch (cause) {
      throw new BatonError('WEBAUTHN_VERIFICATION_FAILED', 'authenticatorData is not base64url', { cause });
    }
    const flags = readAuthenticatorData(authData, this.rp.rpId);
    checkCeremony(client, flags, 'webauthn.get', requireUv);
    let info;
    try {
      const opts: PoolAuthenticationOpts = {
        response,
        expectedChallenge: challenge,
        expectedOrigin: [...this.rp.origins],
        expectedRPID: this.rp.rpId,
        expectedType: 'webauthn.get',
        // The counter is compared below, once the signature is known to be good.
        credential: { ...credential, counter: 0 },
        requireUserVerification: requireUv,
      };
      // A pool's BACKEND_BUSY / SHUTTING_DOWN are BatonErrors: mapLibraryError passes them on as they are.
      const result = this.pool ? await this.pool.verifyAuthentication(opts) : await verifyAuthenticationResponse(opts);
      if (!result.verified) throw new Error('authentication not verified');
      info = result.authenticationInfo;
    } catch (error) {
      throw mapLibraryError(error);
    }
    return this.checkedCounter(credential, { ...info, backupEligible: flags.backupEligible });
  }

  /** The verified assertion, unless its counter did not move forward from the stored one. */
  private checkedCounter<T extends { newCounter: number }>(credential: WebAuthnCredential, info: T): T {
    if (counterRegressed(credential.counter, info.newCounter)) {
      throw new BatonError(
        'WEBAUTHN_COUNTER_REGRESSED',
        `The signature counter went from ${credential.counter} to ${info.newCounter}: this looks like a copy of a registered key`,
        { extra: { storedCounter: credential.counter, receivedCounter: info.newCounter } },
      );
    }
    return info;
  }

  private checkOrigin(origin: string): void {
    if (!this.rp.origins.includes(origin)) {
      throw new BatonError(
        'WEBAUTHN_ORIGIN_MISMATCH',
        `The ceremony ran on origin "${origin}", which is not a pinned console origin`,
      );
    }
  }
}
