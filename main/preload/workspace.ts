import { contextBridge, ipcRenderer } from 'electron';
import type { IpcResponse, IpcResult } from '../../shared/ipc.js';

/**
 * The workspace app's preload (sandboxed, bundled to one CommonJS file). A line-of-business app
 * may read the assurance of the operator in front (never the token) and ask for step-up before a
 * named action. Nothing else of the agent is reachable from a workspace, and the main process
 * answers only the top frame of this session's own view, on the workspace app's origin.
 */
contextBridge.exposeInMainWorld('baton', {
  getAssurance: () =>
    ipcRenderer.invoke('workspace:get-assurance', {}) as Promise<IpcResult<IpcResponse<'workspace:get-assurance'>>>,
  stepUp: (action: string) =>
    ipcRenderer.invoke('workspace:step-up', { action }) as Promise<IpcResult<IpcResponse<'workspace:step-up'>>>,
  /**
   * A short-lived token for the app's server and one action (docs/action-tokens.md). Pass the
   * server's `WWW-Authenticate` value as `challenge` after a 401 `insufficient_user_authentication`:
   * the operator steps up and a fresh token comes back; retry the request with it.
   */
  actionToken: (request: { audience: string; action: string; challenge?: string }) =>
    ipcRenderer.invoke('workspace:action-token', request) as Promise<IpcResult<IpcResponse<'workspace:action-token'>>>,
});
