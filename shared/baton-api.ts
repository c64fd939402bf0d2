import type { IpcChannel, IpcEvent, IpcEvents, IpcRequest, IpcResponse, IpcResult } from './ipc.js';

/*
 * Kept apart from ipc.ts (and free of zod) so the sandboxed preload bundles only this table and its
 * builder: types come from the contract, nothing of the schemas is loaded into the preload.
 */

// ---- `window.baton`: the operator UI's task-shaped API, generated from one table ----

/**
 * Each member of `window.baton`, declared once: a `call` of a channel (its positional arguments
 * named after the request's fields, or `payload` for one argument that is the whole request), or an
 * `event` subscription returning its unsubscribe. The preload (main/preload/operator-ui.ts), the
 * renderer's type (renderer/baton-api.ts) and the development bridge's client all build from it
 * with `buildBatonApi`, so none of them can drift from the contract or from each other.
 */
export const BATON_API = {
  getStatus: { call: 'agent:get-status', args: [] },
  onStatus: { event: 'agent:status' },
  onCeremonyRequest: { event: 'ceremony:request' },
  answerCeremony: { call: 'ceremony:answer', args: 'payload' },
  tapIn: { call: 'session:tap-in', args: [] },
  /** Break-glass (issue 14 item 7): a supervisor's tap lets in an operator without their key. */
  breakGlassBySupervisor: { call: 'break-glass:supervisor', args: ['operatorId'] },
  breakGlassRedeem: { call: 'break-glass:redeem', args: ['operatorId', 'code'] },
  enrolOperator: { call: 'operator:enrol', args: ['code'] },
  enrolConsole: { call: 'console:enrol', args: ['token'] },
  authorize: { call: 'action:authorize', args: ['action'] },
  lock: { call: 'session:lock', args: [] },
  signOut: { call: 'session:sign-out', args: [] },
  activity: { call: 'session:activity', args: [] },
  /** Electron only: one key holds several operators' passkeys; Baton shows its own picker. */
  onAccountChoice: { event: 'ceremony:choose-account' },
  /** The operator's pick, or `null` to cancel the tap. */
  chooseAccount: { call: 'ceremony:account-chosen', args: ['requestId', 'credentialId'] },
  /** Call once every `on…` listener is in place: held pushes are delivered then. */
  ready: { call: 'ui:ready', args: [] },
} as const satisfies Record<string, BatonApiEntry>;

type BatonApiEntry = { call: IpcChannel; args: readonly string[] | 'payload' } | { event: IpcEvent };

type BatonApiTable = typeof BATON_API;
export type BatonApiMember = keyof BatonApiTable;

type ArgsFor<C extends IpcChannel, A> = A extends 'payload' ? [payload: IpcRequest<C>] : FieldArgs<IpcRequest<C>, A>;
type FieldArgs<R, A> = A extends readonly [infer H, ...infer T]
  ? [H extends keyof R ? R[H] : never, ...FieldArgs<R, T>]
  : [];

type MemberOf<E> = E extends { call: infer C extends IpcChannel; args: infer A }
  ? (...args: ArgsFor<C, A>) => Promise<IpcResult<IpcResponse<C>>>
  : E extends { event: infer V extends IpcEvent }
    ? (listener: (payload: IpcEventPayload<V>) => void) => () => void
    : never;

export type IpcEventPayload<E extends IpcEvent> = IpcEvents[E];

/** `window.baton` as the table declares it, plus whether it is the development bridge. */
export type BatonApiFromTable = { -readonly [K in BatonApiMember]: MemberOf<BatonApiTable[K]> } & {
  /** True only for the development bridge: the workspace area then shows demo actions. */
  readonly development: boolean;
};

/** What carries the contract: Electron IPC in the preload, a loopback WebSocket in development. */
export interface BatonTransport {
  call(channel: IpcChannel, payload: unknown): Promise<IpcResult<unknown>>;
  /** Subscribes to one pushed event; returns the unsubscribe. */
  on(event: IpcEvent, listener: (payload: unknown) => void): () => void;
}

/** Builds `window.baton` from BATON_API over a transport: one function per member of the table. */
export function buildBatonApi(transport: BatonTransport, development = false): BatonApiFromTable {
  return { ...buildApi(BATON_API, transport), development } as BatonApiFromTable;
}

function buildApi(table: Record<string, BatonApiEntry>, transport: BatonTransport): Record<string, unknown> {
  const api: Record<string, unknown> = {};
  for (const [name, entry] of Object.entries(table)) {
    if ('event' in entry) {
      api[name] = (listener: (payload: unknown) => void) => transport.on(entry.event, listener);
    } else {
      const { call, args } = entry;
      api[name] = (...values: unknown[]) =>
        transport.call(
          call,
          args === 'payload' ? values[0] : Object.fromEntries(args.map((field, i) => [field, values[i]])),
        );
    }
  }
  return api;
}
