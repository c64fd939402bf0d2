import type { BatonApiFromTable } from '../shared/baton-api.js';

export { buildBatonApi, type BatonTransport } from '../shared/baton-api.js';

/**
 * `window.baton`: the task-shaped API the operator UI talks to, and the only way it reaches the
 * agent. Its members come from one table (`BATON_API` in shared/ipc.ts): in Electron the preload
 * builds it over IPC; in browser tests and development the dev bridge client builds it over a
 * loopback WebSocket. Every call answers with the IpcResult of shared/ipc.ts; nothing throws for a
 * refusal. The page calls `ready()` once it has subscribed: pushes wait for it.
 *
 * `onAccountChoice` and `chooseAccount` matter only in Electron (a plain browser picks the account
 * by itself); `development` is true only over the development bridge.
 */
export type BatonApi = BatonApiFromTable;

declare global {
  interface Window {
    baton?: BatonApi;
  }
}
