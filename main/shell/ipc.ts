import type { IpcMain, IpcMainInvokeEvent } from 'electron';
import { IPC_CHANNELS, type IpcResult } from '../../shared/ipc.js';
import type { IpcCaller, IpcDispatcher } from '../core/ipc-dispatcher.js';
import { originOf } from './guards.js';

/**
 * The one place IPC handlers are registered (docs/development.md, Conventions): every channel of the contract goes
 * through `ipcMain.handle`, the sender frame is checked, the payload is handed to the dispatcher
 * (which parses it against the contract) and the answer is an IpcResult. No `ipcMain.on`, no
 * `sendSync`, and nothing else in main/ touches `ipcMain`. Main → renderer events go through
 * `EventPusher` (event-pusher.ts): checked, queued until the window is ready, never dropped silently.
 */

/** The part of an IPC sender that decides who is calling. */
export interface SenderLike {
  /** `event.sender.id`: which WebContents sent it. */
  webContentsId: number;
  /** `event.senderFrame`; null when the frame navigated away or was destroyed before we looked. */
  frame: { url: string; isTopFrame: boolean } | null;
}

/** Which WebContents are Baton's, and what each may call. */
export interface SenderRegistry {
  /** The origin the operator UI is served on (`http://localhost:<port>` by default). */
  readonly uiOrigin: string;
  /** The origin of the workspace app (config.workspaceAppUrl). */
  readonly workspaceOrigin: string;
  isOperatorUi(webContentsId: number): boolean;
  /** The session whose workspace view this is, if it is one. */
  workspaceSession(webContentsId: number): string | undefined;
}

/**
 * Who is calling, or undefined when nobody may: the top frame of the lock window on the UI origin,
 * or the top frame of a known workspace view on the workspace origin. Subframes, other WebContents,
 * other origins and frames that are already gone are refused.
 */
export function identifyCaller(sender: SenderLike, registry: SenderRegistry): IpcCaller | undefined {
  const frame = sender.frame;
  if (frame === null || !frame.isTopFrame) return undefined;
  const origin = originOf(frame.url);
  if (origin === undefined) return undefined;
  if (registry.isOperatorUi(sender.webContentsId)) {
    return origin === registry.uiOrigin ? { kind: 'operator-ui' } : undefined;
  }
  const sessionId = registry.workspaceSession(sender.webContentsId);
  if (sessionId !== undefined && origin === registry.workspaceOrigin) return { kind: 'workspace', sessionId };
  return undefined;
}

/** Reads the sender out of an Electron invoke event. */
export function senderOf(event: IpcMainInvokeEvent): SenderLike {
  const frame = event.senderFrame;
  if (frame === null || frame.detached) return { webContentsId: event.sender.id, frame: null };
  const main = event.sender.mainFrame;
  const isTopFrame = frame.parent === null && frame.processId === main.processId && frame.routingId === main.routingId;
  return { webContentsId: event.sender.id, frame: { url: frame.url, isTopFrame } };
}

const REFUSED: IpcResult<never> = {
  ok: false,
  error: { code: 'NOT_FOUND', message: 'This frame may not call the agent' },
};

/** Registers every channel; returns the function that removes them again. */
export function registerIpcHandlers(
  ipcMain: Pick<IpcMain, 'handle' | 'removeHandler'>,
  dispatcher: Pick<IpcDispatcher, 'dispatch'>,
  registry: SenderRegistry,
  onRefused: (channel: string, sender: SenderLike) => void = () => undefined,
): () => void {
  for (const channel of IPC_CHANNELS) {
    ipcMain.handle(channel, (event: IpcMainInvokeEvent, ...args: unknown[]) =>
      handleInvoke(channel, senderOf(event), args, dispatcher, registry, onRefused),
    );
  }
  return () => {
    for (const channel of IPC_CHANNELS) ipcMain.removeHandler(channel);
  };
}

/** One invocation, Electron-free: the sender check, then the dispatcher. Exported for tests. */
export async function handleInvoke(
  channel: string,
  sender: SenderLike,
  args: readonly unknown[],
  dispatcher: Pick<IpcDispatcher, 'dispatch'>,
  registry: SenderRegistry,
  onRefused: (channel: string, sender: SenderLike) => void = () => undefined,
): Promise<IpcResult<unknown>> {
  const caller = identifyCaller(sender, registry);
  if (caller === undefined) {
    onRefused(channel, sender);
    return REFUSED;
  }
  if (args.length > 1) {
    return { ok: false, error: { code: 'SCHEMA_INVALID', message: `expected one argument, received ${args.length}` } };
  }
  return dispatcher.dispatch(channel, args[0], caller);
}

/** The shell's live registry: the lock window's WebContents and each workspace view's. */
export class SenderTable implements SenderRegistry {
  private readonly operatorUi = new Set<number>();
  private readonly workspaces = new Map<number, string>();

  constructor(
    readonly uiOrigin: string,
    readonly workspaceOrigin: string,
  ) {}

  addOperatorUi(webContentsId: number): void {
    this.operatorUi.add(webContentsId);
  }

  addWorkspace(webContentsId: number, sessionId: string): void {
    this.workspaces.set(webContentsId, sessionId);
  }

  remove(webContentsId: number): void {
    this.operatorUi.delete(webContentsId);
    this.workspaces.delete(webContentsId);
  }

  isOperatorUi(webContentsId: number): boolean {
    return this.operatorUi.has(webContentsId);
  }

  workspaceSession(webContentsId: number): string | undefined {
    return this.workspaces.get(webContentsId);
  }
}
