import type { IpcResult } from '../../shared/ipc.js';
import type { IpcCaller, IpcDispatcher } from '../core/ipc-dispatcher.js';
import { originOf } from './navigation.js';

/**
 * Which frame may call the agent over IPC, and as whom. main/shell/ipc.ts reads the sender out of
 * Electron's invoke event and hands it here; the dispatcher (main/core) then parses the payload.
 */

/** The part of an IPC sender that decides who is calling. */
export interface SenderLike {
  /** `event.sender.id`: which WebContents sent it. */
  webContentsId: number;
  /** `event.senderFrame`; null when the frame navigated away or was destroyed before we looked. */
  frame: { url: string; isTopFrame: boolean } | null;
}

/** The parts of Electron's `WebFrameMain` that say which frame called. */
export interface CallingFrame {
  url: string;
  detached: boolean;
  parent: unknown;
  processId: number;
  routingId: number;
}

/**
 * The sender of one invoke (`event.sender`, `event.senderFrame`): a frame that is gone counts as
 * none; a frame is the top frame only if it has no parent and is the sender's main frame.
 */
export function senderFrom(
  sender: { id: number; mainFrame: { processId: number; routingId: number } },
  frame: CallingFrame | null,
): SenderLike {
  if (frame === null || frame.detached) return { webContentsId: sender.id, frame: null };
  const main = sender.mainFrame;
  const isTopFrame = frame.parent === null && frame.processId === main.processId && frame.routingId === main.routingId;
  return { webContentsId: sender.id, frame: { url: frame.url, isTopFrame } };
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
  if (sessionId !== undefined && origin === registry.workspaceOrigin) return { kind: 'workspace', sessionId, origin };
  return undefined;
}

const REFUSED: IpcResult<never> = {
  ok: false,
  error: { code: 'NOT_FOUND', message: 'This frame may not call the agent' },
};

/** One invocation: the sender check, then the dispatcher. */
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
