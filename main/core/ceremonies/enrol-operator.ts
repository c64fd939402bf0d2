import type { PublicKeyCredentialCreationOptionsJSON } from '@simplewebauthn/server';
import type { CeremonyPort } from '../agent-types.js';
import type { BackendClient } from '../backend-client.js';
import type { AgentSession, SessionManager } from '../session-manager.js';
import { askCredential } from './authenticator.js';

export interface EnrolOperatorDeps {
  client: Pick<BackendClient, 'call'>;
  port: CeremonyPort;
  sessions: Pick<SessionManager, 'signedIn'>;
  /** The registration signed the operator in: called just before the session comes to the front (CeremonyGate's settle). */
  settle?: () => void;
  /**
   * False: register the key only, no session (a key provisioned ahead of the operator's first day,
   * and the tests' fixtures). The operator UI always signs in.
   */
  signIn?: boolean;
}

export interface EnrolOperatorResult {
  operatorId: string;
  displayName: string;
  /** The session the registration started, now in front. */
  session?: AgentSession;
  /** The key is registered but no session started (the channel refuses its level, a locked operator…): why. */
  signInRefused?: { code: string; message: string };
}

/**
 * First-time operator enrolment with the code an admin issued: the backend's options, a new passkey
 * from the operator's authenticator, and the backend's verification, which also signs the operator
 * in (issue 12: one tap, not two). The session rests on that verified registration of the very key
 * just registered: the backend derives its level from the registration as from a sign-in's assertion
 * (user verification, device-bound, attestation), applies the channel's sign-in rules and records it
 * (`session-established`, reason `operator-enrolled`); the agent brings it to the front as a tap-in's.
 * Needs the backend.
 */
export async function enrolOperator(deps: EnrolOperatorDeps, code: string): Promise<EnrolOperatorResult> {
  const { options, operator } = await deps.client.call('operatorEnrolOptions', {}, { code });
  const response = await askCredential(
    deps.port,
    operator.displayName,
    options as unknown as PublicKeyCredentialCreationOptionsJSON,
  );
  const result = await deps.client.call('operatorEnrolVerify', {}, { code, response, signIn: deps.signIn !== false });
  const registered = { operatorId: result.operatorId, displayName: result.displayName };
  if (result.signIn === undefined) {
    return { ...registered, ...(result.signInRefused === undefined ? {} : { signInRefused: result.signInRefused }) };
  }
  deps.settle?.();
  return { ...registered, session: deps.sessions.signedIn(result.signIn) };
}
