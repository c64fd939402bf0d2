import { randomBytes } from 'node:crypto';
import type { PublicKeyCredentialRequestOptionsJSON } from '@simplewebauthn/server';
import { BatonError } from '../../../shared/errors.js';
import type { EventDraft } from '../../../shared/events.js';
import type { Policy } from '../../../shared/policy.js';
import type { CeremonyPort } from '../agent-types.js';
import type { BackendClient } from '../backend-client.js';
import type { Clock } from '../clock.js';
import type { AgentSession, SessionManager } from '../session-manager.js';
import { askAssertion } from './authenticator.js';
import { OFFLINE_CHALLENGE_TTL_MS, OFFLINE_SIGN_IN_REFUSED_MESSAGE, verifyOfflineResume } from './offline-resume.js';

export interface TapInDeps {
  client: Pick<BackendClient, 'call'>;
  /** The challenge for an online tap: the one asked for ahead when usable, else a fresh one (ready-challenge.ts). */
  challenge: () => Promise<PublicKeyCredentialRequestOptionsJSON>;
  sessions: Pick<SessionManager, 'signedIn' | 'resumedOffline' | 'resumableOffline' | 'all' | 'offlineLimitReached'>;
  port: CeremonyPort;
  clock: Clock;
  consoleId: string;
  policy: Policy;
  channel: string;
  rpId: string;
  origin: string;
  record(draft: EventDraft): Promise<void>;
  /** 32 random bytes for an offline challenge (injected for tests). */
  randomChallenge?: () => string;
  /** The tap is verified: called just before its session comes to the front (CeremonyGate's settle). */
  settle?: () => void;
}

/** Online: the backend issues the challenge and verifies the tap; whoever tapped gets their session. */
export async function tapInOnline(deps: TapInDeps): Promise<AgentSession> {
  const response = await askAssertion(deps.port, 'sign-in', await deps.challenge());
  const result = await deps.client.call('signInVerify', {}, { response });
  deps.settle?.();
  return deps.sessions.signedIn(result);
}

/**
 * Offline: only a locked or suspended session inside the offline grace can be resumed, verified on
 * this console (verifyOfflineResume) against a challenge of its own. Every refusal is journaled.
 */
export async function tapInOffline(deps: TapInDeps): Promise<AgentSession> {
  const { sessions, clock } = deps;
  const failed = (reason: string, operatorId?: string) =>
    void deps.record({
      type: 'sign-in-failed',
      subject: { console: deps.consoleId, ...(operatorId === undefined ? {} : { operator: operatorId }) },
      outcome: 'failure',
      reasons: [reason],
    });
  if (sessions.offlineLimitReached) {
    // Past the channel's maxOfflineSeconds: only locking, until the backend is back (a revocation
    // issued meanwhile must not be held off by keeping the console's network cut).
    failed('offline-limit-reached');
    throw new BatonError(
      'OFFLINE_RESUME_REFUSED',
      'The backend has been unreachable for too long: nobody can resume on this console until it is back',
    );
  }
  if (!sessions.all.some((s) => s.state === 'locked' || s.state === 'suspended')) {
    failed('offline-sign-in-refused');
    throw new BatonError('OFFLINE_SIGN_IN_REFUSED', OFFLINE_SIGN_IN_REFUSED_MESSAGE);
  }
  // This ceremony's own challenge, good for its one answer: a tap signed for an earlier offline
  // ceremony (one that was cancelled, timed out or already answered) opens nothing.
  const challenge = deps.randomChallenge?.() ?? randomBytes(32).toString('base64url');
  const challengeExpiresAt = clock.monotonic() + OFFLINE_CHALLENGE_TTL_MS;
  // Usernameless, as online: whoever taps is identified by the key, and told plainly if it opens nothing here.
  const response = await askAssertion(deps.port, 'offline-resume', {
    challenge,
    rpId: deps.rpId,
    userVerification: deps.policy.credentials.userVerification,
    timeout: 60_000,
  });
  const verdict = await verifyOfflineResume({
    response,
    challenge,
    challengeExpiresAt,
    now: clock.now(),
    monotonic: clock.monotonic(),
    resumable: sessions.resumableOffline(),
    known: sessions.all,
    policy: deps.policy,
    channel: deps.channel,
    rpId: deps.rpId,
    origin: deps.origin,
  });
  if (!verdict.ok) {
    failed(verdict.reason, verdict.operatorId);
    throw new BatonError(verdict.code, verdict.message);
  }
  deps.settle?.();
  return sessions.resumedOffline(verdict.session.id, verdict.level, verdict.newCounter);
}
