import { BatonError } from '../../shared/errors.js';
import {
  IPC_CONTRACT,
  OPERATOR_UI_CHANNELS,
  WORKSPACE_CHANNELS,
  isIpcChannel,
  type AgentStatusView,
  type IpcChannel,
  type IpcRequest,
  type IpcResponse,
  type IpcResult,
} from '../../shared/ipc.js';
import { toFieldIssues } from '../../shared/policy.js';
import { LEVEL_PROFILES } from '../../shared/levels.js';
import type { AgentStatus, BatonAgent } from './agent.js';
import type { CeremonyBroker } from './ceremony-broker.js';

/**
 * Channels whose calls journal an event without anyone touching a key, and how fast one caller may
 * make them. (Tap-in and enrolment wait for a ceremony, which a page cannot answer without a key.)
 */
const JOURNALED_CHANNELS: ReadonlySet<IpcChannel> = new Set([
  'action:authorize',
  'workspace:step-up',
  'workspace:action-token',
]);
export const JOURNALED_PER_SECOND = 5;
export const JOURNALED_BURST = 20;

/**
 * Who is calling: the operator UI, or the workspace view of one session, with the origin its page is on
 * (the shell's sender check, or the dev bridge's app): a workspace gets action tokens only for the apps
 * of the policy that name that origin.
 */
export type IpcCaller = { kind: 'operator-ui' } | { kind: 'workspace'; sessionId: string; origin: string };

/**
 * Where the operator's pick from Baton's account picker goes (the Electron shell's
 * `select-webauthn-account` handler). Without one, the channel answers that nothing is waiting.
 */
export interface AccountChoiceSink {
  answer(answer: IpcRequest<'ceremony:account-chosen'>): void;
}

type Handlers = { [C in IpcChannel]: (request: IpcRequest<C>, caller: IpcCaller) => Promise<IpcResponse<C>> };

/** The renderer's view of the status: the agent's own status minus anything it must not see. */
export function statusView(status: AgentStatus): AgentStatusView {
  return {
    identity: status.identity,
    connection: status.connection,
    phase: status.phase,
    ...(status.front === undefined ? {} : { front: snapshotView(status.front) }),
    locked: status.locked,
    sessions: status.sessions.map(snapshotView),
    ...(status.outbox === undefined ? {} : { outbox: status.outbox }),
    policyVersion: status.policyVersion,
    ...(status.notice === undefined ? {} : { notice: status.notice }),
    ...(status.limits === undefined ? {} : { limits: status.limits }),
    ...(status.lastEnded === undefined ? {} : { lastEnded: status.lastEnded }),
    ...(status.idleWarning === undefined ? {} : { idleWarning: status.idleWarning }),
    ...(status.support === undefined ? {} : { support: status.support }),
  };
}

function snapshotView(s: AgentStatus['sessions'][number]) {
  const { since, ...rest } = s;
  return since === undefined ? rest : { ...rest, since };
}

/**
 * Every IPC call goes through here (the Electron shell after its sender check, and the
 * development bridge): the channel must exist and be open to the caller, the request must match
 * its schema, and the answer is an IpcResult with a stable error code — never a thrown error.
 */
export class IpcDispatcher {
  private readonly handlers: Handlers;
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly agent: BatonAgent,
    private readonly broker: CeremonyBroker,
    private readonly accountChoices?: AccountChoiceSink,
    /** The operator UI subscribed to its events (`ui:ready`): held pushes may go now. */
    private readonly uiReady: () => void = () => undefined,
  ) {
    this.handlers = {
      'agent:get-status': () => Promise.resolve(statusView(this.agent.status)),
      'console:enrol': async ({ token }) => this.agent.enrolConsole(token),
      'operator:enrol': ({ code }) => this.agent.enrolOperator(code),
      'session:tap-in': async () => snapshotView(await this.agent.tapIn()),
      // Break-glass (issue 14 item 7, main/core/ceremonies/break-glass.ts).
      'break-glass:supervisor': async ({ operatorId }) => {
        const { session, breakGlass } = await this.agent.breakGlassBySupervisor(operatorId);
        return { session: snapshotView(session), breakGlass };
      },
      'break-glass:redeem': async ({ operatorId, code }) => {
        const { session, breakGlass } = await this.agent.breakGlassRedeem(operatorId, code);
        return { session: snapshotView(session), breakGlass };
      },
      'session:lock': () => {
        this.agent.lock();
        return Promise.resolve({});
      },
      'session:sign-out': () => {
        this.agent.signOut();
        return Promise.resolve({});
      },
      'session:activity': () => {
        this.agent.noteActivity();
        return Promise.resolve({});
      },
      'action:authorize': ({ action }) => this.agent.authorize(action),
      'ui:ready': () => {
        this.uiReady();
        return Promise.resolve({});
      },
      'ceremony:answer': (answer) => {
        this.broker.answer(answer);
        return Promise.resolve({});
      },
      'ceremony:account-chosen': (answer) => {
        if (this.accountChoices === undefined) {
          throw new BatonError('CHALLENGE_UNKNOWN', 'No account choice is waiting for this answer');
        }
        this.accountChoices.answer(answer);
        return Promise.resolve({});
      },
      'workspace:get-assurance': (_request, caller) => Promise.resolve(this.assuranceFor(caller)),
      'workspace:step-up': async ({ action }, caller) => {
        const front = this.agent.status.front;
        if (caller.kind !== 'workspace' || front === undefined || front.id !== caller.sessionId) {
          return {
            outcome: 'refused',
            code: 'NO_SESSION_IN_FRONT',
            message: 'Only the workspace in front may ask for step-up',
          };
        }
        return this.agent.authorize(action);
      },
      // Issue 14: an action token for the workspace app's server (main/core/action-tokens.ts).
      'workspace:action-token': async (request, caller) => {
        const front = this.agent.status.front;
        if (
          caller.kind !== 'workspace' ||
          front === undefined ||
          front.id !== caller.sessionId ||
          this.agent.status.locked
        ) {
          return {
            outcome: 'refused',
            code: 'NO_SESSION_IN_FRONT',
            message: 'Only the workspace in front may ask for an action token',
          };
        }
        return this.agent.actionToken(request, caller.origin);
      },
    };
  }

  async dispatch(channel: unknown, payload: unknown, caller: IpcCaller): Promise<IpcResult<unknown>> {
    try {
      if (!isIpcChannel(channel)) throw new BatonError('NOT_FOUND', `No IPC channel ${JSON.stringify(channel)}`);
      const allowed = caller.kind === 'workspace' ? WORKSPACE_CHANNELS : OPERATOR_UI_CHANNELS;
      if (!allowed.includes(channel)) throw new BatonError('NOT_FOUND', `No IPC channel "${channel}" for this caller`);
      if (JOURNALED_CHANNELS.has(channel)) this.spend(caller);
      const parsed = IPC_CONTRACT[channel].request.safeParse(payload ?? {});
      if (!parsed.success) {
        const issues = toFieldIssues(parsed.error);
        throw new BatonError(
          'SCHEMA_INVALID',
          `Invalid "${channel}" request: ${issues.map((i) => `${i.path || '(root)'}: ${i.message}`).join('; ')}`,
          { issues },
        );
      }
      const handler = this.handlers[channel] as (request: unknown, caller: IpcCaller) => Promise<unknown>;
      // The answer is checked too: a strict schema keeps anything the UI must not see (tokens, keys) out.
      const answer = IPC_CONTRACT[channel].response.safeParse(await handler(parsed.data, caller));
      if (!answer.success) throw new BatonError('INTERNAL', `The agent's "${channel}" answer failed its schema`);
      return { ok: true, value: answer.data };
    } catch (error) {
      const baton =
        error instanceof BatonError ? error : new BatonError('INTERNAL', 'Something went wrong', { cause: error });
      return { ok: false, error: { code: baton.code, message: baton.message } };
    }
  }

  /**
   * Calls that write to the event journal are rate-limited per caller, so a compromised page
   * cannot fill the outbox (and so crowd out later security events) by calling in a loop.
   */
  private spend(caller: IpcCaller): void {
    const key = caller.kind === 'workspace' ? `workspace:${caller.sessionId}` : 'operator-ui';
    const now = performance.now();
    const bucket = this.buckets.get(key) ?? { tokens: JOURNALED_BURST, at: now };
    bucket.tokens = Math.min(JOURNALED_BURST, bucket.tokens + ((now - bucket.at) / 1000) * JOURNALED_PER_SECOND);
    bucket.at = now;
    this.buckets.set(key, bucket);
    if (bucket.tokens < 1) throw new BatonError('RATE_LIMITED', 'Too many requests from this screen; wait a moment');
    bucket.tokens -= 1;
  }

  private assuranceFor(caller: IpcCaller): IpcResponse<'workspace:get-assurance'> {
    const status = this.agent.status;
    const front = status.front;
    // A workspace sees assurance only while its own session is in front and unlocked.
    if (caller.kind !== 'workspace' || front === undefined || front.id !== caller.sessionId || status.locked) {
      return null;
    }
    if (status.identity.kind !== 'enrolled') return null;
    const profile = LEVEL_PROFILES[front.level];
    return {
      operatorId: front.operatorId,
      operatorName: front.operatorName,
      sessionId: front.id,
      level: front.level,
      aal: profile.aal,
      acr: profile.acr,
      amr: [...profile.amr],
      authTime: front.authTime,
      consoleId: status.identity.consoleId,
      channel: status.identity.channel,
      ...(front.breakGlass === undefined ? {} : { breakGlass: front.breakGlass }),
    };
  }
}
