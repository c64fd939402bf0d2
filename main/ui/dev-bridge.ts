import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import {
  DEV_BRIDGE_CLOSE,
  DEV_BRIDGE_MAX_PAYLOAD,
  DEV_BRIDGE_PATH,
  type DevBridgeFrame,
} from '../../shared/dev-bridge-protocol.js';
import type { IpcEvent, IpcResult } from '../../shared/ipc.js';
import { BatonAgent, type AgentDeps, type AgentOptions } from '../core/agent.js';
import { CeremonyBroker } from '../core/ceremony-broker.js';
import { systemClock } from '../core/clock.js';
import { IpcDispatcher, statusView } from '../core/ipc-dispatcher.js';
import type { UiServer } from './ui-server.js';

/** The bridge pings the page this often and drops it when the previous ping went unanswered. */
const HEARTBEAT_MS = 15_000;
/** Calls one page may have waiting at once (a tap waits for its ceremony; the rest answer at once). */
const MAX_CALLS_IN_FLIGHT = 32;
/** Pushes held for a page that has not said `ui:ready` yet (as the shell's MAX_QUEUED_PUSHES). */
const MAX_HELD_PUSHES = 32;

export interface DevBridgeOptions {
  /** A UI server started with `devBridge: true`; the agent's WebAuthn origin is its origin. */
  ui: UiServer;
  agent: Omit<AgentOptions, 'origin' | 'rpId'>;
  deps: Omit<AgentDeps, 'ceremonies'>;
}

/**
 * DEVELOPMENT ONLY — never part of a packaged build (the Electron shell uses real IPC and never
 * imports this file; it refuses to run inside Electron). A real BatonAgent in this Node process,
 * and a WebSocket at `/bridge` on the UI server that carries the IPC contract of shared/ipc.ts for
 * the operator UI running in a plain browser: calls go through the same IpcDispatcher as Electron's
 * IPC (as the `operator-ui` caller), and the agent's status and ceremony requests are pushed.
 * The socket accepts only the UI's own origin, one page at a time, and small frames.
 */
export class DevBridge {
  private client: WebSocket | undefined;
  /** The connected page answered the last ping. */
  private alive = true;
  private readonly wss: WebSocketServer;
  private readonly heartbeat: NodeJS.Timeout;
  private readonly unsubscribe: () => void;
  /**
   * Pushes wait until the connected page says `ui:ready` (it has subscribed), as the Electron
   * shell's EventPusher holds them: only the newest status is kept, ceremony requests in order.
   */
  private ready = false;
  private held: { event: IpcEvent; payload: unknown }[] = [];
  private readonly onUpgrade: (req: IncomingMessage, socket: Duplex, head: Buffer) => void;

  private constructor(
    readonly ui: UiServer,
    readonly agent: BatonAgent,
    readonly broker: CeremonyBroker,
    readonly dispatcher: IpcDispatcher,
  ) {
    this.wss = new WebSocketServer({ noServer: true, maxPayload: DEV_BRIDGE_MAX_PAYLOAD, perMessageDeflate: false });
    this.onUpgrade = (req, socket, head) => this.upgrade(req, socket, head);
    ui.server.on('upgrade', this.onUpgrade);
    this.unsubscribe = agent.onStatus((status) => this.push('agent:status', statusView(status)));
    this.heartbeat = setInterval(() => this.ping(), HEARTBEAT_MS);
    this.heartbeat.unref();
  }

  static async start(options: DevBridgeOptions): Promise<DevBridge> {
    if (process.versions.electron !== undefined) {
      throw new Error('The development bridge never runs inside Electron: the shell speaks IPC to the preload.');
    }
    if (!options.ui.csp.includes(`ws://localhost:${options.ui.port}`)) {
      throw new Error('The development bridge needs a UI server started with devBridge: true.');
    }
    const built: { bridge?: DevBridge } = {};
    const broker = new CeremonyBroker((request) => {
      if (built.bridge?.connected !== true) {
        // Nobody can tap: cancel at once instead of waiting for the ceremony's timeout.
        queueMicrotask(() => broker.cancelAll('No operator UI is connected'));
      } else {
        built.bridge.push('ceremony:request', request);
      }
    }, options.deps.clock ?? systemClock);
    const agent = await BatonAgent.start(
      { ...options.agent, rpId: 'localhost', origin: options.ui.origin },
      { ...options.deps, ceremonies: broker },
    );
    const uiReady = () => built.bridge?.uiReady();
    built.bridge = new DevBridge(options.ui, agent, broker, new IpcDispatcher(agent, broker, undefined, uiReady));
    return built.bridge;
  }

  /** The page subscribed to its events: what waited goes, then the current status. */
  private uiReady(): void {
    this.ready = true;
    const held = this.held;
    this.held = [];
    for (const { event, payload } of held) this.send({ event, payload });
    this.push('agent:status', statusView(this.agent.status));
  }

  /** Sends an event to the page, or holds it until the page is ready. */
  private push(event: IpcEvent, payload: unknown): void {
    if (this.ready && this.send({ event, payload })) return;
    if (event === 'agent:status') this.held = this.held.filter((h) => h.event !== 'agent:status');
    this.held.push({ event, payload });
    if (this.held.length > MAX_HELD_PUSHES) this.held.shift();
  }

  /** Whether a page is connected. */
  get connected(): boolean {
    return this.client !== undefined;
  }

  /** Stops the agent and closes the socket (the UI server belongs to the caller). */
  async close(): Promise<void> {
    clearInterval(this.heartbeat);
    this.unsubscribe();
    this.ui.server.off('upgrade', this.onUpgrade);
    this.client?.close(DEV_BRIDGE_CLOSE.GOING_AWAY, 'bridge stopping');
    this.broker.cancelAll('The development bridge is stopping');
    await this.agent.stop();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }

  private upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const refuse = (status: number, text: string) => {
      socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Type: text/plain\r\n\r\n${text}\n`);
      socket.destroy();
    };
    if ((req.url ?? '') !== DEV_BRIDGE_PATH) return refuse(404, 'Not Found');
    // Same origin only: another web page (or a program that does not say where it comes from) is refused.
    if (req.headers.origin !== this.ui.origin) return refuse(403, 'Forbidden');
    if (req.headers.host !== `localhost:${this.ui.port}` && req.headers.host !== `127.0.0.1:${this.ui.port}`) {
      return refuse(421, 'Misdirected Request');
    }
    if (this.client !== undefined) return refuse(409, 'Conflict');
    this.wss.handleUpgrade(req, socket, head, (ws) => this.accept(ws));
  }

  private accept(ws: WebSocket): void {
    if (this.client !== undefined) {
      ws.close(DEV_BRIDGE_CLOSE.BUSY, 'another page is connected');
      return;
    }
    this.client = ws;
    this.alive = true;
    this.ready = false;
    let inFlight = 0;
    ws.on('pong', () => (this.alive = true));
    ws.on('message', (data: RawData, isBinary: boolean) => {
      if (inFlight >= MAX_CALLS_IN_FLIGHT) {
        this.reply(ws, null, { ok: false, error: { code: 'CEREMONY_IN_PROGRESS', message: 'Too many calls waiting' } });
        return;
      }
      inFlight++;
      void this.handle(ws, data, isBinary).finally(() => inFlight--);
    });
    ws.on('close', () => {
      if (this.client === ws) {
        this.client = undefined;
        this.ready = false;
        this.held = [];
      }
      this.broker.cancelAll('The operator UI went away');
    });
    ws.on('error', () => ws.terminate());
  }

  private async handle(ws: WebSocket, data: RawData, isBinary: boolean): Promise<void> {
    if (isBinary) {
      this.reply(ws, null, { ok: false, error: { code: 'BAD_JSON', message: 'Expected a JSON text frame' } });
      return;
    }
    let frame: unknown;
    try {
      frame = JSON.parse(rawText(data));
    } catch {
      this.reply(ws, null, { ok: false, error: { code: 'BAD_JSON', message: 'The frame is not valid JSON' } });
      return;
    }
    // Validate the envelope first; the dispatcher validates the channel and its payload.
    const call = frame as { id?: unknown; channel?: unknown; payload?: unknown };
    const id = typeof call.id === 'number' && Number.isSafeInteger(call.id) && call.id >= 0 ? call.id : null;
    if (frame === null || typeof frame !== 'object' || Array.isArray(frame) || id === null) {
      this.reply(ws, null, {
        ok: false,
        error: { code: 'SCHEMA_INVALID', message: 'Expected {"id": <non-negative integer>, "channel", "payload"}' },
      });
      return;
    }
    this.reply(ws, id, await this.dispatcher.dispatch(call.channel, call.payload, { kind: 'operator-ui' }));
  }

  private reply(ws: WebSocket, id: number | null, result: IpcResult<unknown>): void {
    if (ws.readyState === ws.OPEN) ws.send(JSON.stringify({ id, result } satisfies DevBridgeFrame));
  }

  /** Sends to the connected page; false when there is none. */
  private send(frame: DevBridgeFrame): boolean {
    const ws = this.client;
    if (ws === undefined || ws.readyState !== ws.OPEN) return false;
    ws.send(JSON.stringify(frame));
    return true;
  }

  private ping(): void {
    const ws = this.client;
    if (ws === undefined) return;
    if (!this.alive) {
      ws.terminate();
      return;
    }
    this.alive = false;
    ws.ping();
  }
}

function rawText(data: RawData): string {
  if (Buffer.isBuffer(data)) return data.toString('utf8');
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return Buffer.from(data).toString('utf8');
}
