import { ACCESS_TOKEN_TYPE, TOKEN_EXCHANGE_GRANT } from '../../shared/action-tokens.js';
import { BatonError } from '../../shared/errors.js';
import { LEVEL_PROFILES } from '../../shared/levels.js';
import { appForAudience, appServesWorkspace } from '../../shared/policy.js';
import type { IpcRequest, IpcResponse } from '../../shared/ipc.js';
import type { AgentContext } from './agent-context.js';
import { authorize, type CeremonyRunner } from './ceremonies/step-up.js';
import { TOKEN_EXPIRY_MARGIN_MS } from './session-types.js';

export type ActionTokenRequest = IpcRequest<'workspace:action-token'>;
export type ActionTokenResult = IpcResponse<'workspace:action-token'>;

/** The parameters of a `WWW-Authenticate: Bearer …` challenge (RFC 6750 / RFC 9470), or undefined. */
export function parseChallenge(header: string): Record<string, string> | undefined {
  const match = /^\s*Bearer\s+(.*)$/is.exec(header);
  if (match?.[1] === undefined) return undefined;
  const params: Record<string, string> = {};
  const re = /([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))\s*(?:,|$)/g;
  for (const m of match[1].matchAll(re)) {
    if (m[1] !== undefined) params[m[1]] = m[2] !== undefined ? m[2].replace(/\\(.)/g, '$1') : (m[3] ?? '');
  }
  return params;
}

function refused(ctx: AgentContext, error: unknown): ActionTokenResult {
  const baton = ctx.setNotice(error);
  return { outcome: 'refused', code: baton.code, message: baton.message };
}

/**
 * The page may ask only for its own app's server: the app of `audience` must name the calling workspace's
 * origin in `apps[].workspaceOrigins`. Checked here, in the main process, before any ceremony or network
 * call: the backend's exchange cannot tell which page asked (the console signs for all of them), so this
 * is the boundary that keeps a teller page (or a script injected into it) from tokens for another app.
 */
function foreignAudience(
  ctx: AgentContext,
  request: ActionTokenRequest,
  workspaceOrigin: string,
): BatonError | undefined {
  const app = appForAudience(ctx.policy, request.audience);
  if (app !== undefined && appServesWorkspace(app, workspaceOrigin)) return undefined;
  return new BatonError(
    'AUDIENCE_NOT_FOR_WORKSPACE',
    app === undefined
      ? `No app of the policy has the audience "${request.audience}"`
      : `The app "${app.name}" does not name this workspace (${workspaceOrigin}) in its workspaceOrigins`,
  );
}

/**
 * An action token for the workspace app's server: the agent exchanges the session's assurance token
 * (RFC 8693, signed with the console key) for a token of one audience and one action. When the app's
 * server answered with an RFC 9470 challenge (`insufficient_user_authentication`), or the backend
 * says the action needs a step-up, the operator is asked to step up (the ordinary ceremony) and a
 * fresh token is issued: the app retries with it. The assurance token never leaves the agent.
 */
export async function actionToken(
  ctx: AgentContext,
  ceremony: CeremonyRunner,
  request: ActionTokenRequest,
  workspaceOrigin: string,
): Promise<ActionTokenResult> {
  const foreign = foreignAudience(ctx, request, workspaceOrigin);
  if (foreign !== undefined) return refused(ctx, foreign);
  let steppedUp = false;
  if (request.challenge !== undefined) {
    const challenge = parseChallenge(request.challenge);
    if (challenge === undefined || challenge.error === undefined) {
      return refused(ctx, new BatonError('SCHEMA_INVALID', 'The challenge is not a WWW-Authenticate Bearer value'));
    }
    if (challenge.error === 'insufficient_user_authentication') {
      const stepUp = await authorize(ctx, ceremony, request.action);
      if (stepUp.outcome !== 'allow') return stepUp;
      steppedUp = stepUp.steppedUp;
      const front = ctx.runtime?.sessions.front;
      const acrValues = (challenge.acr_values ?? '').split(' ').filter((v) => v !== '');
      if (
        !steppedUp &&
        front !== undefined &&
        acrValues.length > 0 &&
        !acrValues.includes(LEVEL_PROFILES[front.level].acr)
      ) {
        // The app wants a stronger level than the policy asks for this action: no ceremony beyond the
        // policy can be run, so say so rather than hand back a token it will refuse again.
        return refused(
          ctx,
          new BatonError(
            'ACTION_STEP_UP_REQUIRED',
            `The app asks for ${acrValues.join(' or ')} for "${request.action}", more than the policy requires`,
          ),
        );
      }
      const maxAge = Number(challenge.max_age);
      if (
        !steppedUp &&
        front !== undefined &&
        Number.isFinite(maxAge) &&
        ctx.clock.now() - front.authTime > maxAge * 1000
      ) {
        // The policy is satisfied but the app wants a fresher authentication: no ceremony can be
        // asked for beyond the policy, so say so rather than hand back a token it will refuse again.
        return refused(
          ctx,
          new BatonError(
            'ACTION_STEP_UP_REQUIRED',
            `The app asks for an authentication of the last ${maxAge} s for "${request.action}", more than the policy requires`,
          ),
        );
      }
    }
    // Any other challenge (an expired or revoked token): a fresh exchange is the answer.
  }
  try {
    return await exchange(ctx, request, steppedUp);
  } catch (error) {
    if (!(error instanceof BatonError) || error.code !== 'ACTION_STEP_UP_REQUIRED' || steppedUp) {
      return refused(ctx, error);
    }
  }
  // The backend's decision: step up (its own evaluation may be fresher than the agent's copy of the policy).
  const stepUp = await authorize(ctx, ceremony, request.action);
  if (stepUp.outcome !== 'allow') return stepUp;
  try {
    return await exchange(ctx, request, true);
  } catch (error) {
    return refused(ctx, error);
  }
}

async function exchange(
  ctx: AgentContext,
  request: ActionTokenRequest,
  steppedUp: boolean,
): Promise<ActionTokenResult> {
  const runtime = ctx.runtime;
  const front = runtime?.sessions.front;
  if (runtime === undefined || front === undefined || (front.state !== 'active' && front.state !== 'stepped-up')) {
    throw new BatonError('NO_SESSION_IN_FRONT', 'Nobody is signed in and in front on this console');
  }
  if (ctx.sync.connection !== 'online') {
    throw new BatonError('BACKEND_UNREACHABLE', 'Action tokens are issued by the backend, which cannot be reached');
  }
  const wall = ctx.clock.now();
  if (front.token === undefined || (front.tokenExpiresAt ?? 0) - TOKEN_EXPIRY_MARGIN_MS <= wall) {
    throw new BatonError('BACKEND_UNREACHABLE', 'The session has no current assurance token yet; try again shortly');
  }
  runtime.sessions.noteActivity();
  const answer = await runtime.client.call(
    'tokenExchange',
    {},
    {
      grant_type: TOKEN_EXCHANGE_GRANT,
      subject_token: front.token,
      subject_token_type: ACCESS_TOKEN_TYPE,
      audience: request.audience,
      scope: request.action,
    },
  );
  return {
    outcome: 'issued',
    token: answer.access_token,
    expiresAt: wall + answer.expires_in * 1000,
    audience: request.audience,
    action: request.action,
    steppedUp,
  };
}
