import type {
  AccountChoiceRequest,
  AgentStatusView,
  CeremonyRequest,
  IpcChannel,
  IpcRequest,
  IpcResponse,
  IpcResult,
} from '../shared/ipc.js';

/**
 * `window.baton`: the task-shaped API the operator UI talks to, and the only way it reaches the
 * agent. In Electron the preload exposes it over IPC; in browser tests and development the dev
 * bridge client provides it over a loopback WebSocket. Every call answers with the IpcResult of
 * shared/ipc.ts; nothing throws for a refusal.
 */
export interface BatonApi {
  getStatus(): Promise<IpcResult<AgentStatusView>>;
  /** Every change of the agent's status; returns the unsubscribe. */
  onStatus(listener: (status: AgentStatusView) => void): () => void;
  /** The agent asks the UI to run the browser half of a ceremony; returns the unsubscribe. */
  onCeremonyRequest(listener: (request: CeremonyRequest) => void): () => void;
  answerCeremony(answer: IpcRequest<'ceremony:answer'>): Promise<IpcResult<IpcResponse<'ceremony:answer'>>>;
  tapIn(): Promise<IpcResult<IpcResponse<'session:tap-in'>>>;
  enrolOperator(code: string): Promise<IpcResult<IpcResponse<'operator:enrol'>>>;
  enrolConsole(token: string): Promise<IpcResult<IpcResponse<'console:enrol'>>>;
  authorize(action: string): Promise<IpcResult<IpcResponse<'action:authorize'>>>;
  lock(): Promise<IpcResult<IpcResponse<'session:lock'>>>;
  signOut(): Promise<IpcResult<IpcResponse<'session:sign-out'>>>;
  activity(): Promise<IpcResult<IpcResponse<'session:activity'>>>;
  /**
   * Electron only: one key holds several operators' passkeys and Electron asks which to use
   * (`ceremony:choose-account`); the UI shows Baton's picker and answers with the pick or `null`.
   * A plain browser picks by itself, so the dev bridge has neither.
   */
  onAccountChoice?(listener: (request: AccountChoiceRequest) => void): () => void;
  chooseAccount?(
    requestId: string,
    credentialId: string | null,
  ): Promise<IpcResult<IpcResponse<'ceremony:account-chosen'>>>;
  /** True only for the development bridge: the workspace area then shows demo actions. */
  readonly development?: boolean;
}

declare global {
  interface Window {
    baton?: BatonApi;
  }
}

/** A transport that carries the IPC contract: one call per channel, and the two pushed events. */
export interface BatonTransport {
  call(channel: IpcChannel, payload: unknown): Promise<IpcResult<unknown>>;
  onStatus(listener: (status: AgentStatusView) => void): () => void;
  onCeremonyRequest(listener: (request: CeremonyRequest) => void): () => void;
}

/** Builds the task-shaped API over any transport that speaks the contract. */
export function batonApiOver(transport: BatonTransport, development = false): BatonApi {
  const call = <C extends IpcChannel>(channel: C, payload: IpcRequest<C>) =>
    transport.call(channel, payload) as Promise<IpcResult<IpcResponse<C>>>;
  return {
    development,
    getStatus: () => call('agent:get-status', {}),
    onStatus: (listener) => transport.onStatus(listener),
    onCeremonyRequest: (listener) => transport.onCeremonyRequest(listener),
    answerCeremony: (answer) => call('ceremony:answer', answer),
    tapIn: () => call('session:tap-in', {}),
    enrolOperator: (code) => call('operator:enrol', { code }),
    enrolConsole: (token) => call('console:enrol', { token }),
    authorize: (action) => call('action:authorize', { action }),
    lock: () => call('session:lock', {}),
    signOut: () => call('session:sign-out', {}),
    activity: () => call('session:activity', {}),
  };
}
