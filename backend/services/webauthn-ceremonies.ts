import { createHash, randomBytes } from 'node:crypto';
import {
  generateAuthenticationOptions,
  generateRegistrationOptions,
  verifyAuthenticationResponse,
  verifyRegistrationResponse,
} from '@simplewebauthn/server';
import { decodeAttestationObject } from '@simplewebauthn/server/helpers';
import type {
  AuthenticationResponseJSON,
  PublicKeyCredentialCreationOptionsJSON,
  PublicKeyCredentialRequestOptionsJSON,
  RegistrationResponseJSON,
  WebAuthnCredential,
} from '@simplewebauthn/server';
import { BatonError } from '../../shared/errors.js';

/** What a challenge was issued for; the verify step reads it from here, never from the request. */
export type ChallengeContext =
  | { purpose: 'registration'; consoleId: string; codeHash: string; operatorId: string }
  | { purpose: 'sign-in'; consoleId: string }
  | { purpose: 'step-up'; consoleId: string; sessionId: string; action: string };

interface IssuedChallenge {
  context: ChallengeContext;
  expiresAt: number;
}

/** Outstanding challenges one console may hold; a new one beyond this evicts its oldest. */
export const MAX_CHALLENGES_PER_CONSOLE = 32;

/**
 * Single-use, expiring challenges (128 bits). A challenge is consumed even when verification fails.
 * Entries share one lifetime and a Map keeps insertion order, so expiry sweeps from the front and
 * stops at the first live one; each console holds at most `MAX_CHALLENGES_PER_CONSOLE`.
 */
export class ChallengeStore {
  private readonly issued = new Map<string, IssuedChallenge>();
  private readonly byConsole = new Map<string, string[]>();

  constructor(
    private readonly clock: () => number,
    private readonly ttlMs: number,
  ) {}

  create(context: ChallengeContext): string {
    this.sweep();
    const challenge = randomBytes(16).toString('base64url');
    this.issued.set(challenge, { context, expiresAt: this.clock() + this.ttlMs });
    let mine = this.byConsole.get(context.consoleId);
    if (mine === undefined) {
      mine = [];
      this.byConsole.set(context.consoleId, mine);
    }
    mine.push(challenge);
    while (mine.length > MAX_CHALLENGES_PER_CONSOLE) {
      const oldest = mine.shift();
      if (oldest !== undefined) this.issued.delete(oldest);
    }
    return challenge;
  }

  /** Removes and returns the challenge if this console was issued it; throws otherwise. */
  consume(challenge: string, consoleId: string): ChallengeContext {
    const entry = this.issued.get(challenge);
    if (entry === undefined || entry.context.consoleId !== consoleId) {
      throw new BatonError('CHALLENGE_UNKNOWN', 'The challenge was not issued to this console, or was already used');
    }
    this.forget(challenge, consoleId);
    if (entry.expiresAt <= this.clock()) throw new BatonError('CHALLENGE_EXPIRED', 'The challenge has expired');
    return entry.context;
  }

  get size(): number {
    return this.issued.size;
  }

  private forget(challenge: string, consoleId: string): void {
    this.issued.delete(challenge);
    const mine = this.byConsole.get(consoleId);
    if (mine === undefined) return;
    const at = mine.indexOf(challenge);
    if (at >= 0) mine.splice(at, 1);
    if (mine.length === 0) this.byConsole.delete(consoleId);
  }

  private sweep(): void {
    const now = this.clock();
    for (const [challenge, entry] of this.issued) {
      if (entry.expiresAt > now) break;
      this.forget(challenge, entry.context.consoleId);
    }
  }
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
    parsed = JSON.parse(Buffer.from(clientDataJSON, 'base64url').toString('utf8'));
  } catch (cause) {
    throw new BatonError('WEBAUTHN_VERIFICATION_FAILED', 'clientDataJSON is not JSON', { cause });
  }
  const data = parsed as Partial<Record<keyof ClientFacts, unknown>>;
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
}

/** Checks the RP ID hash and reads the flags of authenticatorData (WebAuthn §6.1). */
export function readAuthenticatorData(authData: Uint8Array, rpId: string): AuthenticatorFlags {
  if (authData.length < 37) throw new BatonError('WEBAUTHN_VERIFICATION_FAILED', 'authenticatorData is too short');
  const expected = createHash('sha256').update(rpId).digest();
  if (!expected.equals(Buffer.from(authData.subarray(0, 32)))) {
    throw new BatonError('WEBAUTHN_RP_ID_MISMATCH', `The authenticator signed for another RP ID than "${rpId}"`);
  }
  const flags = authData[32] ?? 0;
  return {
    userPresent: (flags & 0x01) !== 0,
    userVerified: (flags & 0x04) !== 0,
    backupEligible: (flags & 0x08) !== 0,
    backedUp: (flags & 0x10) !== 0,
  };
}

function authDataFromAttestation(attestationObject: string): Uint8Array {
  try {
    const decoded = decodeAttestationObject(Buffer.from(attestationObject, 'base64url'));
    return decoded.get('authData');
  } catch (cause) {
    throw new BatonError('WEBAUTHN_VERIFICATION_FAILED', 'attestationObject is not valid CBOR', { cause });
  }
}

function mapLibraryError(error: unknown): BatonError {
  const message = error instanceof Error ? error.message : String(error);
  if (/counter value/i.test(message)) {
    return new BatonError(
      'WEBAUTHN_COUNTER_REGRESSED',
      'The signature counter went backwards: possible cloned authenticator',
      {
        cause: error,
      },
    );
  }
  if (/user verification required/i.test(message)) {
    return new BatonError('WEBAUTHN_USER_VERIFICATION_REQUIRED', 'User verification was required but not performed', {
      cause: error,
    });
  }
  if (/origin/i.test(message)) return new BatonError('WEBAUTHN_ORIGIN_MISMATCH', message, { cause: error });
  if (/rp ?id/i.test(message)) return new BatonError('WEBAUTHN_RP_ID_MISMATCH', message, { cause: error });
  return new BatonError('WEBAUTHN_VERIFICATION_FAILED', `The WebAuthn response did not verify: ${message}`, {
    cause: error,
  });
}

export interface RelyingParty {
  rpId: string;
  rpName: string;
  origins: readonly string[];
  timeoutMs: number;
}

/** The relying-party half of each ceremony. Expected values come from configuration only. */
export class WebAuthnCeremonies {
  constructor(readonly rp: RelyingParty) {}

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

  /** Pre-checks origin and RP ID (for precise error codes), then verifies fully. */
  async verifyRegistration(response: RegistrationResponseJSON, challenge: string, requireUv: boolean) {
    const client = readClientData(response.response.clientDataJSON);
    this.checkOrigin(client.origin);
    readAuthenticatorData(authDataFromAttestation(response.response.attestationObject), this.rp.rpId);
    try {
      const result = await verifyRegistrationResponse({
        response,
        expectedChallenge: challenge,
        expectedOrigin: [...this.rp.origins],
        expectedRPID: this.rp.rpId,
        expectedType: 'webauthn.create',
        requireUserVerification: requireUv,
        supportedAlgorithmIDs: [-7, -8, -257],
      });
      if (!result.verified) throw new Error('registration not verified');
      return result.registrationInfo;
    } catch (error) {
      throw error instanceof BatonError ? error : mapLibraryError(error);
    }
  }

  async verifyAuthentication(
    response: AuthenticationResponseJSON,
    challenge: string,
    credential: WebAuthnCredential,
    requireUv: boolean,
  ) {
    const client = readClientData(response.response.clientDataJSON);
    this.checkOrigin(client.origin);
    const flags = readAuthenticatorData(Buffer.from(response.response.authenticatorData, 'base64url'), this.rp.rpId);
    try {
      const result = await verifyAuthenticationResponse({
        response,
        expectedChallenge: challenge,
        expectedOrigin: [...this.rp.origins],
        expectedRPID: this.rp.rpId,
        expectedType: 'webauthn.get',
        credential,
        requireUserVerification: requireUv,
      });
      if (!result.verified) throw new Error('authentication not verified');
      return { ...result.authenticationInfo, backupEligible: flags.backupEligible };
    } catch (error) {
      throw error instanceof BatonError ? error : mapLibraryError(error);
    }
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
