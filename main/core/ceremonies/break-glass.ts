import type { AuthenticationResponseJSON, PublicKeyCredentialRequestOptionsJSON } from '@simplewebauthn/server';
import { BatonError } from '../../../shared/errors.js';
import { AuthenticationResponseSchema } from '../../../shared/http-api.js';
import type { BreakGlassMark } from '../../../shared/ipc.js';
import type { CeremonyPort } from '../agent-types.js';
import type { BackendClient } from '../backend-client.js';
import type { AgentSession, SessionManager } from '../session-manager.js';

/**
 * What the operator UI learns of a break-glass session: its terms, never its token (shared/ipc.ts
 * `BreakGlassMark`: how and by whom it was approved, the only actions it may perform, its end).
 */
export type BreakGlassTerms = BreakGlassMark;

export interface BreakGlassDeps {
  client: Pick<BackendClient, 'call'>;
  sessions: Pick<SessionManager, 'signedIn' | 'all'>;
  port: CeremonyPort;
  /** The backend started the session: called just before it comes to the front (CeremonyGate's settle). */
  settle?: () => void;
}

/** The break-glass answer of the backend (redeem or approve), as both routes give it. */
interface Started {
  session: Parameters<SessionManager['signedIn']>[0]['session'];
  token: string;
  tokenExpiresAt: number;
  breakGlass: {
    grantId: string;
    actions: string[];
    expiresAt: number;
    method?: string;
    approvedBy?: string;
    approverName?: string;
  };
}

/**
 * An operator without their key, by a supervisor's tap on this console (issue 14 item 7): the
 * backend opens a request for the operator id they typed and gives the options of the supervisor's
 * ceremony (user verification required); the supervisor touches their own key; the backend checks
 * it is a live supervisor's, not the operator's own, within the policy's limits, and starts the
 * capped session, which comes to the front. Online only: nothing here can be decided offline.
 */
export async function breakGlassBySupervisor(
  deps: BreakGlassDeps,
  operatorId: string,
): Promise<{ session: AgentSession; breakGlass: BreakGlassTerms }> {
  const request = await deps.client.call('breakGlassRequest', {}, { operatorId });
  const response = await askSupervisor(
    deps.port,
    request.options as unknown as PublicKeyCredentialRequestOptionsJSON,
    operatorId,
  );
  const started = await deps.client.call('breakGlassApprove', { id: request.requestId }, { response });
  return bringToFront(deps, started as unknown as Started);
}

/** An operator without their key, with the one-time code IT issued for them on this console. */
export async function breakGlassByCode(
  deps: BreakGlassDeps,
  operatorId: string,
  code: string,
): Promise<{ session: AgentSession; breakGlass: BreakGlassTerms }> {
  const started = await deps.client.call('breakGlassRedeem', {}, { operatorId, code });
  return bringToFront(deps, started as unknown as Started);
}

/**
 * The capped session comes to the front as a sign-in's does. The backend suspended this console's
 * other active sessions; the session rests on no passkey (its credential is the grant), so nothing
 * can resume it offline.
 */
function bringToFront(deps: BreakGlassDeps, started: Started): { session: AgentSession; breakGlass: BreakGlassTerms } {
  // The session is marked as what it is for as long as it lives, from its first status: the operator
  // UI's level line and the workspace's assurance say temporary access, never a key's sign-in (issue 14).
  const breakGlass: BreakGlassTerms = {
    method: started.breakGlass.method === 'supervisor-tap' ? 'supervisor-tap' : 'admin-code',
    approvedBy: started.breakGlass.approvedBy ?? '',
    // The supervisor's name as the backend sent it with the grant: the kiosk never looks anyone up.
    ...(started.breakGlass.approverName === undefined ? {} : { approverName: started.breakGlass.approverName }),
    actions: started.breakGlass.actions,
    expiresAt: started.breakGlass.expiresAt,
  };
  deps.settle?.();
  const suspended = deps.sessions.all
    .filter((s) => s.id !== started.session.id && (s.state === 'active' || s.state === 'stepped-up'))
    .map((s) => s.id);
  const session = deps.sessions.signedIn({
    session: started.session,
    resumed: false,
    token: started.token,
    tokenExpiresAt: started.tokenExpiresAt,
    credential: { id: started.breakGlass.grantId, publicKey: '', counter: 0 },
    suspended,
    evicted: [],
    breakGlass,
  });
  return { session, breakGlass };
}

/** The supervisor's half through the ceremony port, checked before use (a cancel or timeout is CEREMONY_CANCELLED). */
async function askSupervisor(
  port: CeremonyPort,
  options: PublicKeyCredentialRequestOptionsJSON,
  operatorId: string,
): Promise<AuthenticationResponseJSON> {
  let response: unknown;
  try {
    response = await port.getAssertion({ purpose: 'break-glass', options, operatorName: operatorId });
  } catch (cause) {
    if (cause instanceof BatonError) throw cause;
    throw new BatonError('CEREMONY_CANCELLED', 'The supervisor’s tap was cancelled or timed out', { cause });
  }
  const checked = AuthenticationResponseSchema.safeParse(response);
  if (!checked.success) throw new BatonError('CEREMONY_CANCELLED', 'The authenticator gave an unusable answer');
  return checked.data as AuthenticationResponseJSON;
}
