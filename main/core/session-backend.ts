import { BatonError } from '../../shared/errors.js';
import { enrolledConsoleId, type AgentContext } from './agent-context.js';
import { assuranceOf, type AgentSession, type FinalState } from './session-manager.js';

/** Answers to a token refresh that mean "no token for this session" (any other failure is retried). */
export const TOKEN_REFUSALS: ReadonlySet<string> = new Set([
  'SESSION_NOT_ACTIVE',
  'SESSION_UNKNOWN',
  'OPERATOR_REVOKED',
  'CREDENTIAL_REVOKED',
  'CREDENTIAL_SUSPENDED',
  'CONSOLE_REVOKED',
  'CONSOLE_UNKNOWN',
]);

/**
 * Asks the backend for a fresh token for the session in front (due two thirds into the token's
 * life). Offline it waits for the backend; unreachable, it tries again shortly; refused (the
 * session is not active there, its operator or passkey is revoked), the session keeps no token.
 */
export async function refreshToken(ctx: AgentContext, sessionId: string): Promise<void> {
  const runtime = ctx.runtime;
  if (runtime === undefined || ctx.sync.connection !== 'online') return;
  const { client, sessions } = runtime;
  try {
    const result = await client.call('sessionToken', { id: sessionId }, {});
    sessions.tokenRefreshed(sessionId, result.token, result.tokenExpiresAt, result.serverTime);
  } catch (error) {
    const code = error instanceof BatonError ? error.code : 'INTERNAL';
    if (!TOKEN_REFUSALS.has(code)) {
      // Unreachable or a passing fault: try again shortly (the token is withheld once it ends).
      sessions.tokenRefreshFailed(sessionId);
      return;
    }
    ctx.logger.warn({ code, session: sessionId }, 'the backend refused a fresh assurance token');
    sessions.tokenRefused(sessionId);
  }
}

/**
 * A session ended on this console (signed out, idle, expired): the backend ends it too when it can
 * be reached; otherwise, or when the call fails in passing, the ending is journaled instead.
 */
export function sessionEndedLocally(ctx: AgentContext, session: AgentSession, state: FinalState, reason: string): void {
  const client = ctx.runtime?.client;
  const consoleId = enrolledConsoleId(ctx);
  const journal = () =>
    void ctx.record({
      type: state === 'expired' ? 'session-expired' : 'session-ended',
      subject: {
        operator: session.operatorId,
        session: session.id,
        ...(consoleId === undefined ? {} : { console: consoleId }),
      },
      assurance: assuranceOf(session.level, session.authTime),
      outcome: 'info',
      reasons: [reason],
    });
  if (client === undefined || ctx.sync.connection !== 'online') {
    journal();
    return;
  }
  const endReason = state === 'expired' ? 'expired' : reason === 'idle-timeout' ? 'idle-timeout' : 'sign-out';
  client.call('sessionEnd', { id: session.id }, { reason: endReason }).catch((error: unknown) => {
    // Already ended on the backend (revoked, expired there): nothing to add. Unreachable: journal it.
    if (error instanceof BatonError && (error.code === 'SESSION_NOT_ACTIVE' || error.code === 'SESSION_UNKNOWN'))
      return;
    journal();
  });
}
