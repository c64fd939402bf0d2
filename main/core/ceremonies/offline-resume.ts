import { verifyAuthenticationResponse, type AuthenticationResponseJSON } from '@simplewebauthn/server';
import { decodeClientDataJSON } from '@simplewebauthn/server/helpers';
import type { ErrorCode } from '../../../shared/errors.js';
import { SIGN_IN_ACTION, evaluatePolicy } from '../../../shared/evaluate-policy.js';
import { levelFromAuthentication, type AssuranceLevel } from '../../../shared/levels.js';
import type { Policy } from '../../../shared/policy.js';
import { webauthnRefusalCode } from '../../../shared/webauthn-errors.js';
import type { AgentSession } from '../session-manager.js';

/** A locally generated offline challenge is good for one assertion within this time. */
export const OFFLINE_CHALLENGE_TTL_MS = 120_000;

export const OFFLINE_SIGN_IN_REFUSED_MESSAGE =
  'The backend cannot be reached: new sign-ins must wait; only an operator already signed in here can resume, for a short while';

export interface OfflineResumeInput {
  response: AuthenticationResponseJSON;
  /** The challenge this ceremony issued (base64url) and the monotonic time it stops being good. */
  challenge: string;
  challengeExpiresAt: number;
  /** Wall and monotonic time of the check. */
  now: number;
  monotonic: number;
  /** Sessions that may resume offline now, and every session the console holds. */
  resumable: readonly AgentSession[];
  known: readonly AgentSession[];
  policy: Policy;
  channel: string;
  rpId: string;
  origin: string;
}

export type OfflineResumeVerdict =
  | { ok: true; session: AgentSession; level: AssuranceLevel; newCounter: number }
  | {
      ok: false;
      code: ErrorCode;
      message: string;
      /** The `sign-in-failed` event's reason, and the operator it concerns when known. */
      reason: string;
      operatorId: string | undefined;
    };

/**
 * Verifies a tap that resumes a session while the backend is unreachable, with no side effects:
 * the challenge must be this ceremony's own and fresh, the credential must belong to a session that
 * may resume offline, the signature must verify against the public key the backend vouched for at
 * sign-in, and the level the tap proves must be allowed to sign in on the channel.
 */
export async function verifyOfflineResume(input: OfflineResumeInput): Promise<OfflineResumeVerdict> {
  const { response } = input;
  const refuse = (code: ErrorCode, reason: string, message: string, operatorId?: string): OfflineResumeVerdict => ({
    ok: false,
    code,
    message,
    reason,
    operatorId,
  });
  // Single use and bound to this ceremony: the challenge is spent whatever the outcome.
  if (
    readChallenge(response.response.clientDataJSON) !== input.challenge ||
    input.monotonic > input.challengeExpiresAt
  ) {
    return refuse('CHALLENGE_UNKNOWN', 'challenge-unknown', 'The tap answered a challenge this console did not issue');
  }
  const session = input.resumable.find((s) => s.credentialId === response.id);
  if (session === undefined) {
    const known = input.known.find((s) => s.credentialId === response.id);
    if (known === undefined) {
      return refuse('OFFLINE_SIGN_IN_REFUSED', 'offline-sign-in-refused', OFFLINE_SIGN_IN_REFUSED_MESSAGE);
    }
    return refuse(
      'OFFLINE_RESUME_REFUSED',
      'offline-grace-elapsed',
      'This session was left too long ago to be resumed while the backend is unreachable; it resumes once the backend is back',
      known.operatorId,
    );
  }
  let verification;
  try {
    verification = await verifyAuthenticationResponse({
      response,
      expectedChallenge: input.challenge,
      expectedOrigin: input.origin,
      expectedRPID: input.rpId,
      credential: {
        id: session.credentialId,
        publicKey: Buffer.from(session.publicKey, 'base64url'),
        counter: session.counter,
      },
      requireUserVerification: input.policy.credentials.userVerification === 'required',
    });
  } catch (cause) {
    const message = cause instanceof Error ? cause.message : 'verification failed';
    // The same stable code the backend gives the same cause (shared/webauthn-errors.ts).
    const code = webauthnRefusalCode(cause);
    return refuse(
      code,
      code.toLowerCase().replace(/_/g, '-'),
      `The tap could not be verified on this console: ${message}`,
      session.operatorId,
    );
  }
  if (!verification.verified) {
    return refuse(
      'WEBAUTHN_VERIFICATION_FAILED',
      'webauthn-verification-failed',
      'The tap could not be verified',
      session.operatorId,
    );
  }
  const info = verification.authenticationInfo;
  // The backend's own rule (shared/levels.ts). A session at `hardware` proves the backend found this
  // credential device-bound, attested and allow-listed at sign-in; the flags of this tap say the rest.
  const hardwareCredential = session.level === 'hardware';
  const level = levelFromAuthentication({
    userVerified: info.userVerified,
    deviceBound: hardwareCredential && info.credentialDeviceType === 'singleDevice',
    attested: hardwareCredential,
    aaguidAllowed: hardwareCredential,
  });
  const allowed = evaluatePolicy(
    input.policy,
    { channel: input.channel, level, authTime: input.now, now: input.now },
    SIGN_IN_ACTION,
  );
  if (allowed.outcome !== 'allow') {
    return refuse(
      'LEVEL_NOT_ALLOWED_ON_CHANNEL',
      'level-not-allowed-on-channel',
      `Level "${level}" may not sign in on this channel`,
      session.operatorId,
    );
  }
  return { ok: true, session, level, newCounter: info.newCounter };
}

/** The challenge a response answers, read with the library's own decoder; undefined when unreadable. */
function readChallenge(clientDataJSON: string): string | undefined {
  try {
    const parsed = decodeClientDataJSON(clientDataJSON) as { challenge?: unknown } | null;
    return typeof parsed?.challenge === 'string' ? parsed.challenge : undefined;
  } catch {
    return undefined;
  }
}
