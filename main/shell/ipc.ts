import type { IpcMain, IpcMainInvokeEvent } from 'electron';
import { IPC_CHANNELS } from '../../shared/ipc.js';
import type { IpcDispatcher } from '../core/ipc-dispatcher.js';
import { handleInvoke, senderFrom, type SenderLike, type SenderRegistry } from '../shell-policy/ipc-callers.js';

/**
 * The one place IPC handlers are registered (docs/development.md, Conventions): every channel of the contract goes
 * through `ipcMain.handle`, the sender frame is checked (main/shell-policy/ipc-callers.ts), the
 * payload is handed to the dispatcher (which parses it against the contract) and the answer is an
 * IpcResult. No `ipcMain.on`, no
 * `sendSync`, and nothing else in main/ touches `ipcMain`. Main → renderer events go through
 * `EventPusher` (event-pusher.ts): checked, queued until the window is ready, never dropped silently.
 */

/** Reads the sender out of an Electron invoke event. */
export function senderOf(event: IpcMainInvokeEvent): SenderLike {
  return senderFrom(event.sender, event.senderFrame);
}

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
