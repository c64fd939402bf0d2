import type { IpcEvent, IpcResult } from './ipc.js';

/**
 * The development bridge: a loopback WebSocket that carries the IPC contract of `ipc.ts` between
 * the operator UI in a plain browser and an agent core in a Node process. Development and browser
 * tests only; packaged builds neither contain nor start it. Frames are JSON text:
 *
 *   UI → agent:  { id, channel, payload }          one IPC call
 *   agent → UI:  { id, result }                    its IpcResult (`id` null when the frame was unreadable)
 *   agent → UI:  { event, payload }                `agent:status` or `ceremony:request`
 */
export const DEV_BRIDGE_PATH = '/bridge';

/** Largest frame either side accepts (a ceremony response is a few KiB; a full status under 32 KiB). */
export const DEV_BRIDGE_MAX_PAYLOAD = 64 * 1024;

/** Close codes the bridge uses (4000-4999 are the application's). */
export const DEV_BRIDGE_CLOSE = {
  /** A frame larger than DEV_BRIDGE_MAX_PAYLOAD (WebSocket's own "message too big"). */
  TOO_BIG: 1009,
  /** The bridge is stopping. */
  GOING_AWAY: 1001,
  /** Another page is already connected (one page at a time). */
  BUSY: 1013,
} as const;

export interface DevBridgeCall {
  id: number;
  channel: string;
  payload: unknown;
}

export type DevBridgeFrame = { id: number | null; result: IpcResult<unknown> } | { event: IpcEvent; payload: unknown };
