import { contextBridge, ipcRenderer, type IpcRendererEvent } from 'electron';
import type {
  AccountChoiceRequest,
  AgentStatusView,
  CeremonyRequest,
  IpcChannel,
  IpcEvent,
  IpcRequest,
  IpcResponse,
  IpcResult,
} from '../../shared/ipc.js';

/**
 * The operator UI's preload (sandboxed, bundled to one CommonJS file): `window.baton`, the
 * task-shaped API of renderer/baton-api.ts (`BatonApi`) plus the account picker. Each call is one
 * `ipcRenderer.invoke` of the contract and answers with its IpcResult; each `on…` returns its
 * unsubscribe. `ipcRenderer` itself, its events and their `sender` never reach the page.
 */
function call<C extends IpcChannel>(channel: C, payload: IpcRequest<C>): Promise<IpcResult<IpcResponse<C>>> {
  return ipcRenderer.invoke(channel, payload) as Promise<IpcResult<IpcResponse<C>>>;
}

function subscribe<T>(event: IpcEvent, listener: (payload: T) => void): () => void {
  const relay = (_event: IpcRendererEvent, payload: T) => listener(payload);
  ipcRenderer.on(event, relay);
  return () => {
    ipcRenderer.removeListener(event, relay);
  };
}

const baton = {
  development: false,
  getStatus: () => call('agent:get-status', {}),
  onStatus: (listener: (status: AgentStatusView) => void) => subscribe('agent:status', listener),
  onCeremonyRequest: (listener: (request: CeremonyRequest) => void) => subscribe('ceremony:request', listener),
  answerCeremony: (answer: IpcRequest<'ceremony:answer'>) => call('ceremony:answer', answer),
  tapIn: () => call('session:tap-in', {}),
  enrolOperator: (code: string) => call('operator:enrol', { code }),
  enrolConsole: (token: string) => call('console:enrol', { token }),
  authorize: (action: string) => call('action:authorize', { action }),
  lock: () => call('session:lock', {}),
  signOut: () => call('session:sign-out', {}),
  activity: () => call('session:activity', {}),
  /** One key holds several operators' passkeys: show Baton's picker; returns the unsubscribe. */
  onAccountChoice: (listener: (request: AccountChoiceRequest) => void) =>
    subscribe('ceremony:choose-account', listener),
  /** The operator's pick, or `null` to cancel the tap. */
  chooseAccount: (requestId: string, credentialId: string | null) =>
    call('ceremony:account-chosen', { requestId, credentialId }),
};

contextBridge.exposeInMainWorld('baton', baton);
