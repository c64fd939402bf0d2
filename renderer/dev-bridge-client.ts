import { DEV_BRIDGE_PATH } from '../shared/dev-bridge-protocol.js';
import type { DevBridgeCall } from '../shared/dev-bridge-protocol.js';
import type { IpcChannel, IpcEvent, IpcResult } from '../shared/ipc.js';
import { buildBatonApi, type BatonTransport } from './baton-api.js';

/**
 * DEVELOPMENT ONLY: `window.baton` over the dev bridge's loopback WebSocket, for running the
 * operator UI in a plain browser against an agent core in a Node process (`npm run agent:dev`,
 * the Playwright journeys). Bundled separately and loaded only by the dev page; the packaged
 * renderer never contains it (Electron's preload provides `window.baton` there).
 */
class DevBridgeTransport implements BatonTransport {
  private readonly socket: WebSocket;
  private readonly open: Promise<void>;
  private nextId = 1;
  private readonly pending = new Map<number, (result: IpcResult<unknown>) => void>();
  private readonly listeners = new Map<IpcEvent, Set<(payload: unknown) => void>>();

  constructor(url: string) {
    this.socket = new WebSocket(url);
    this.open = new Promise((resolve) => this.socket.addEventListener('open', () => resolve(), { once: true }));
    this.socket.addEventListener('message', (event) => this.receive(event.data));
    this.socket.addEventListener('close', () => {
      for (const [id, resolve] of this.pending) {
        this.pending.delete(id);
        resolve({ ok: false, error: { code: 'BACKEND_UNREACHABLE', message: 'The dev bridge closed' } });
      }
    });
  }

  async call(channel: IpcChannel, payload: unknown): Promise<IpcResult<unknown>> {
    await this.open;
    const id = this.nextId++;
    const frame: DevBridgeCall = { id, channel, payload };
    return new Promise((resolve) => {
      this.pending.set(id, resolve);
      this.socket.send(JSON.stringify(frame));
    });
  }

  on(event: IpcEvent, listener: (payload: unknown) => void): () => void {
    const set = this.listeners.get(event) ?? new Set();
    this.listeners.set(event, set);
    set.add(listener);
    return () => set.delete(listener);
  }

  private receive(data: unknown): void {
    if (typeof data !== 'string') return;
    let frame: { id?: unknown; result?: unknown; event?: unknown; payload?: unknown };
    try {
      frame = JSON.parse(data) as typeof frame;
    } catch {
      return;
    }
    if (typeof frame.id === 'number' && frame.result !== undefined) {
      const resolve = this.pending.get(frame.id);
      this.pending.delete(frame.id);
      resolve?.(frame.result as IpcResult<unknown>);
    } else if (typeof frame.event === 'string') {
      for (const listener of this.listeners.get(frame.event as IpcEvent) ?? []) listener(frame.payload);
    }
  }
}

const origin = new URL(window.location.href);
const url = `${origin.protocol === 'https:' ? 'wss:' : 'ws:'}//${origin.host}${DEV_BRIDGE_PATH}`;
window.baton = Object.freeze(buildBatonApi(new DevBridgeTransport(url), true));
