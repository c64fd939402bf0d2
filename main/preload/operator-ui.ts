import { contextBridge, ipcRenderer, type IpcRendererEvent } from 'electron';
import { buildBatonApi, type BatonTransport } from '../../shared/baton-api.js';

/**
 * The operator UI's preload (sandboxed, bundled to one CommonJS file): `window.baton`, built from
 * the one table of shared/ipc.ts (`BATON_API`) over Electron IPC. Each call is one
 * `ipcRenderer.invoke` of the contract and answers with its IpcResult; each `on…` returns its
 * unsubscribe. `ipcRenderer` itself, its events and their `sender` never reach the page.
 */
const ipc: BatonTransport = {
  call: (channel, payload) => ipcRenderer.invoke(channel, payload) as ReturnType<BatonTransport['call']>,
  on: (event, listener) => {
    const relay = (_event: IpcRendererEvent, payload: unknown) => listener(payload);
    ipcRenderer.on(event, relay);
    return () => {
      ipcRenderer.removeListener(event, relay);
    };
  },
};

contextBridge.exposeInMainWorld('baton', buildBatonApi(ipc));
